// The GIL as a witness that Python threads stood still.
//
// A Python thread changes its frame chain only while it holds the GIL (in
// a GIL build, every push, pop and instruction step of the eval loop runs
// under it). So to copy every thread's Python stack consistently it is
// enough that no thread can take the GIL meanwhile, and the sampler gets
// that by stopping one thread instead of all of them: the GIL's last
// holder. The proof is in the GIL's own bookkeeping, `_gil_runtime_state`
// (Python/ceval_gil.c, Include/internal/pycore_gil.h, 3.7 to 3.14):
//   {unsigned long interval; last_holder (+8); int locked (+16);
//    unsigned long switch_number (+24); cond; mutex; ...}
//  - take_gil() sets locked = 1, and when the taker is not last_holder it
//    stores itself there and increments switch_number, before it returns
//    to run Python code (the stores are published by the GIL mutex's
//    unlock, so they are visible before anything the taker does next).
//  - drop_gil() sets locked = 0 and may rewrite last_holder with the
//    dropping thread state (a thread that swapped thread states), never
//    with another thread's.
// Hence any thread other than last_holder's that starts running Python
// code moves switch_number first: if last_holder and switch_number read the
// same after the copy as before it, only last_holder's thread could have
// run Python code in between, held or released GIL alike. So the other
// threads' chains can be copied while that one thread is being stopped;
// its own chain is copied once it stands still. Stopping it also pins its
// thread state: it cannot exit and have a new thread's state allocated at
// the same address, which would take the GIL without moving the counter.
// The reads rely on x86-64 ordering (stores become visible in program
// order, loads are not reordered with loads). The sampler checks exactly
// this, and falls back to stopping every thread it samples when the check
// fails or cannot be made.
//
// Where the GIL is: _PyRuntime.ceval.gil (3.7-3.11, shared by every
// interpreter) or behind the interpreter's ceval.gil pointer (3.12+, where
// a subinterpreter may own a separate one: then there is no single lock,
// and we decline). 2.7's GIL is a bare semaphore and 3.6 keeps its record
// in static variables; neither is used here.
#include "python/frames/GilAnchor.h"
#include "python/frames/Interpreter.h"

#include <algorithm>
#include <cstring>

namespace stackpeek::python {

namespace {
// sys.setswitchinterval() takes seconds; an hour is far past any real use.
constexpr uint64_t kMaxSwitchIntervalUs = 3600ull * 1000 * 1000;
} // namespace

std::optional<bool> freeThreadedGilEnabled(const Interpreter &in, MemorySource &mem,
                                           uint64_t interpAddr) {
  const Layout &l = in.layout;
  uint64_t interp = interpAddr, gil = 0;
  int32_t enabled = 0;
  if (!l.freeThreaded || !l.gilEnabled || !l.interpGilPointer ||
      (!interp && !mem.read(in.interpHeadAddr, &interp, 8)) || !interp ||
      !mem.read(interp + *l.interpGilPointer, &gil, 8) || !gil ||
      !mem.read(gil + *l.gilEnabled, &enabled, 4))
    return std::nullopt;
  return enabled != 0;
}

uint64_t sharedGilAddress(const Interpreter &in, MemorySource &mem) {
  const Layout &l = in.layout;
  // Without a GIL no thread's stop keeps the others from running Python.
  if (l.freeThreaded && freeThreadedGilEnabled(in, mem) != true)
    return 0;
  switch (l.gilLock) {
  case GilLockModel::RuntimeGilStruct:
    return l.runtimeGil && in.runtimeAddr ? in.runtimeAddr + *l.runtimeGil : 0;
  case GilLockModel::InterpreterGilPointer: {
    if (!l.interpGilPointer)
      return 0;
    uint64_t interp = 0, next = 0, gil = 0;
    if (!mem.read(in.interpHeadAddr, &interp, 8) || !interp ||
        !mem.read(interp + l.interpNext, &next, 8) || next != 0 ||
        !mem.read(interp + *l.interpGilPointer, &gil, 8))
      return 0;
    return gil;
  }
  default:
    return 0;
  }
}

// A record that does not look like one (an interval of zero or of hours,
// `locked` neither 0 nor 1: not initialised yet, or offsets that do not
// fit this build) is not trusted: the sampler then stops every thread.
std::optional<GilHandover> readGilHandover(const Layout &l, MemorySource &mem, uint64_t gil) {
  // One read of the record's first words (they are contiguous).
  uint32_t end = std::max({l.gilInterval + 8, l.gilLastHolder + 8, l.gilLocked + 4,
                           l.gilSwitchNumber + 8});
  uint8_t bytes[64];
  if (!gil || end > sizeof bytes || !mem.read(gil, bytes, end))
    return std::nullopt;
  GilHandover h;
  uint64_t intervalUs = 0;
  int32_t locked = 0;
  std::memcpy(&intervalUs, bytes + l.gilInterval, 8);
  std::memcpy(&h.lastHolder, bytes + l.gilLastHolder, 8);
  std::memcpy(&locked, bytes + l.gilLocked, 4);
  std::memcpy(&h.switches, bytes + l.gilSwitchNumber, 8);
  if (intervalUs == 0 || intervalUs > kMaxSwitchIntervalUs || (locked != 0 && locked != 1))
    return std::nullopt;
  h.locked = locked == 1;
  return h;
}

} // namespace stackpeek::python
