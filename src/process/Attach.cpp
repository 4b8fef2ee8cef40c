#include "process/Attach.h"

#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <ctime>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <set>

#include <sys/time.h>

#include "process/ProcFs.h"
#include "process/PtraceRefusal.h"

namespace stackpeek {

char AttachError::ID = 0;

namespace {

// ---- the registry the signal handler reads ----
// Fixed-size and lock-free so it is safe to read from a signal handler. A slot
// holds a tid we hold (0 = free).
constexpr size_t kRegistrySize = 1 << 16;
std::atomic<pid_t> gHeldTids[kRegistrySize];

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
constexpr long kERestartNoHand = 514;

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

// Gone, a zombie, or flagged PF_EXITING.
char taskState(pid_t pid, pid_t tid) {
  auto stat = readTaskStat(pid, tid);
  if (!stat) {
    llvm::consumeError(stat.takeError());
    return '?';
  }
  return stat->state;
}

bool processExiting(pid_t pid) {
  auto stat = readTaskStat(pid, pid);
  if (!stat) {
    llvm::consumeError(stat.takeError());
    return true;
  }
  return stat->ending();
}

llvm::Error attachError(AttachFailure kind, std::string message) {
  return llvm::make_error<AttachError>(kind, std::move(message));
}

// The advice for a refused attach: see PtraceRefusal.h.
std::string permissionHint(pid_t pid) { return ptraceRefusalHint(readPtraceFacts(pid)); }

// An exec by a thread we hold stops it in PTRACE_EVENT_EXEC, which tells us
// the snapshot mixes two programs (execSeen). No other option: a seized
// thread's children and clones stay untraced.
constexpr long kSeizeOptions = PTRACE_O_TRACEEXEC;

// ---- the exec deadlock, and the watchdog that breaks it ----
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
constexpr size_t kReapableCapacity = 1 << 16;
pid_t gReapable[kReapableCapacity]; // this attach's non-leader threads
std::atomic<size_t> gReapableCount{0};

void resetReapable() { gReapableCount.store(0, std::memory_order_release); }

// ---- the stray ledger ----
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
// other waitpid (leaderAlive reaps with pid -1) may have consumed that.
struct Stray {
  pid_t pid, tid;
};
std::vector<Stray> gStrays; // main flow only

void addReapable(pid_t tid);
void detachStopped(pid_t tid, int status);
void detachStoppedStray(pid_t tid, const siginfo_t &info);

bool isStray(pid_t tid) {
  return std::any_of(gStrays.begin(), gStrays.end(), [tid](const Stray &s) { return s.tid == tid; });
}

void forgetStray(pid_t tid) {
  gStrays.erase(std::remove_if(gStrays.begin(), gStrays.end(),
                               [tid](const Stray &s) { return s.tid == tid; }),
                gStrays.end());
}

// The real parent of a traced leader reaps its exit itself (`run` waits for
// its command): a tracer that is also the parent must leave that status.
bool isOurChild(pid_t pid) {
  auto stat = readTaskStat(pid, pid);
  if (!stat) {
    llvm::consumeError(stat.takeError());
    return false;
  }
  return stat->ppid == getpid();
}

// True once the stray is no longer ours: detached, or gone.
bool releaseStray(const Stray &s) {
  siginfo_t info{};
  if (ptrace(PTRACE_GETSIGINFO, s.tid, nullptr, &info) == 0) {
    detachStoppedStray(s.tid, info);
    return true;
  }
  siginfo_t exited{};
  int flags = WEXITED | WNOHANG | WNOWAIT | __WALL;
  if (waitid(P_PID, s.tid, &exited, flags) != 0)
    return errno == ECHILD; // not our tracee any more
  if (exited.si_pid != s.tid)
    return false; // still running towards its stop
  if (s.tid != s.pid || !isOurChild(s.pid)) {
    int status = 0;
    waitpid(s.tid, &status, __WALL | WNOHANG);
  }
  return true;
}

void addStraysToReapable() {
  for (const Stray &s : gStrays)
    if (s.tid != s.pid)
      addReapable(s.tid);
}

void addReapable(pid_t tid) {
  size_t n = gReapableCount.load(std::memory_order_relaxed);
  if (n == kReapableCapacity)
    return;
  gReapable[n] = tid;
  gReapableCount.store(n + 1, std::memory_order_release);
}

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

// SIGALRM to `handler` after `firstUs`, then every kWatchdogTickUs, until
// destroyed; the previous handler comes back then.
class AlarmTicks {
public:
  AlarmTicks(void (*handler)(int), int flags, long firstUs) {
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
  ~AlarmTicks() {
    itimerval off{};
    setitimer(ITIMER_REAL, &off, nullptr);
    sigaction(SIGALRM, &previous_, nullptr);
  }
  AlarmTicks(const AlarmTicks &) = delete;
  AlarmTicks &operator=(const AlarmTicks &) = delete;

private:
  struct sigaction previous_ {};
};

void onReapTick(int) {
  int savedErrno = errno;
  reapExitedThreads();
  errno = savedErrno;
}

// While seizing: SA_RESTART, so the other calls (reading /proc) go on
// undisturbed; the ticks only reap.
struct SeizeWatchdog : AlarmTicks {
  SeizeWatchdog() : AlarmTicks(onReapTick, SA_RESTART, kWatchdogTickUs) {}
};

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

// While waiting for stops: ticks without SA_RESTART, so a blocking waitpid
// returns EINTR on each; the caller waits again until the deadline has
// passed. Ticks keep coming after the deadline, which closes the race where
// the expiry lands just before waitpid is entered.
struct WaitDeadline : AlarmTicks {
  explicit WaitDeadline(std::chrono::microseconds delay)
      : AlarmTicks(onWaitTick, 0, armWaitDeadline(delay)) {}
};

// Waits for `tid` until the armed WaitDeadline expires: its pid, or 0 if it
// neither stopped nor exited in time, or -1 (ECHILD: not ours, gone).
pid_t blockingWait(pid_t tid, int &status) {
  pid_t r = -1;
  errno = EINTR;
  while (!gWaitExpired && (r = waitpid(tid, &status, __WALL)) < 0 && errno == EINTR) {
  }
  if (r < 0 && errno == EINTR)
    r = waitpid(tid, &status, __WALL | WNOHANG); // one last look
  return r;
}

AttachTestHook gTestHook = nullptr;

void runTestHook(const char *stage) {
  if (gTestHook)
    gTestHook(stage);
}

// Checks the whole process before touching it, so common failures get a
// precise message instead of a bare errno.
llvm::Error checkAttachable(pid_t pid) {
  auto stat = readTaskStat(pid, pid);
  if (!stat) {
    llvm::consumeError(stat.takeError());
    return attachError(AttachFailure::NoSuchProcess,
                       "no process with pid " + std::to_string(pid));
  }
  if (stat->kernelThread())
    return attachError(AttachFailure::NotDumpable,
                       "pid " + std::to_string(pid) +
                           " is a kernel thread; it has no user-space stack to show");
  // A zombie leader with live threads (its main thread called pthread_exit,
  // or an exec is under way) still has stacks to show.
  if (stat->exited() && processLiveness(pid) == Liveness::Gone)
    return attachError(AttachFailure::NotDumpable,
                       "pid " + std::to_string(pid) +
                           " is a zombie (it has exited and waits for its parent to reap it)");
  if (pid_t tracer = tracerPid(pid); tracer != 0 && tracer != getpid())
    return attachError(AttachFailure::AlreadyTraced,
                       "pid " + std::to_string(pid) + " is already traced by pid " +
                           std::to_string(tracer) + " (" + commandLine(tracer) +
                           "); detach that debugger first");
  return llvm::Error::success();
}

} // namespace

llvm::Expected<std::unique_ptr<PtraceSession>>
PtraceSession::attach(pid_t pid, const AttachOptions &options) {
  auto session = startAttach(pid, options);
  if (!session)
    return session.takeError();
  if (llvm::Error err = (*session)->finishAttach(options.stopDeadline))
    return std::move(err);
  return session;
}

llvm::Expected<std::unique_ptr<PtraceSession>>
PtraceSession::startAttach(pid_t pid, const AttachOptions &options) {
  if (!options.skipChecks)
    if (llvm::Error err = checkAttachable(pid))
      return std::move(err);
  releaseStrayTracees();
  std::unique_ptr<PtraceSession> session(new PtraceSession(pid, options.runnableStopDeadline));
  if (llvm::Error err = session->seizeAll(options.onlyThreads))
    return std::move(err); // the destructor detaches what was seized
  return session;
}

llvm::Error PtraceSession::finishAttach(std::chrono::milliseconds deadline) {
  waitForStops(deadline);
  readRegisters();
  if (!stopped_.empty())
    return llvm::Error::success();
  if (processExiting(pid_))
    return attachError(AttachFailure::NoSuchProcess,
                       "pid " + std::to_string(pid_) + " exited before it could be paused");
  // Alive: say why nothing stopped, never "exited".
  if (notStopped_.empty())
    return attachError(AttachFailure::NoSuchProcess, // an exec, perhaps: worth a retry
                       "no thread of pid " + std::to_string(pid_) + " could be paused: " +
                           (uncaptured_.empty() ? std::string("the threads to pause exited "
                                                              "first (an exec, or threads ending)")
                                                : uncaptured_.front().reason));
  std::string states;
  for (const auto &[state, count] : notStopped_)
    states += (states.empty() ? "" : ", ") + std::to_string(count) + " " + state;
  return attachError(AttachFailure::NotStopped,
                     "no thread of pid " + std::to_string(pid_) + " stopped within " +
                         std::to_string(std::max(deadline, runnableDeadline_).count()) +
                         " ms (" + states +
                         "): a running thread that does not stop has had no CPU (a "
                         "busy host), a disk-wait one is in uninterruptible sleep");
}

llvm::Error PtraceSession::seizeAll(const std::vector<pid_t> &onlyThreads) {
  std::set<pid_t> seen;
  resetReapable();
  addStraysToReapable();
  // See "the exec deadlock" above. Armed from the second thread on: with
  // one thread seized there is nothing to reap, and a one-thread sample
  // then pays nothing for it.
  std::optional<SeizeWatchdog> watchdog;
  // Re-read the task list until a pass finds no new thread. Bounded: a
  // process creating threads faster than we seize them still terminates.
  // With a fixed thread list there is one pass.
  for (int pass = 0; pass < 100; ++pass) {
    auto tids = onlyThreads.empty() ? listThreads(pid_)
                                    : llvm::Expected<std::vector<pid_t>>(onlyThreads);
    if (!tids) {
      llvm::consumeError(tids.takeError());
      if (seized_.empty())
        return attachError(AttachFailure::NoSuchProcess,
                           "no process with pid " + std::to_string(pid_));
      break;
    }
    // Seize first (the threads keep running), then interrupt the batch, so
    // the pause starts as late as possible and stops the threads together.
    std::vector<pid_t> batch;
    for (pid_t tid : *tids) {
      if (!seen.insert(tid).second)
        continue;
      if (!watchdog && (!seized_.empty() || !batch.empty()))
        watchdog.emplace();
      if (isStray(tid)) { // still ours: a past detach gave up on it
        forgetStray(tid);
        batch.push_back(tid);
        continue;
      }
      if (ptrace(PTRACE_SEIZE, tid, nullptr, reinterpret_cast<void *>(kSeizeOptions)) != 0) {
        int err = errno;
        if (err == ESRCH)
          continue; // exited between listing and seizing
        // A leader that has exited while other threads live refuses with
        // EPERM; the others can still be shown.
        if (err == EPERM && tid == pid_ && onlyThreads.empty() &&
            processLiveness(pid_) == Liveness::Changing) {
          uncaptured_.push_back({tid, "not captured: the main thread has exited "
                                      "(pthread_exit, or an exec under way)"});
          continue;
        }
        // EPERM on the first thread of a whole-process attach means we may
        // not trace it; when sampling chosen threads it usually means that
        // thread is exiting, so it is just not captured this time.
        if (err == EPERM && onlyThreads.empty() && seized_.empty() && batch.empty()) {
          // A process on its way out refuses PTRACE_SEIZE with EPERM too.
          if (processExiting(pid_))
            return attachError(AttachFailure::NoSuchProcess,
                               "pid " + std::to_string(pid_) + " exited while being attached");
          if (pid_t tracer = tracerPid(pid_); tracer != 0)
            return attachError(AttachFailure::AlreadyTraced,
                               "pid " + std::to_string(pid_) +
                                   " is already traced by pid " + std::to_string(tracer));
          return attachError(AttachFailure::PermissionDenied,
                             "not permitted to attach to pid " + std::to_string(pid_) +
                                 ": " + permissionHint(pid_));
        }
        uncaptured_.push_back({tid, std::string("cannot attach: ") + strerror(err)});
        continue;
      }
      registerHeld(tid);
      if (tid != pid_)
        addReapable(tid);
      batch.push_back(tid);
    }
    if (!batch.empty())
      runTestHook("seized");
    if (!batch.empty() && seized_.empty())
      pauseStart_ = std::chrono::steady_clock::now();
    for (pid_t tid : batch) {
      seized_.push_back(tid);
      if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0 && errno != ESRCH)
        uncaptured_.push_back({tid, std::string("cannot interrupt: ") + strerror(errno)});
    }
    if (!batch.empty())
      runTestHook("interrupted");
    bool foundNew = !batch.empty();
    if (!foundNew || !onlyThreads.empty())
      return llvm::Error::success();
  }
  return llvm::Error::success();
}

// Records the outcome of one wait: false if the thread is gone.
bool PtraceSession::recordStop(pid_t tid, pid_t waited, int status) {
  if (waited < 0 || WIFEXITED(status) || WIFSIGNALED(status)) {
    if (tid != pid_)
      lostThreads_ = true; // killed by an exec, perhaps: see adoptExecedLeader
    unregisterHeld(tid); // gone: nothing to detach
    seized_.erase(std::find(seized_.begin(), seized_.end(), tid));
    return false;
  }
  StoppedThread t;
  t.tid = tid;
  if (WIFSTOPPED(status) && !isEventStatus(status))
    t.pendingSignal = WSTOPSIG(status);
  if ((status >> 16) == PTRACE_EVENT_EXEC)
    execSeen_ = true;
  stopped_.push_back(t);
  return true;
}


void PtraceSession::spinForStops(std::vector<pid_t> &pending, std::chrono::microseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!pending.empty() && std::chrono::steady_clock::now() < until)
    for (auto it = pending.begin(); it != pending.end();) {
      int status = 0;
      pid_t r = waitpid(*it, &status, __WALL | WNOHANG);
      if (r == 0) {
        ++it;
        continue;
      }
      recordStop(*it, r, status);
      it = pending.erase(it);
    }
}

