// Exceptions: the exception each thread is handling (sys.exc_info()), its
// cause and context chain and their tracebacks, read during the pause.
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

struct CapturedTracebackEntry {
  CapturedFrame frame; // code + position; resolved after resume
  int32_t lineno = -1; // tb_lineno (-1: computed lazily, 3.12+)
};

struct CapturedException {
  std::string type, message;
  std::string chainedAs; // "", "cause" or "context"
  std::vector<CapturedTracebackEntry> traceback; // most recent call last
  std::optional<std::string> error;
};

/// The chain sys.exc_info() of thread state `tstateAddr` would start, read
/// now: [handled, its cause or context, ...]; empty when none.
std::vector<CapturedException> captureHandledException(
    const Interpreter &interp, const DepthLayout &d, ReprReader &reprs,
    uint64_t tstateAddr);

} // namespace stackpeek::python
