// Asyncio: every asyncio task of the interpreter, its coroutine chain and
// who awaits it, read during the pause.
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

struct CapturedTask {
  uint64_t addr = 0, loop = 0;
  std::string name, state;
  std::vector<CapturedFrame> stack; // outermost coroutine first
  std::vector<uint64_t> awaitedBy;  // task addresses
  std::optional<std::string> awaiting;
  std::optional<std::string> error;
};

struct CapturedAsyncio {
  std::vector<CapturedTask> tasks;
  std::map<uint64_t, uint64_t> loopThreadIdent; // loop -> threading ident
  std::vector<std::string> errors;
};

/// Every asyncio.Task of the interpreter (C `_asyncio.Task` and subclasses;
/// 3.8+), its coroutine chain and who awaits it.
CapturedAsyncio captureAsyncio(const Interpreter &interp, const DepthLayout &d,
                               ReprReader &reprs,
                               const CapturedPython &captured);

} // namespace stackpeek::python
