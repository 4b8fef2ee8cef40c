#include "process/StopEffects.h"

#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstddef>

namespace stackpeek {

// Some system calls fail with EINTR when their thread is stopped, even by a
// ptrace stop with no signal handler involved (signal(7), "Interruption of
// system calls and library functions by stop signals"): epoll_wait,
// semop, sigtimedwait, io_getevents, socket calls with a timeout. Left alone,
// the target would see an EINTR it never sees without us. We turn that EINTR
// back into the kernel's internal -ERESTARTNOHAND: on resume the kernel
// restarts the call if no handler runs, and reports EINTR if one does, which
// is what would have happened had we not stopped the thread. (connect is not
// listed: restarting it would not be equivalent.) The captured registers keep
// the values the thread actually had.

bool stopInterruptsWithEintr(long nr) {
  switch (nr) {
  case SYS_epoll_wait: case SYS_epoll_pwait:
#ifdef SYS_epoll_pwait2
  case SYS_epoll_pwait2:
#endif
  case SYS_semop: case SYS_semtimedop: case SYS_rt_sigtimedwait:
  case SYS_io_getevents:
#ifdef SYS_io_pgetevents
  case SYS_io_pgetevents:
#endif
  case SYS_accept: case SYS_accept4: case SYS_recvfrom: case SYS_recvmsg:
  case SYS_recvmmsg: case SYS_sendto: case SYS_sendmsg: case SYS_sendmmsg:
    return true;
  default:
    return false;
  }
}

bool shouldUndoEintr(const user_regs_struct &regs) {
  constexpr unsigned long long kUserCs64 = 0x33;
  return regs.cs == kUserCs64 && static_cast<long long>(regs.orig_rax) >= 0 &&
         static_cast<long long>(regs.rax) == -EINTR &&
         stopInterruptsWithEintr(static_cast<long>(regs.orig_rax));
}

void undoStopInducedEintr(pid_t tid, const user_regs_struct &regs) {
  if (!shouldUndoEintr(regs))
    return;
  ptrace(PTRACE_POKEUSER, tid, reinterpret_cast<void *>(offsetof(struct user, regs.rax)),
         reinterpret_cast<void *>(-kERestartNoHand));
}

// Our own stops carry no signal for the target: PTRACE_EVENT_STOP (our
// INTERRUPT, or a group-stop) and PTRACE_EVENT_EXEC (a thread we hold
// finished an exec; PTRACE_O_TRACEEXEC). Any other stop is a
// signal-delivery-stop whose signal the target must still get.
bool isEventStatus(int status) {
  int event = status >> 16;
  return event == PTRACE_EVENT_STOP || event == PTRACE_EVENT_EXEC;
}

bool isEventStop(const siginfo_t &info) {
  int event = info.si_code >> 8;
  return event == PTRACE_EVENT_STOP ||
         (info.si_signo == SIGTRAP && event == PTRACE_EVENT_EXEC);
}

namespace {
void detachWithSignal(pid_t tid, long sig) {
  user_regs_struct regs{};
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &regs) == 0)
    undoStopInducedEintr(tid, regs);
  ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void *>(sig));
}
} // namespace

void detachStopped(pid_t tid, int status) {
  detachWithSignal(tid, WIFSTOPPED(status) && !isEventStatus(status) ? WSTOPSIG(status) : 0);
}

void detachStoppedStray(pid_t tid, const siginfo_t &info) {
  detachWithSignal(tid, isEventStop(info) ? 0 : info.si_signo);
}

} // namespace stackpeek
