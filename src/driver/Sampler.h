// Sampler: one process's stacks, sampled over and over, for `record`.
//
// A sample is a short version of `dump`: find the threads worth sampling,
// stop just those, copy registers, stacks and Python frame chains, resume,
// then unwind, decode and symbolize. What dump does once, the sampler keeps:
// the interpreter's location, the unwinder's tables, the symbolizer's
// per-module and per-address caches, decoded code objects, and open /proc
// files, so a pass costs syscalls and cache hits, not file parsing.
//
// Which threads are stopped matters for the target's speed: by default only
// threads that are running on (or runnable for) a CPU are sampled, so a
// sleeping thread is not stopped at all, and a process with 200 threads of
// which 2 are busy pays for 2 (ThreadActivity.h: how that stays cheap).
// With `nonblocking`, Python stacks are read
// while the target runs: no pause at all, at the price of samples that may
// be torn; a torn sample (a chain that breaks or loops) is dropped and
// counted, never recorded.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "llvm/Support/Error.h"

#include "driver/ChainMemo.h"
#include "driver/Pause.h"
#include "driver/Stages.h"
#include "driver/StopPlan.h"
#include "driver/TargetImage.h"
#include "driver/ThreadActivity.h"
#include "profile/Profile.h"
#include "python/frames/CodeCache.h"

namespace stackpeek {

struct SamplerOptions {
  bool native = false;       // merged native+Python stacks
  bool includeIdle = false;  // also sample sleeping threads
  bool gilOnly = false;      // only the thread holding the GIL
  bool threadRoots = false;  // the thread as the outermost frame
  bool processRoots = false; // the process as the outermost frame
  bool nonblocking = false;  // never stop the target (Python stacks only)
  std::vector<std::string> debugDirs;
  // Test hook (STACKPEEK_TEST_SLEEPER_READ_DELAY_US): wait this long before
  // reading sleeping threads without stopping them (free-threaded builds),
  // so that the thread under test certainly wakes during the read and the
  // check that must catch it is exercised every time.
  uint32_t sleeperReadDelayUsForTests = 0;
};

/// Counters kept across passes, for the status line and the summary.
struct SamplerStats {
  uint64_t passes = 0;
  uint64_t samples = 0;         // thread stacks recorded
  uint64_t dropped = 0;         // torn or undecodable samples, not recorded
  uint64_t pauses = 0;          // times the target was stopped
  uint64_t pauseTotalUs = 0;
  uint64_t pauseMaxUs = 0;
  uint64_t threadsStopped = 0;  // summed over pauses
  std::map<std::string, uint64_t> failures; // why samples failed -> count
  std::set<std::string> notes; // said once each: modules without symbols
};

class ProcessSampler {
public:
  static llvm::Expected<std::unique_ptr<ProcessSampler>>
  create(pid_t pid, const SamplerOptions &options);
  ~ProcessSampler();

  /// One pass over the process's threads, appending to `profile`. Returns
  /// false once the process has exited.
  bool samplePass(Profile &profile, uint64_t timestampNs, uint64_t weightNs,
                  SamplerStats &stats);

  pid_t pid() const { return pid_; }
  const Process &process() const { return process_; }

private:
  ProcessSampler(pid_t pid, const SamplerOptions &options);
  void settle(const std::map<pid_t, char> &before);
  void readProcess(bool newImage);
  void lookAgain();
  void refreshMaps();
  // How long after the start (or an exec) a process that is not Python yet
  // is looked at again for an interpreter.
  static constexpr std::chrono::seconds kLookForPythonFor{5};
  // How long a pass waits, in all, for a sampled thread that is runnable
  // but not yet stopped (it waits for the CPU on a busy host).
  static constexpr std::chrono::milliseconds kRunnableStopDeadline{1000};
  bool needThreadNames(const std::vector<pid_t> &chosen) const;
  StackId internStackOf(Profile &profile, const Thread &thread);
  void addSample(Profile &profile, pid_t tid, StackId stack, uint64_t timestampNs,
                 uint64_t weightNs, SamplerStats &stats);

