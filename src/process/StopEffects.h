// StopEffects: what a ptrace stop does to the thread it stops, and how we
// undo it when letting the thread go.
//
// Two effects matter. Some system calls return EINTR when their thread is
// stopped, even with no signal handler involved, and the target must not
// see that. And a stop that is not one of ours (a signal-delivery-stop)
// holds a signal the target must still receive, handed back on detach.
// Internal to process/: the session, the stray ledger and the fatal-signal
// handlers share these rules.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/user.h>

namespace stackpeek {

/// The kernel's internal "restart unless a handler runs" return value.
constexpr long kERestartNoHand = 514;

/// True for the system calls a stop interrupts with EINTR (epoll_wait,
/// semop, sigtimedwait, io_getevents, socket calls with a timeout).
bool stopInterruptsWithEintr(long syscallNumber);

/// True when `regs` show such a call that our stop made return EINTR.
bool shouldUndoEintr(const user_regs_struct &regs);

/// Turns that EINTR back into a restart (the registers the caller captured
/// keep the values the thread had).
void undoStopInducedEintr(pid_t tid, const user_regs_struct &regs);

/// Our own stops, which carry no signal for the target: by wait status, and
/// by siginfo.
bool isEventStatus(int status);
bool isEventStop(const siginfo_t &info);

/// Detaches a stopped thread: EINTR undone, a pending signal handed back.
void detachStopped(pid_t tid, int status);
void detachStoppedStray(pid_t tid, const siginfo_t &info);

} // namespace stackpeek
