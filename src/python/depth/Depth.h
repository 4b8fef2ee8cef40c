// Depth: what a Python dump can show beyond the frames — local variables
// (`--locals`), the exception each thread is handling, and asyncio task
// trees (`--async`) — split into the same two phases as the stacks.
//
//   captureDepth()  during the pause, after capture(): reads every value
//                   that changes as the target runs (locals' objects, the
//                   exception chain, tasks and their coroutine chains) and
//                   copies it out as text or addresses of immutable code.
//   resolveDepth()  after resume: decodes the code objects of traceback and
//                   coroutine frames (immutable, so safe to read late) and
//                   maps thread idents to OS thread ids.
//   applyDepth()    puts the results on the model's threads and process.
//
// Why values are read during the pause: once the target runs, a local may be
// rebound and its old object freed and its memory reused, so copying only the
// fast-locals pointers and reading the objects later could show a value the
// variable never had, or garbage. pystack reads everything while paused too.
// The pause grows with the work, so every reader is bounded (ReprLimits,
// kMaxLocalsPerFrame, chain and task limits); scripts/bench/python-depth
// measures the cost.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "memory/MemorySource.h"
#include "model/Snapshot.h"
#include "python/layout/DepthLayout.h"
#include "python/depth/Asyncio.h"
#include "python/depth/Exceptions.h"
#include "python/depth/Locals.h"
#include "python/frames/Capture.h"
#include "python/frames/Resolve.h"
#include "python/objects/Reprs.h"

namespace stackpeek::python {

struct DepthOptions {
  bool locals = false;
  bool exceptions = true;
  bool asyncio = false;
  ReprLimits reprs;
};

inline constexpr size_t kMaxLocalsPerFrame = 256;
inline constexpr size_t kMaxExceptionChain = 16;
inline constexpr size_t kMaxTracebackEntries = 256;
inline constexpr size_t kMaxTasks = 100000;
inline constexpr size_t kMaxAwaitChain = 256;

// --- the phases --------------------------------------------------------------

struct CapturedDepth {
  std::unordered_map<uint64_t, std::vector<CapturedException>> exceptions; // by tstate
  std::optional<CapturedAsyncio> asyncio;
  std::vector<std::string> errors;
};

/// During the pause. With options.locals, fills the locals of the frames in
/// `captured` and of the tasks' coroutine frames.
CapturedDepth captureDepth(const Interpreter &interp, CapturedPython &captured,
                           MemorySource &mem, const DepthOptions &options);

struct ResolvedDepth {
  std::map<pid_t, std::vector<PythonException>> exceptions;
  std::optional<AsyncioSnapshot> asyncio;
  std::vector<std::string> errors;
};

/// After resume. `stacks` is resolve()'s result for the same capture (one
/// entry per captured thread, in order), used to map threads to tids.
ResolvedDepth resolveDepth(const Interpreter &interp,
                           const CapturedPython &captured,
                           const CapturedDepth &depth, MemorySource &mem,
                           const std::vector<PythonThreadStack> &stacks);

/// Copies the results onto the process's threads (matched by tid).
void applyDepth(ResolvedDepth depth, Process &process);

} // namespace stackpeek::python