void PtraceSession::waitForStops(std::chrono::milliseconds deadline) {
  // First collect the stops that have already happened, without blocking.
  std::vector<pid_t> pending;
  for (pid_t tid : std::vector<pid_t>(seized_)) {
    int status = 0;
    pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
    if (r == 0)
      pending.push_back(tid);
    else
      recordStop(tid, r, status);
  }
  // A running thread stops within microseconds of PTRACE_INTERRUPT: poll
  // for it for a short, bounded while instead of sleeping. Asleep in
  // waitpid, this CPU may go idle and pay its wake-up inside the pause, and
  // the stopping thread wakes us with a "sync" wakeup, which may move us
  // onto its CPU. On a 1-thread target at 100 Hz the mean pause went from
  // 80-160 us to 70-110 us (alternating runs); the poll costs about 10-20
  // us of our CPU per sample.
  spinForStops(pending, kSpinBeforeBlocking);
  // Then block for the rest: the kernel wakes us the moment a thread stops,
  // where polling with sched_yield could lose the CPU for a whole time slice
  // on a busy machine. A timer bounds the wait (uninterruptible sleep).
  pending = blockForStops(pending, deadline);
  // A thread still runnable has not had the CPU to reach its stop yet (a
  // busy host: an idle-priority thread beside CPU hogs waits seconds for a
  // time slice). It stops the moment it runs, so it is waited for longer,
  // up to runnableDeadline_ in all. A thread in uninterruptible sleep may
  // stay there indefinitely: not captured.
  std::vector<pid_t> runnable, asleep;
  for (pid_t tid : pending)
    (taskState(pid_, tid) == 'R' && runnableDeadline_ > deadline ? runnable : asleep)
        .push_back(tid);
  runnable = blockForStops(runnable, runnableDeadline_ - deadline);
  markNotStopped(asleep, deadline);
  markNotStopped(runnable, runnableDeadline_);
}

