// StopPlan: which threads a sampling pass stops, and what makes the threads
// it leaves running safe to read.
//
// Stopping every sampled thread is always right, and with --native it is
// needed (registers are read in the stop). A Python-only pass can stop less:
//  - With a GIL, a thread changes its frame chain only while it holds the
//    GIL, so stopping the GIL's last holder (the anchor) freezes every
//    chain as long as the GIL does not change hands during the pass; the
//    hand-over record read before and after tells (python/frames/GilAnchor.cpp).
//  - Free-threaded without a GIL, a thread asleep in the kernel cannot
//    change its frames until it wakes: the sleepers are read unstopped and
//    trusted only when, after the read, each still sleeps and has the CPU
//    time it had before (a thread that woke, ran and slept again has more:
//    the kernel accounts for it when it is switched out). The running ones
//    are stopped.
// Threads whose native stack is shown (no thread state, or no Python frames
// last time) are stopped in every plan. When a plan's condition fails, the
// pass is taken again with every sampled thread stopped.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include "driver/ThreadActivity.h"
#include "memory/ProcessMemory.h"
#include "python/frames/Capture.h"
#include "python/frames/GilAnchor.h"
#include "python/frames/Interpreter.h"

namespace stackpeek {

struct GilAnchor {
  pid_t tid = 0;
  uint64_t tstate = 0;
  uint64_t gil = 0;
  python::GilHandover before; // read when it was chosen, before any stop
};

struct Sleepers {
  std::vector<pid_t> tids;
  std::vector<uint64_t> cpuNs; // each one's CPU time before the pass
};

struct StopPlan {
  std::vector<pid_t> stop;          // the threads to stop
  std::optional<GilAnchor> anchor;  // set: an anchored pass
  std::optional<Sleepers> sleepers; // set: a free-threaded pass
  bool stopsEvery() const { return !anchor && !sleepers; }
};

/// What the planner looks at.
struct StopPlanInputs {
  const python::Interpreter *interp = nullptr; // null: not Python (yet)
  ProcessMemory &live;
  const python::ThreadStateHints &hints;
  ThreadActivity &activity;
  const std::set<pid_t> &withoutPythonFrames; // showed no Python frames last time
  bool pythonOnly = true; // false with --native or --nonblocking
};

/// The plan for a pass over `chosen`.
StopPlan planStops(const StopPlanInputs &in, const std::vector<pid_t> &chosen);

/// Every sampled thread stopped.
StopPlan stopEvery(const std::vector<pid_t> &chosen);

/// After the sleepers were read: whether each still sleeps, with the CPU
/// time it had before.
bool sleepersStillAsleep(const Sleepers &sleepers, ThreadActivity &activity);

} // namespace stackpeek
