// Locals: the reprs of each frame's fast locals (`--locals`), read during
// the pause.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "memory/MemorySource.h"
#include "python/frames/Capture.h"
#include "python/layout/DepthLayout.h"
#include "python/objects/Reprs.h"

namespace stackpeek::python {

/// Fills `locals` of every captured thread frame and, when `tasks` is given,
/// of every task's suspended coroutine frames, with their fast locals' reprs
/// (one reader: the same bounds and code-object cache for both).
void captureLocals(const Interpreter &interp, const DepthLayout &d,
                   ReprReader &reprs, CapturedPython &captured,
                   CapturedAsyncio *tasks);

} // namespace stackpeek::python