void PtraceSession::markNotStopped(const std::vector<pid_t> &tids,
                                   std::chrono::milliseconds waited) {
  for (pid_t tid : tids) {
    std::string state = describeState(taskState(pid_, tid));
    ++notStopped_[state];
    uncaptured_.push_back({tid, "not captured: the thread did not stop within " +
                                    std::to_string(waited.count()) + " ms (state: " + state +
                                    ")"});
  }
}

// Waits for each of `pending` to stop, all within `limit`; returns those
// that did not.
std::vector<pid_t> PtraceSession::blockForStops(const std::vector<pid_t> &pending,
                                                std::chrono::microseconds limit) {
  std::vector<pid_t> late;
  if (pending.empty())
    return late;
  WaitDeadline timer(limit);
  for (pid_t tid : pending) {
    int status = 0;
    pid_t r = blockingWait(tid, status);
    if (r == 0)
      late.push_back(tid);
    else
      recordStop(tid, r, status);
  }
  return late;
}

void PtraceSession::readRegisters() {
  for (auto it = stopped_.begin(); it != stopped_.end();) {
    if (ptrace(PTRACE_GETREGS, it->tid, nullptr, &it->regs) != 0) {
      uncaptured_.push_back({it->tid, std::string("cannot read registers: ") + strerror(errno)});
      it = stopped_.erase(it);
    } else {
      undoStopInducedEintr(it->tid, it->regs);
      ++it;
    }
  }
}

