// StrayLedger: interrupted threads a detach had to leave behind.
//
// A thread we interrupted is ours until PTRACE_DETACH succeeds or its exit
// has been reaped; nothing else lets it go. PTRACE_DETACH succeeds only once
// the thread has reached its stop, and a thread may take long to get there:
// starved of CPU on a busy host (an idle-priority thread beside CPU hogs
// waits seconds for a time slice), or in an uninterruptible sleep. Such a
// thread, given up on by a detach, is a stray: the moment it reaches its stop
// it would stay stopped, for nothing any caller waits for, until someone
// releases it. So strays are kept here, registered for the signal handlers
// and reapable for the watchdog (a thread that dies traced is a zombie an
// exec would wait on), and released by releaseStrayTracees(), which every
// attach and detach calls and long-running callers call on each tick.
//
// Whether a stray has stopped is asked of the kernel (PTRACE_GETSIGINFO
// works on a tracee in a ptrace stop only), not of its wait status: some
#pragma once

#include <sys/types.h>

namespace stackpeek {

/// Whether `tid` is a stray, and forgetting it (a new attach takes it over).
bool isStray(pid_t tid);
void forgetStray(pid_t tid);

/// Keeps `tid` of process `pid`, still registered as held, as a stray.
void addStray(pid_t pid, pid_t tid);

/// Puts the strays that are not leaders on the exec watchdog's reap list.
void addStraysToReapable();

/// Lets go of the threads earlier detaches had to leave behind because they
/// had not reached their stop yet ("strays"): those stopped since are
/// detached (their signal handed back), those exited are reaped. Every
/// attach and detach calls it; a long-running caller (record's loop) calls
/// it on every tick, so a stray is held at most one tick after its stop.
void releaseStrayTracees();

} // namespace stackpeek
