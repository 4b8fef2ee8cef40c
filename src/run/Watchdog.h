// Watchdog: `stackpeek run`, a transparent wrapper that turns a hang into a
// stack dump of the whole process tree.
//
// Facts and choices it relies on:
//  - stackpeek makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so
//    processes the command orphans (double-forked daemons, children of a
//    shell that exited) are re-parented to stackpeek instead of init. "The
//    tree" is then simply every descendant of stackpeek: nothing escapes it,
//    and stackpeek can dump, kill and reap all of it.
//  - One thread does everything (signals via signalfd, timers via poll's
//    timeout, dumps, reaping). That is required, not just simple: ptrace
//    stops of a traced child are reported by waitpid, so a concurrent
//    waitpid(-1) would steal them from a dump in progress; and every thread
//    of a tracee must be handled by the thread that attached.
//  - Signals (see Spawn.h for the process-group choice): SIGINT, SIGTERM,
//    SIGHUP and SIGQUIT are forwarded to the command, unless they came from
//    the terminal to a group the command shares; SIGUSR1 dumps the tree;
//    SIGCHLD reaps. A forwarded signal waits while a dump is in progress.
//  - Timeout: dump, SIGTERM (and SIGCONT, so stopped processes can act on
//    it) to every process of the tree, SIGKILL to whatever is left after
//    --kill-after, exit 124. Processes forked during the kill get signalled
//    too; stackpeek exits once the tree is empty (or gives up 5 s after
//    SIGKILL, naming what survives, e.g. a process stuck in the kernel).
//  - When the command exits on its own, stackpeek exits at once with its
//    status. Descendants it left running (daemons) are left running too, as
//    a shell would: when stackpeek exits they are re-parented to init (or the
//    next subreaper). Use --timeout's kill, or your CI's cleanup, for those.
//  - If stackpeek itself is SIGKILLed, the command dies with it (PDEATHSIG).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "driver/Dump.h"
#include "run/Duration.h"

namespace stackpeek {

struct RunOptions {
  std::vector<std::string> command;      // argv of the command
  std::optional<Duration> timeout;       // dump + kill after this long
  Duration killAfter = std::chrono::seconds(10);
  std::optional<Duration> idleTimeout;   // dump when the tree idles this long
  bool killOnIdle = false;               // ... and then kill it, exit 124
  std::string outputPath;                // also write dumps here
  bool json = false;
  DumpOptions dump;
};

/// Runs the command under watch; returns stackpeek's exit code (the
/// command's, 124 on timeout, 125-127 when stackpeek or exec failed).
/// Errors are printed to stderr as one line starting "stackpeek: ".
int runWatched(const RunOptions &options);

} // namespace stackpeek
