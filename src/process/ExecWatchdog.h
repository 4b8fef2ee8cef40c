// ExecWatchdog: the exec deadlock, and the alarm ticks that break it.
//
// A thread that calls execve kills the process's other threads, then waits,
// holding the process's cred_guard_mutex, until each of them has been
// released. A thread we trace is released only when we reap it. PTRACE_SEIZE
// takes that same mutex, so seizing the next thread while an exec is under
// way waits for the exec, which waits for us. Signals do not break it: the
// kernel restarts an interrupted PTRACE_SEIZE by itself (ERESTARTNOINTR).
// The same exec also keeps its thread from reaching our INTERRUPT stop
// while we block on that thread's stop. So while we seize and wait, a
// SIGALRM ticks every few milliseconds and its handler reaps the threads of
// this attach that have exited; the exec then completes, the seize goes on,
// and the main flow finds those threads gone (ECHILD). The thread-group
// leader is never reaped here: its exit status may belong to stackpeek as
// its real parent (`run`), and exec never waits for the leader's reaping.
//
// Internal to process/: the session arms the ticks while it seizes and
// waits, and the stray ledger adds its threads to the reapable list.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>

namespace stackpeek {

/// This attach's non-leader threads, which the ticks may reap once exited.
void resetReapable();
void addReapable(pid_t tid);

/// SIGALRM to `handler` after `firstUs`, then every few milliseconds, until
/// destroyed; the previous handler comes back then.
class AlarmTicks {
public:
  AlarmTicks(void (*handler)(int), int flags, long firstUs);
  ~AlarmTicks();
  AlarmTicks(const AlarmTicks &) = delete;
  AlarmTicks &operator=(const AlarmTicks &) = delete;

private:
  struct sigaction previous_ {};
};

/// While seizing: ticks with SA_RESTART, so the other calls (reading /proc)
/// go on undisturbed; the ticks only reap.
struct SeizeWatchdog : AlarmTicks {
  SeizeWatchdog();
};

/// While waiting for stops: ticks without SA_RESTART, so a blocking waitpid
/// returns EINTR on each; the caller waits again until the deadline has
/// passed. Ticks keep coming after the deadline, which closes the race where
/// the expiry lands just before waitpid is entered.
struct WaitDeadline : AlarmTicks {
  explicit WaitDeadline(std::chrono::microseconds delay);
};

/// Waits for `tid` until the armed WaitDeadline expires: its pid, or 0 if it
/// neither stopped nor exited in time, or -1 (ECHILD: not ours, gone).
pid_t blockingWait(pid_t tid, int &status);

} // namespace stackpeek
