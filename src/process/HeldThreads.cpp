#include "process/HeldThreads.h"

#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <ctime>
#include <initializer_list>

#include "process/StopEffects.h"

namespace stackpeek {

namespace {

// holds a tid we hold (0 = free).
constexpr size_t kRegistrySize = 1 << 16;
std::atomic<pid_t> gHeldTids[kRegistrySize];

} // namespace

void registerHeld(pid_t tid) {
  for (size_t i = 0; i < kRegistrySize; ++i) {
    pid_t expected = 0;
    if (gHeldTids[(tid + i) % kRegistrySize].compare_exchange_strong(expected, tid))
      return;
  }
}

void unregisterHeld(pid_t tid) {
  for (size_t i = 0; i < kRegistrySize; ++i) {
    pid_t expected = tid;
    if (gHeldTids[(tid + i) % kRegistrySize].compare_exchange_strong(expected, 0))
      return;
  }
}

namespace {

// The signal-handler flavour of the above, plus the detach itself: raw
// syscalls only (async-signal-safe). A thread we interrupted may not have
// reached its stop yet; it gets a short, bounded wait so its EINTR can be
// undone too. A thread held in signal-delivery-stop gets its signal back.
void releaseHeldThreadOnSignal(pid_t tid, const timespec &deadline) {
  auto peek = [tid](size_t offset, unsigned long long &out) {
    return syscall(SYS_ptrace, PTRACE_PEEKUSER, tid, offset, &out) == 0;
  };
  unsigned long long origRax = 0, rax = 0, cs = 0;
  while (!peek(offsetof(struct user, regs.orig_rax), origRax)) {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (errno != ESRCH || now.tv_sec > deadline.tv_sec ||
        (now.tv_sec == deadline.tv_sec && now.tv_nsec > deadline.tv_nsec)) {
      syscall(SYS_ptrace, PTRACE_DETACH, tid, 0, 0);
      return;
    }
    int status = 0;
    syscall(SYS_wait4, tid, &status, WNOHANG | __WALL, nullptr);
    timespec nap{0, 200000};
    nanosleep(&nap, nullptr);
  }
  if (peek(offsetof(struct user, regs.rax), rax) && peek(offsetof(struct user, regs.cs), cs)) {
    user_regs_struct regs{};
    regs.orig_rax = origRax;
    regs.rax = rax;
    regs.cs = cs;
    if (shouldUndoEintr(regs))
      syscall(SYS_ptrace, PTRACE_POKEUSER, tid, offsetof(struct user, regs.rax),
              -kERestartNoHand);
  }
  long sig = 0;
  siginfo_t info{};
  if (syscall(SYS_ptrace, PTRACE_GETSIGINFO, tid, 0, &info) == 0 && !isEventStop(info))
    sig = info.si_signo; // signal-delivery-stop: hand the signal back
  syscall(SYS_ptrace, PTRACE_DETACH, tid, 0, sig);
}

void detachAllHeldOnSignal(int sig) {
  int savedErrno = errno;
  timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_nsec += 200 * 1000000L; // at most 200 ms for threads still stopping
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  for (auto &slot : gHeldTids) {
    pid_t tid = slot.load(std::memory_order_relaxed);
    if (tid != 0)
      releaseHeldThreadOnSignal(tid, deadline);
  }
  errno = savedErrno;
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  sigaction(sig, &dfl, nullptr);
  raise(sig);
}

} // namespace

void detachHeldThreadsAndDie(int sig) { detachAllHeldOnSignal(sig); }

void installDetachOnFatalSignals() {
  struct sigaction sa{};
  sa.sa_handler = detachAllHeldOnSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGSEGV, SIGBUS,
                  SIGABRT, SIGFPE, SIGILL})
    sigaction(sig, &sa, nullptr);
}

} // namespace stackpeek
