// HeldThreads: every thread any PtraceSession holds, where a signal
// handler can find it.
//
// A signal that ends stackpeek mid-pause (SIGINT, SIGTERM, a crash of our
// own) must not leave the target stopped. The handler cannot take locks or
// allocate, so the held threads live in a fixed-size, lock-free table; the
// handler detaches each (EINTR undone, its signal handed back) with raw
// system calls, then re-raises the signal with its default action.
#pragma once

#include <sys/types.h>

namespace stackpeek {

/// Adds or removes a thread of the table. Lock-free.
void registerHeld(pid_t tid);
void unregisterHeld(pid_t tid);

/// Installs handlers for SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE and the
/// crash signals (SIGSEGV, SIGBUS, SIGABRT, ...) that detach every
/// thread any live PtraceSession holds, then re-raise the signal with its
/// default action (so stackpeek still dies of it, as the caller expects).
void installDetachOnFatalSignals();

/// What those handlers do: detach every held thread, then re-raise `sig`
/// with its default action. Async-signal-safe; for handlers of commands
/// (like record) that first try to stop gracefully.
void detachHeldThreadsAndDie(int sig);

} // namespace stackpeek