// A thread that stopped only after the snapshot was taken: its stop can
// still have turned a system call into EINTR (undone as for the others),
// and a signal-delivery-stop's signal is handed back.
void PtraceSession::detachLateStop(pid_t tid, int status) { detachStopped(tid, status); }

namespace {
void detachWithSignal(pid_t tid, long sig) {
  user_regs_struct regs{};
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &regs) == 0)
    undoStopInducedEintr(tid, regs);
  ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void *>(sig));
}

void detachStopped(pid_t tid, int status) {
  detachWithSignal(tid, WIFSTOPPED(status) && !isEventStatus(status) ? WSTOPSIG(status) : 0);
}

void detachStoppedStray(pid_t tid, const siginfo_t &info) {
  detachWithSignal(tid, isEventStop(info) ? 0 : info.si_signo);
}
} // namespace

void releaseStrayTracees() {
  for (auto it = gStrays.begin(); it != gStrays.end();) {
    if (!releaseStray(*it)) {
      ++it;
      continue;
    }
    unregisterHeld(it->tid);
    it = gStrays.erase(it);
  }
}


// Threads in a call that a signal would interrupt with EINTR (epoll_wait,
// accept, ...; stopInterruptsWithEintr) are let go last. While any thread
// of the target is still traced, a signal the target ignores (SIGCHLD from
// a child that just exited) is not discarded but queued, and it can wake a
// thread that is already free: its epoll_wait would return EINTR, which it
// never does without us. Letting those threads go last leaves that window
// only among themselves.
std::vector<pid_t> PtraceSession::detachOrder() const {
  std::vector<pid_t> first, last;
  for (pid_t tid : seized_) {
    bool interruptible = false;
    for (const StoppedThread &t : stopped_)
      if (t.tid == tid && static_cast<long long>(t.regs.orig_rax) >= 0 &&
          stopInterruptsWithEintr(static_cast<long>(t.regs.orig_rax)))
        interruptible = true;
    (interruptible ? last : first).push_back(tid);
  }
  first.insert(first.end(), last.begin(), last.end());
  return first;
}

