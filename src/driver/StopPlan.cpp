#include "driver/StopPlan.h"

#include <algorithm>

namespace stackpeek {

namespace {

bool showsNativeStack(const StopPlanInputs &in, pid_t tid) {
  return !in.hints.tstateByTid.count(tid) || in.withoutPythonFrames.count(tid);
}

// The GIL's last holder, when the hints place it; nullopt when there is no
// single GIL record to watch (sharedGilAddress).
std::optional<GilAnchor> findGilAnchor(const StopPlanInputs &in) {
  UncachedReads mem(in.live);
  uint64_t gil = python::sharedGilAddress(*in.interp, mem);
  if (!gil)
    return std::nullopt;
  std::optional<python::GilHandover> handover =
      python::readGilHandover(in.interp->layout, mem, gil);
  if (!handover || !handover->lastHolder)
    return std::nullopt;
  for (const auto &[tid, tstate] : in.hints.tstateByTid)
    if (tstate == handover->lastHolder)
      return GilAnchor{tid, tstate, gil, *handover};
  return std::nullopt;
}

// Free-threaded builds without a GIL: the chosen threads asleep in the
// kernel whose chains can be read unstopped.
std::optional<Sleepers> findSleepers(const StopPlanInputs &in, const std::vector<pid_t> &chosen) {
  if (!in.interp->layout.freeThreaded)
    return std::nullopt;
  UncachedReads mem(in.live);
  if (python::freeThreadedGilEnabled(*in.interp, mem) != false)
    return std::nullopt;
  Sleepers s;
  for (pid_t tid : chosen) {
    if (showsNativeStack(in, tid))
      continue;
    char state = in.activity.state(tid);
    std::optional<uint64_t> cpu = in.activity.cpuTimeNs(tid);
    if ((state == 'S' || state == 'D') && cpu)
      s.tids.push_back(tid), s.cpuNs.push_back(*cpu);
  }
  if (s.tids.empty())
    return std::nullopt;
  return s;
}

} // namespace

StopPlan stopEvery(const std::vector<pid_t> &chosen) { return StopPlan{chosen, {}, {}}; }

StopPlan planStops(const StopPlanInputs &in, const std::vector<pid_t> &chosen) {
  if (!in.pythonOnly || !in.interp || !in.hints.valid)
    return stopEvery(chosen);
  // Free-threaded builds without a GIL have no anchor: asking for the
  // sleepers first reads the GIL's state once per pass.
  if (std::optional<Sleepers> sleepers = findSleepers(in, chosen)) {
    StopPlan plan;
    for (pid_t tid : chosen)
      if (std::find(sleepers->tids.begin(), sleepers->tids.end(), tid) == sleepers->tids.end())
        plan.stop.push_back(tid);
    plan.sleepers = std::move(sleepers);
    return plan;
  }
  std::optional<GilAnchor> anchor = findGilAnchor(in);
  if (!anchor)
    return stopEvery(chosen);
  StopPlan plan;
  plan.stop.push_back(anchor->tid);
  for (pid_t tid : chosen)
    if (tid != anchor->tid && showsNativeStack(in, tid))
      plan.stop.push_back(tid);
  plan.anchor = std::move(anchor);
  return plan;
}

bool sleepersStillAsleep(const Sleepers &sleepers, ThreadActivity &activity) {
  for (size_t i = 0; i < sleepers.tids.size(); ++i) {
    char state = activity.state(sleepers.tids[i]);
    if ((state != 'S' && state != 'D') || activity.cpuTimeNs(sleepers.tids[i]) != sleepers.cpuNs[i])
      return false;
  }
  return true;
}

} // namespace stackpeek
