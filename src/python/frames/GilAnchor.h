// GilAnchor: the GIL's hand-over record, read while threads run, which
// lets the sampler stop only the GIL's last holder (GilAnchor.cpp: why
// that is enough).
#pragma once

#include <cstdint>
#include <optional>

#include "memory/MemorySource.h"
#include "python/frames/Interpreter.h"

namespace stackpeek::python {

/// The GIL's hand-over record (GilAnchor.cpp): the thread state that took
/// it last, whether it is held, and how many times it changed hands.
struct GilHandover {
  uint64_t lastHolder = 0;
  bool locked = false;
  uint64_t switches = 0;
};

/// Where the one GIL that every Python thread of the process takes lives;
/// 0 when there is no single lock to watch: 2.7 and 3.6 (no hand-over
/// record that we read), a layout whose GIL offsets are not known, or a
/// second interpreter (3.12+ may give it a GIL of its own). `mem` must not
/// serve cached pages: the answer is used while threads run.
uint64_t sharedGilAddress(const Interpreter &in, MemorySource &mem);

/// Free-threaded builds: whether the GIL of the interpreter state at
/// `interpAddr` (the main one by default) is enabled now (PYTHON_GIL=1, or
/// an extension that needs it); nullopt on GIL builds or when unreadable.
std::optional<bool> freeThreadedGilEnabled(const Interpreter &in, MemorySource &mem,
                                           uint64_t interpAddr = 0);

/// Reads the hand-over record of the GIL at `gil` (see sharedGilAddress).
std::optional<GilHandover> readGilHandover(const Layout &l, MemorySource &mem, uint64_t gil);

} // namespace stackpeek::python
