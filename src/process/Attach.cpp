#include "process/Attach.h"

#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>

#include "process/ExecWatchdog.h"
#include "process/HeldThreads.h"
#include "process/ProcFs.h"
#include "process/PtraceRefusal.h"
#include "process/StopEffects.h"
#include "process/StrayLedger.h"

namespace stackpeek {

char AttachError::ID = 0;

namespace {

// Gone, a zombie, or flagged PF_EXITING.
char taskState(pid_t pid, pid_t tid) {
  auto stat = readTaskStat(pid, tid);
  if (!stat)
    return '?';
  return stat->state;
}

bool processExiting(pid_t pid) {
  auto stat = readTaskStat(pid, pid);
  if (!stat)
    return true;
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
AttachTestHook gTestHook = nullptr;

void runTestHook(const char *stage) {
  if (gTestHook)
    gTestHook(stage);
}

// Checks the whole process before touching it, so common failures get a
// precise message instead of a bare errno.
llvm::Error checkAttachable(pid_t pid) {
  auto stat = readTaskStat(pid, pid);
  if (!stat)
    return attachError(AttachFailure::NoSuchProcess,
                       "no process with pid " + std::to_string(pid));
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
  // See ExecWatchdog.h. Armed from the second thread on: with
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

// A thread that stopped only after the snapshot was taken: its stop can
// still have turned a system call into EINTR (undone as for the others),
// and a signal-delivery-stop's signal is handed back.
void PtraceSession::detachLateStop(pid_t tid, int status) { detachStopped(tid, status); }

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
// one that still has neither becomes a stray (StrayLedger.h), never a
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
    addStray(pid_, tid);
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
  auto stat = readTaskStat(pid_, pid_);
  if (!stat || stat->state == 'Z' || stat->state == 'X')
    leaderGone_ = true;
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

} // namespace stackpeek
