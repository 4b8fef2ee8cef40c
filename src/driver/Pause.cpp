#include "driver/Pause.h"

namespace stackpeek {

const StoppedThread *PauseCapture::stoppedThread(pid_t tid) const {
  for (const StoppedThread &t : stopped)
    if (t.tid == tid)
      return &t;
  return nullptr;
}

void endPause(std::unique_ptr<PtraceSession> session, PauseCapture &capture) {
  if (!session)
    return;
  session->detach();
  capture.stopped = session->stoppedThreads();
  capture.uncaptured = session->uncaptured();
  capture.duration = session->pauseDuration();
  capture.execSeen = session->execSeen();
}

} // namespace stackpeek
