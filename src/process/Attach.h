// Attach: stop every thread of a process with ptrace, and always let it go.
//
// We use PTRACE_SEIZE + PTRACE_INTERRUPT rather than PTRACE_ATTACH: SEIZE
// sends no SIGSTOP (so the target never sees a signal it did not expect, and
// group-stop state is left alone), and INTERRUPT stops a thread in a
// distinguishable PTRACE_EVENT_STOP. Threads are seized one by one from
// /proc/PID/task; a thread created meanwhile is found by re-reading the list
// until no new tid appears (a seized thread's children are not auto-traced
// without options, so the re-read is what catches them).
//
// Safety rules this file enforces:
//  - The destructor detaches every thread, on every path. A signal that ends
//    stackpeek mid-pause detaches too (HeldThreads.h); if
//    stackpeek is SIGKILLed the kernel detaches on exit and the threads run.
//  - A signal that arrives for a thread while we hold it (signal-delivery-stop)
//    is handed back on detach, so the target receives it as if we weren't there.
//  - No wait blocks forever: a thread that does not stop within the deadline
//    (uninterruptible sleep; a runnable thread gets longer, as on a busy host
//    it may wait long for the CPU) is reported as not captured.
//  - Every interrupted thread stays ours until PTRACE_DETACH succeeds or its
//    exit is reaped: one that reaches its stop only after the detach (a
//    "stray") is released by releaseStrayTracees() (StrayLedger.h), never
//    left stopped.
//  - An exec in the target cannot deadlock us: it waits for the threads it
//    kills to be reaped by their tracer while holding the lock PTRACE_SEIZE
//    takes, so a watchdog signal reaps them while we seize and wait (see
//    ExecWatchdog.h). Threads are seized with
//    PTRACE_O_TRACEEXEC, so an exec during the pause is seen (execSeen).
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llvm/Support/Error.h"

namespace stackpeek {

/// Why attaching failed as a whole; the driver maps these to exit codes.
enum class AttachFailure {
  NoSuchProcess,
  PermissionDenied,
  AlreadyTraced,
  NotDumpable, // zombie or kernel thread
  NotStopped,  // alive, but no thread reached its stop in time
  Other,
};

class AttachError : public llvm::ErrorInfo<AttachError> {
public:
  static char ID;
  AttachError(AttachFailure kind, std::string message)
      : kind_(kind), message_(std::move(message)) {}
  AttachFailure kind() const { return kind_; }
  void log(llvm::raw_ostream &os) const override { os << message_; }
  std::error_code convertToErrorCode() const override {
    return llvm::inconvertibleErrorCode();
  }

private:
  AttachFailure kind_;
  std::string message_;
};

struct StoppedThread {
  pid_t tid = 0;
  user_regs_struct regs{};
  int pendingSignal = 0; // re-injected on detach
};

struct UncapturedThread {
  pid_t tid = 0;
  std::string reason;
};

struct AttachOptions {
  // How long to wait for all threads to reach a stop.
  std::chrono::milliseconds stopDeadline{1000};
  // How long, in all, for a thread still runnable at stopDeadline: it has
  // not had the CPU yet (a busy host), and stops as soon as it runs.
  std::chrono::milliseconds runnableStopDeadline{10000};
  // Stop only these threads (the sampler pauses just the threads it
  // samples); empty means every thread, re-reading the task list until it
  // is stable.
  std::vector<pid_t> onlyThreads;
  // Skip the whole-process checks (zombie, kernel thread, tracer) already
  // made by an earlier attach to the same process; saves /proc reads per sample.
  bool skipChecks = false;
};

class PtraceSession {
public:
  static llvm::Expected<std::unique_ptr<PtraceSession>>
  attach(pid_t pid, const AttachOptions &options = {});

  /// attach() in two halves, for a caller with work to do while the
  /// threads come to a stop (the sampler reads other threads meanwhile):
  /// startAttach() seizes and interrupts, finishAttach() waits for the
  /// stops (options.stopDeadline) and reads the registers. Until
  /// finishAttach() returns, a seized thread may still be running.
  static llvm::Expected<std::unique_ptr<PtraceSession>>
  startAttach(pid_t pid, const AttachOptions &options = {});
  llvm::Error finishAttach(std::chrono::milliseconds deadline);

  ~PtraceSession();
  PtraceSession(const PtraceSession &) = delete;
  PtraceSession &operator=(const PtraceSession &) = delete;

  pid_t pid() const { return pid_; }
  const std::vector<StoppedThread> &stoppedThreads() const { return stopped_; }
  const std::vector<UncapturedThread> &uncaptured() const { return uncaptured_; }

  /// Lets every thread run again. Idempotent; the destructor calls it.
  void detach();

  /// While attached: false once the thread-group leader has exited (killed
  /// or exited while we held it). Reaps its exit notification, which the
  /// tracer must do before the real parent can reap the zombie.
  bool leaderAlive();

  /// A thread we held finished an exec while we held the others: the
  /// snapshot mixes the old program and the new one, and is worth taking
  /// again.
  bool execSeen() const { return execSeen_; }

  /// Time from the first thread being interrupted until detach() finished (or
  /// until now if still attached).
  std::chrono::microseconds pauseDuration() const;

private:
  PtraceSession(pid_t pid, std::chrono::milliseconds runnableDeadline)
      : pid_(pid), runnableDeadline_(runnableDeadline) {}
  llvm::Error seizeAll(const std::vector<pid_t> &onlyThreads);
  void waitForStops(std::chrono::milliseconds deadline);
  std::vector<pid_t> blockForStops(const std::vector<pid_t> &pending,
                                   std::chrono::microseconds limit);
  void settleLateThreads(const std::vector<pid_t> &tids);
  void markNotStopped(const std::vector<pid_t> &tids, std::chrono::milliseconds waited);
  // How long a detach waits for threads not yet stopped before leaving them
  // to the stray ledger.
  static constexpr std::chrono::milliseconds kLateStopWait{20};
  void spinForStops(std::vector<pid_t> &pending, std::chrono::microseconds limit);
  static constexpr std::chrono::microseconds kSpinBeforeBlocking{200};
  static void detachLateStop(pid_t tid, int status);
  void adoptExecedLeader();
  std::vector<pid_t> detachOrder() const;
  bool recordStop(pid_t tid, pid_t waited, int status);
  void readRegisters();

  pid_t pid_;
  std::chrono::milliseconds runnableDeadline_;
  std::map<std::string, int> notStopped_; // state -> threads that never stopped
  std::vector<pid_t> seized_;          // every tid we hold, stopped or not
  std::vector<StoppedThread> stopped_;
  std::vector<UncapturedThread> uncaptured_;
  std::chrono::steady_clock::time_point pauseStart_{};
  std::chrono::steady_clock::time_point pauseEnd_{};
  bool detached_ = false;
  bool leaderGone_ = false;
  bool execSeen_ = false;
  bool lostThreads_ = false; // a seized thread other than the leader vanished
};

/// For tests: called with "seized" once a batch of threads is seized and
/// with "interrupted" once it is interrupted, before any wait, so a test can
/// make threads or the process exit exactly there. Null: none (default).
using AttachTestHook = void (*)(const char *stage);
void setAttachTestHook(AttachTestHook hook);

} // namespace stackpeek
