// classifyGil(): does a Python thread hold its interpreter's GIL, wait for
// it, or neither?
//
// Holding is recorded by CPython and read during the pause (capture()).
// Waiting is not recorded anywhere: a thread in take_gil() sleeps in a futex
// on the GIL's condition variable (timed, it wakes every switch interval to
// ask the holder to drop it) or on the GIL's mutex. So a stopped thread is
// waiting when the system call it was stopped in is futex(2) on an address
// inside that lock (capture() records where it is, per version). The
// FORCE_SWITCHING pair switch_cond/switch_mutex is left out on purpose: the
// thread sleeping there is the one that just *dropped* the GIL and waits for
// a waiter to take it. With native frames, a `take_gil` frame is proof too
// (it also catches a waiter caught between two timed waits).
// One transient misreading remains: a thread contending for the GIL's mutex
// inside drop_gil (a few instructions long) looks like a waiter on 3.6-3.11,
// which clear the holder before dropping.
//
// Without registers (record --nonblocking) or without a known lock address,
// "not holding" is all we can say: NotHeld, never a guessed "released".
#include <sys/syscall.h>

#include "python/frames/Capture.h"
#include "python/frames/GilState.h"

namespace stackpeek::python {

namespace {

bool inGilFutex(const ThreadStatus &status, const SyscallStop &stop) {
  if (stop.number != SYS_futex)
    return false;
  for (const AddressRange &r : status.gilWaitFutexes)
    if (r.contains(stop.arg0))
      return true;
  return false;
}

// take_gil, or an LTO/cold clone of it (take_gil.lto_priv.0).
bool hasTakeGilFrame(const std::vector<Frame> &frames) {
  static const std::string kTakeGil = "take_gil";
  for (const Frame &f : frames) {
    if (f.kind != Frame::Kind::Native || !f.function)
      continue;
    const std::string &name = *f.function;
    if (name.compare(0, kTakeGil.size(), kTakeGil) == 0 &&
        (name.size() == kTakeGil.size() || name[kTakeGil.size()] == '.'))
      return true;
  }
  return false;
}

} // namespace

GilState classifyGil(bool holdsGil, const ThreadStatus &status,
                     const std::optional<SyscallStop> &stop,
                     const std::vector<Frame> &frames) {
  if (holdsGil)
    return GilState::Held;
  if (status.gilRequested == true)
    return GilState::Waiting;
  if (stop && inGilFutex(status, *stop))
    return GilState::Waiting;
  if (hasTakeGilFrame(frames))
    return GilState::Waiting;
  if (stop && !status.gilWaitFutexes.empty())
    return GilState::Released;
  return GilState::NotHeld;
}

} // namespace stackpeek::python
