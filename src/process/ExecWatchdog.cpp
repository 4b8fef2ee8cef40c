#include "process/ExecWatchdog.h"

#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <ctime>

namespace stackpeek {

namespace {

constexpr size_t kReapableCapacity = 1 << 16;
pid_t gReapable[kReapableCapacity]; // this attach's non-leader threads
std::atomic<size_t> gReapableCount{0};

// Async-signal-safe. WNOWAIT first: a thread in a ptrace stop is reported
// too, and that report belongs to the main flow. At most kReapPerTick
// threads a tick, resuming where the last tick stopped, so that with
// thousands of threads a tick still ends long before the next one.
constexpr size_t kReapPerTick = 128;
size_t gReapCursor = 0; // touched by the handler only

void reapExitedThreads() {
  size_t n = gReapableCount.load(std::memory_order_acquire);
  for (size_t k = 0; k < std::min(n, kReapPerTick); ++k) {
    pid_t tid = gReapable[gReapCursor++ % n];
    siginfo_t info{};
    if (syscall(SYS_waitid, P_PID, tid, &info, WEXITED | WNOHANG | WNOWAIT | __WALL, nullptr) !=
            0 ||
        info.si_pid != tid)
      continue;
    if (info.si_code == CLD_EXITED || info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) {
      int status = 0;
      syscall(SYS_wait4, tid, &status, WNOHANG | __WALL, nullptr);
    }
  }
}

constexpr long kWatchdogTickUs = 2000;

void onReapTick(int) {
  int savedErrno = errno;
  reapExitedThreads();
  errno = savedErrno;
}

volatile sig_atomic_t gWaitExpired = 0;
std::atomic<long long> gWaitDeadlineNs{0};

long long monotonicNs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec * 1000000000LL + now.tv_nsec;
}

void onWaitTick(int) {
  int savedErrno = errno;
  if (monotonicNs() >= gWaitDeadlineNs.load(std::memory_order_relaxed))
    gWaitExpired = 1;
  else
    reapExitedThreads();
  errno = savedErrno;
}

long armWaitDeadline(std::chrono::microseconds delay) {
  gWaitExpired = 0;
  gWaitDeadlineNs.store(monotonicNs() + delay.count() * 1000LL, std::memory_order_relaxed);
  return std::min<long>(kWatchdogTickUs, std::max<long>(1, delay.count()));
}

} // namespace

void resetReapable() { gReapableCount.store(0, std::memory_order_release); }

void addReapable(pid_t tid) {
  size_t n = gReapableCount.load(std::memory_order_relaxed);
  if (n == kReapableCapacity)
    return;
  gReapable[n] = tid;
  gReapableCount.store(n + 1, std::memory_order_release);
}

AlarmTicks::AlarmTicks(void (*handler)(int), int flags, long firstUs) {
  struct sigaction sa{};
  sa.sa_handler = handler;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, &previous_);
  itimerval t{};
  t.it_value.tv_sec = firstUs / 1000000;
  t.it_value.tv_usec = std::max<long>(1, firstUs % 1000000);
  t.it_interval.tv_usec = kWatchdogTickUs;
  setitimer(ITIMER_REAL, &t, nullptr);
}

AlarmTicks::~AlarmTicks() {
  itimerval off{};
  setitimer(ITIMER_REAL, &off, nullptr);
  sigaction(SIGALRM, &previous_, nullptr);
}

SeizeWatchdog::SeizeWatchdog() : AlarmTicks(onReapTick, SA_RESTART, kWatchdogTickUs) {}

WaitDeadline::WaitDeadline(std::chrono::microseconds delay)
    : AlarmTicks(onWaitTick, 0, armWaitDeadline(delay)) {}

pid_t blockingWait(pid_t tid, int &status) {
  pid_t r = -1;
  errno = EINTR;
  while (!gWaitExpired && (r = waitpid(tid, &status, __WALL)) < 0 && errno == EINTR) {
  }
  if (r < 0 && errno == EINTR)
    r = waitpid(tid, &status, __WALL | WNOHANG); // one last look
  return r;
}

} // namespace stackpeek