  // What a pass copied. Plain data: the pause has ended when it is read.
  struct PassCapture {
    PauseCapture pause;
    bool anchored = false; // not every sampled thread was stopped
    std::set<pid_t> stacksCopied;
    std::string attachError;
    std::vector<std::string> pythonErrors;
    std::vector<uint64_t> pages;       // read by the captures: next pass's prefetch
    std::vector<uint64_t> anchorPages; // read for the anchor's chain, after its stop
    pid_t anchorTid = 0;
  };
  enum class StopResult { Captured, AnchorLost, AttachFailed };
  StopPlanInputs planInputs();
  StopResult pauseFor(const StopPlan &plan, const std::vector<pid_t> &chosen, PassCapture &out);
  std::unique_ptr<PtraceSession> startStopping(const std::vector<pid_t> &stop, PassCapture &out);
  bool finishStopping(PtraceSession &session, PassCapture &out);
  StopResult stopAndCapture(const StopPlan &plan, const std::vector<pid_t> &chosen,
                            std::unique_ptr<PtraceSession> &session, PassCapture &out);
  StopResult captureAnchored(const GilAnchor &anchor, const std::vector<pid_t> &chosen,
                             PtraceSession &session, PassCapture &out);
  StopResult stopAwakeAndCapture(const StopPlan &plan, const std::vector<pid_t> &chosen,
                                 std::unique_ptr<PtraceSession> &session, PassCapture &out);
  void delayForTests() const;
  void capturePython(const std::vector<pid_t> &tids, PassCapture &out,
                     std::vector<uint64_t> &pages);
  void copyNativeStacks(const PtraceSession &session, PassCapture &out,
                        const std::vector<pid_t> &chosen);
  bool countPause(const PassCapture &pass, SamplerStats &stats);
  bool startOverAfterExec(SamplerStats &stats);
  void keepPagesForNextPass(PassCapture &pass);
  void recordPass(Profile &profile, const std::vector<pid_t> &chosen, PassCapture &pass,
                  uint64_t timestampNs, uint64_t weightNs, SamplerStats &stats);
  struct Repeat {
    StackId stack;
    bool holdsGil;
  };
  std::map<pid_t, python::PythonThreadStack>
  decodePass(PassCapture &pass, const std::vector<pid_t> &chosen,
             std::map<pid_t, ChainMemo::ChainKey> &keys, std::map<pid_t, Repeat> &repeats);
  std::optional<Thread> sampleThread(pid_t tid, python::PythonThreadStack *py,
                                     const StoppedThread *regs, bool withNative,
                                     const PassCapture &pass, SamplerStats &stats);
  void noteModulesWithoutSymbols(SamplerStats &stats);

  pid_t pid_;
  SamplerOptions options_;
  Process process_; // command, python info: what the writers show
  std::unique_ptr<TargetImage> image_;
  size_t notedModules_ = 0; // of image_->modulesWithoutSymbols(), in stats.notes
  bool pythonNoted_ = false; // process_.errors about Python are in stats.notes
  ThreadActivity activity_;
  python::CodeCache codes_{/*persistent=*/true};
  python::ThreadStateHints tstateHints_;
  std::vector<uint64_t> pythonPages_; // read by the last capture: prefetched
  std::vector<uint64_t> anchorPages_; // read for the last anchor's chain
  pid_t anchorPagesTid_ = 0;
  std::string exe_; // /proc/PID/exe when the process was last read
  bool pythonSeen_ = false; // a capture has shown Python frames
  std::chrono::steady_clock::time_point lookedAt_{}, lastLook_{}, lastMapsCheck_{};
  std::map<pid_t, std::string> threadNames_;
  // Sampled threads that showed no Python frames the last time: an
  // anchored pass stops them too, as their native stacks are what is shown.
  std::set<pid_t> withoutPythonFrames_;
  ChainMemo lastChains_; // by thread: its last Python-only stack
};

} // namespace stackpeek
