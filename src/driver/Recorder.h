// Recorder: the sampling loop of `stackpeek record`.
//
// Ticks at a fixed rate on a monotonic clock; on each tick every sampled
// process gets one pass (see Sampler). If a pass overruns the next tick the
// loop does not try to catch up with a burst (that would distort the
// profile and hammer the target): it skips to the next future tick and
// counts the ticks it missed, which the status line reports as falling
// behind. With `subprocesses`, the process tree is re-read every 200 ms and
// new descendants are sampled from then on, each under its own pid.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "llvm/Support/Error.h"

#include "driver/Sampler.h"
#include "profile/Profile.h"

namespace stackpeek {

struct RecordOptions {
  SamplerOptions sampler;
  double rateHz = 100;
  std::optional<double> durationSeconds; // none: until the target exits or stop
  bool subprocesses = false;
};

struct RecordProgress {
  double elapsedSeconds = 0;
  double effectiveRateHz = 0; // passes per second so far
  uint64_t missedTicks = 0;   // ticks skipped because a pass overran
  bool behind = false;        // recently missing ticks
};

class Recorder {
public:
  explicit Recorder(RecordOptions options) : options_(std::move(options)) {}

  /// Starts sampling `pid` (and, with subprocesses, its descendants).
  llvm::Error addRoot(pid_t pid);

  using ProgressFn = std::function<void(const RecordProgress &, const SamplerStats &)>;
  /// Samples until `stop` is set, the duration passes, or every process has
  /// exited. Calls `onProgress` about twice a second.
  Profile run(const std::atomic<bool> &stop, const ProgressFn &onProgress);

  const SamplerStats &stats() const { return stats_; }
  const RecordProgress &progress() const { return progress_; }

private:
  void discoverSubprocesses();

  RecordOptions options_;
  pid_t root_ = 0;
  std::map<pid_t, std::unique_ptr<ProcessSampler>> samplers_;
  std::map<pid_t, bool> finished_; // pids seen and done (not re-added)
  SamplerStats stats_;
  RecordProgress progress_;
};

} // namespace stackpeek