// A thread that runs exec from outside the leader takes over the leader's
// pid and, being ours, stops there in PTRACE_EVENT_EXEC while its own tid
// vanishes (so do the threads the exec killed: lostThreads_). That stop
// tells us the snapshot mixes two programs, and the thread must be let go
// whether or not the leader was among the threads we seized.
void PtraceSession::adoptExecedLeader() {
  bool held = std::find(seized_.begin(), seized_.end(), pid_) != seized_.end();
  if (!held && tracerPid(pid_) != getpid())
    return;
  int status = 0;
  pid_t r = waitpid(pid_, &status, __WALL | WNOHANG);
  if (r == pid_) {
    if (WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_EXEC)
      execSeen_ = true;
    if (WIFSTOPPED(status))
      detachStopped(pid_, status);
    if (held)
      seized_.erase(std::find(seized_.begin(), seized_.end(), pid_));
    unregisterHeld(pid_);
    return;
  }
  if (r == 0 && !held) { // ours and not stopped yet: the loop below waits for it
    registerHeld(pid_);
    seized_.push_back(pid_);
  }
}

void PtraceSession::detach() {
  if (detached_)
    return;
  detached_ = true;
  if (lostThreads_)
    adoptExecedLeader();
  std::vector<pid_t> notStopped;
  for (pid_t tid : detachOrder()) {
    int sig = 0;
    for (const StoppedThread &t : stopped_)
      if (t.tid == tid)
        sig = t.pendingSignal;
    if (ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void *>(static_cast<long>(sig))) == 0)
      unregisterHeld(tid);
    else
      notStopped.push_back(tid); // ESRCH: not stopped yet, or gone
  }
  pauseEnd_ = std::chrono::steady_clock::now();
  settleLateThreads(notStopped);
  releaseStrayTracees();
}

