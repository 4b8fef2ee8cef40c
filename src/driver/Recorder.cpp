#include "driver/Recorder.h"

#include <sys/prctl.h>

#include <chrono>
#include <thread>

#include "process/Attach.h"
#include "process/ProcessTree.h"
#include "process/StrayLedger.h"

namespace stackpeek {

namespace {
using Clock = std::chrono::steady_clock;
uint64_t nanosSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
}
} // namespace

llvm::Error Recorder::addRoot(pid_t pid) {
  auto sampler = ProcessSampler::create(pid, options_.sampler);
  if (!sampler)
    return sampler.takeError();
  root_ = pid;
  samplers_[pid] = std::move(*sampler);
  return llvm::Error::success();
}

void Recorder::discoverSubprocesses() {
  for (pid_t pid : withDescendants({root_})) {
    if (samplers_.count(pid) || finished_.count(pid))
      continue;
    auto sampler = ProcessSampler::create(pid, options_.sampler);
    if (sampler) {
      samplers_[pid] = std::move(*sampler);
    } else {
      ++stats_.failures["cannot sample pid " + std::to_string(pid) + ": " +
                        llvm::toString(sampler.takeError())];
      finished_[pid] = true;
    }
  }
}

Profile Recorder::run(const std::atomic<bool> &stop, const ProgressFn &onProgress) {
  Profile profile;
  profile.rateHz = options_.rateHz;
  auto period = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / options_.rateHz));
  uint64_t weightNs = period.count();
  Clock::time_point start = Clock::now();
  Clock::time_point nextTick = start, nextReport = start, nextDiscovery = start;
  uint64_t missedAtLastReport = 0;
  // Wake at the tick, not up to 50 us after it (the default timer slack):
  // at 1000 Hz that slack is 5% of the period.
  ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

  while (!stop.load() && !samplers_.empty()) {
    if (options_.durationSeconds &&
        nanosSince(start) >= static_cast<uint64_t>(*options_.durationSeconds * 1e9))
      break;
    Clock::time_point now = Clock::now();
    if (options_.subprocesses && now >= nextDiscovery) {
      discoverSubprocesses();
      nextDiscovery = now + std::chrono::milliseconds(200);
    }
    uint64_t t = nanosSince(start);
    for (auto it = samplers_.begin(); it != samplers_.end();) {
      if (it->second->samplePass(profile, t, weightNs, stats_)) {
        ++it;
        continue;
      }
      profile.processes.push_back({it->first, it->second->process().command});
      finished_[it->first] = true;
      it = samplers_.erase(it);
    }
    // A thread that reached its stop only after its pass let go of the
    // others is released here, at most a tick late (Attach.h, strays).
    releaseStrayTracees();
    // Next tick. A tick is missed when its whole period went by without a
    // pass; a pass that starts late but within the period takes its sample
    // (at once), so one slow pass costs a late sample, not a lost one.
    nextTick += period;
    now = Clock::now();
    if (now >= nextTick + period) {
      uint64_t missed = (now - nextTick) / period;
      progress_.missedTicks += missed;
      nextTick += period * missed;
    }
    if (now >= nextReport) {
      double elapsed = nanosSince(start) / 1e9;
      progress_.elapsedSeconds = elapsed;
      progress_.effectiveRateHz = elapsed > 0 ? stats_.passes / elapsed / std::max<size_t>(1, samplers_.size()) : 0;
      progress_.behind = progress_.missedTicks > missedAtLastReport;
      missedAtLastReport = progress_.missedTicks;
      if (onProgress)
        onProgress(progress_, stats_);
      nextReport = now + std::chrono::milliseconds(500);
    }
    std::this_thread::sleep_until(nextTick);
  }
  for (auto &[pid, sampler] : samplers_)
    profile.processes.push_back({pid, sampler->process().command});
  profile.durationNs = nanosSince(start);
  progress_.elapsedSeconds = profile.durationNs / 1e9;
  return profile;
}

} // namespace stackpeek
