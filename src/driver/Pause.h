// Pause: what the target showed while it stood still, as a plain value.
//
// Only a PtraceSession can read registers or wait for stops, and it exists
// only for the pause: endPause() lets the target go, then moves what the
// session knew (which threads stopped, with their registers; which did not
// and why; how long they stood still; whether an exec crossed the pause)
// into a PauseCapture, and the session is gone. Whatever decodes a pause
// works from that copy, and so cannot touch a stopped thread, or forget to
// let one go.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "memory/SnapshotMemory.h"
#include "process/Attach.h"
#include "python/frames/Capture.h"

namespace stackpeek {

struct PauseCapture {
  std::vector<StoppedThread> stopped;       // each thread that stopped, with its registers
  std::vector<UncapturedThread> uncaptured; // each that did not, and why
  std::vector<MemoryCopy> stacks;           // the live part of the stacks copied
  std::optional<python::CapturedPython> python; // the frame chains read
  std::chrono::microseconds duration{0};    // 0: no thread was stopped
  bool execSeen = false;                    // a thread we held finished an exec

  bool stoppedAny() const { return !stopped.empty(); }
  const StoppedThread *stoppedThread(pid_t tid) const;
};

/// Lets the target go and keeps what `session` knew in `capture`. The
/// session is destroyed here; a null one leaves `capture` as it is.
void endPause(std::unique_ptr<PtraceSession> session, PauseCapture &capture);

} // namespace stackpeek
