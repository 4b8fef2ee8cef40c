// Spawn: start the command of `stackpeek run` as a transparent child.
//
// Transparent means the command gets stackpeek's stdin, stdout, stderr,
// environment, working directory, signal mask and signal dispositions as they
// were when stackpeek started: fork + exec inherits all of them, except the
// mask (stackpeek blocks the signals it reads through a signalfd; the child
// restores the original mask before exec) and handlers (exec resets caught
// signals to their default; stackpeek never sets SIG_IGN, which exec keeps).
//
// Process group, the one real choice:
//  - When stackpeek is in the foreground process group of its controlling
//    terminal (a person typed the command), the command stays in that group.
//    It can then read the terminal, and Ctrl-C / Ctrl-\ / Ctrl-Z reach it
//    directly from the kernel, exactly as without stackpeek. Such signals
//    reach stackpeek too (same group); it recognises them (si_code SI_KERNEL)
//    and does not forward them, so the command gets each one once.
//  - Otherwise (CI runners, cron, pipelines, no terminal) the command gets a
//    process group of its own. A signal sent to stackpeek's group (CI runners
//    cancel jobs with kill(-pgid)) then reaches only stackpeek, which forwards
//    it to the command's group: delivered once, never twice.
//
// The child also gets PR_SET_PDEATHSIG(SIGKILL): if stackpeek is SIGKILLed,
// the kernel kills the command instead of leaving it unsupervised. (Only the
// direct child; its descendants are stackpeek's concern while it lives.)
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "llvm/Support/Error.h"

namespace stackpeek {

struct SpawnedCommand {
  pid_t pid = 0;          // 0 if exec failed
  int execError = 0;      // errno of the failed exec (then pid is 0)
  bool ownGroup = false;  // the command leads its own process group
};

/// True when stackpeek's process group is the foreground group of its
/// controlling terminal.
bool inTerminalForeground();

/// Forks and execs `argv` (searched on PATH) with signal mask `childMask`.
/// Fails only if fork itself failed; exec failures come back in execError.
llvm::Expected<SpawnedCommand> spawnCommand(const std::vector<std::string> &argv,
                                            const sigset_t &childMask, bool ownGroup);

} // namespace stackpeek