// Threads that had not reached their stop when the others were let go
// (the INTERRUPT is still pending: starved of CPU, or in uninterruptible
// sleep), or that exited. Each gets a short wait for its stop or its exit;
// one that still has neither becomes a stray (see the ledger), never a
// thread we forget while it may stop on our behalf.
void PtraceSession::settleLateThreads(const std::vector<pid_t> &tids) {
  if (tids.empty())
    return;
  std::vector<pid_t> late;
  {
    WaitDeadline timer(kLateStopWait);
    for (pid_t tid : tids) {
      int status = 0;
      pid_t r = blockingWait(tid, status);
      if (r == 0) {
        late.push_back(tid);
        continue;
      }
      if (r > 0 && WIFSTOPPED(status))
        detachLateStop(tid, status);
      unregisterHeld(tid);
    }
  }
  for (pid_t tid : late)
    gStrays.push_back({pid_, tid});
}

bool PtraceSession::leaderAlive() {
  if (detached_ || leaderGone_)
    return !leaderGone_;
  // Reap every exit notification of our tracees: a leader's own exit is
  // reported only after all its other threads have been reaped.
  int status = 0;
  pid_t r;
  while ((r = waitpid(-1, &status, __WALL | WNOHANG)) > 0)
    if (r == pid_ && (WIFEXITED(status) || WIFSIGNALED(status)))
      leaderGone_ = true;
  if (auto stat = readTaskStat(pid_, pid_)) {
    if (stat->state == 'Z' || stat->state == 'X')
      leaderGone_ = true;
  } else {
    llvm::consumeError(stat.takeError());
    leaderGone_ = true;
  }
  return !leaderGone_;
}

PtraceSession::~PtraceSession() { detach(); }

std::chrono::microseconds PtraceSession::pauseDuration() const {
  if (pauseStart_ == std::chrono::steady_clock::time_point{})
    return {}; // no thread was interrupted: no pause
  auto end = detached_ ? pauseEnd_ : std::chrono::steady_clock::now();
  return std::chrono::duration_cast<std::chrono::microseconds>(end - pauseStart_);
}

void setAttachTestHook(AttachTestHook hook) { gTestHook = hook; }

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
