// ProcFs: small, bounded readers for /proc/PID files.
//
// /proc files report their size as 0, so they are read in a loop up to a
// limit. Their contents can be chosen by the target (comm, cmdline), so
// callers treat them as untrusted text. The per-thread stat line has the
// command name in parentheses, which may itself contain ')' and spaces; the
// fields after it are found from the LAST ')'.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "llvm/Support/Error.h"

namespace stackpeek {

/// Reads a whole /proc (or other small) file, at most `limit` bytes.
llvm::Expected<std::string> readSmallFile(const std::string &path,
                                          size_t limit = 1 << 20);

/// Thread ids listed in /proc/PID/task.
llvm::Expected<std::vector<pid_t>> listThreads(pid_t pid);

struct TaskStat {
  char state = '?';  // R S D T t Z X I ...
  pid_t ppid = 0;
  unsigned flags = 0; // the kernel's PF_* flags

  bool exited() const { return state == 'Z' || state == 'X'; }
  /// Exited, or on its way out (PF_EXITING).
  bool ending() const { return exited() || (flags & 0x4) != 0; }
  bool kernelThread() const { return (flags & 0x00200000) != 0; } // PF_KTHREAD
};
/// nullopt when the task is gone or its stat unreadable: every caller
/// treats those alike.
std::optional<TaskStat> readTaskStat(pid_t pid, pid_t tid);

/// "running", "sleeping", "disk-wait", ... for a stat state letter.
std::string describeState(char state);

std::string threadName(pid_t pid, pid_t tid);        // comm, trailing \n removed
std::optional<std::string> threadWchan(pid_t pid, pid_t tid); // none for "0"
std::string commandLine(pid_t pid);                  // argv joined by spaces
/// readlink /proc/PID/exe, as the target names it (see targetPath).
std::string executablePath(pid_t pid);
/// The target's root directory as we see it (readlink /proc/PID/root):
/// "/" unless it runs in a chroot whose directory we can reach.
std::string rootDirectory(pid_t pid);
/// A path the kernel printed for the target (maps, exe), as the target
/// names it. The kernel prints paths from the reader's root, so a chroot's
/// file shows as ROOT/usr/lib/x.so; /proc/PID/root opens paths from the
/// target's root, /usr/lib/x.so. `root` is rootDirectory(pid).
std::string targetPath(const std::string &root, const std::string &path);
/// The pid that traces `pid`, 0 if none (TracerPid in /proc/PID/status).
pid_t tracerPid(pid_t pid);
/// A thread's id in each pid namespace it is in, from the NSpid line of
/// its status: the namespace of our /proc first, its own last. Empty when
/// unreadable (the thread has gone, or a kernel before 4.1).
std::vector<pid_t> namespaceTids(pid_t pid, pid_t tid);
bool processExists(pid_t pid);
/// Exists and has not exited (a zombie has exited: it waits to be reaped).
bool processAlive(pid_t pid);
/// Whether a process runs, has gone for good, or is between the two for a
/// moment: its leader exiting or a zombie while other threads still live.
/// That is what an exec looks like from outside while it kills the other
/// threads (from a thread other than the leader, the old leader dies and the
/// execing thread takes over its pid); it is also, for good, a process whose
/// main thread called pthread_exit.
enum class Liveness { Running, Gone, Changing };
Liveness processLiveness(pid_t pid);
/// processLiveness, waiting up to `limit` for a Changing process to settle.
Liveness settledLiveness(pid_t pid, std::chrono::milliseconds limit);
/// `pid` itself, or while its leader is a zombie (see Liveness) one of its
/// live threads: /proc/TID/{maps,mem,root,...} of any thread describe the
/// whole process, and a zombie leader's are empty.
pid_t liveThreadOf(pid_t pid);
/// Children of every thread of `pid` (from /proc/PID/task/*/children).
std::vector<pid_t> childProcesses(pid_t pid);

/// Processes a user may mean by `name`: those whose comm, or whose command
/// line's first word without its directory, is `name`. In pid order, at most
/// `limit`; `total` (if given) gets how many matched in all.
std::vector<pid_t> processesNamed(llvm::StringRef name, size_t limit,
                                  size_t *total = nullptr);

} // namespace stackpeek
