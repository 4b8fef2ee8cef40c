// Resolve: decoding captured chains after the target runs again: code
// objects (immutable, so reading them late is safe), names, line tables,
// OS thread ids and thread names (docs/cpython-structures.md §2.1, §3, §4, §6).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "memory/MemorySource.h"
#include "model/Snapshot.h"
#include "process/TidMap.h"
#include "python/frames/Capture.h"

namespace stackpeek::python {

class CodeCache; // CodeCache.h

struct PythonThreadStack {
  pid_t tid = 0;           // 0 if the OS thread could not be identified
  int64_t ownTid = 0;      // the thread state's own id of it (its pid namespace)
  uint64_t threadIdent = 0;
  std::optional<std::string> name; // threading.Thread.name, when readable
  bool holdsGil = false;
  ThreadStatus status;
  std::vector<Frame> frames;       // Kind::Python, innermost first
  std::vector<std::string> errors;
};

/// Decodes captured chains into frames. `threads` (the target's threads,
/// from /proc/PID/task, and their ids in its own pid namespace) maps each
/// thread state to our id of its thread, and validates the pthread->tid
/// mapping used for 2.7-3.10; pass empty to trust glibc's default layout
/// and take the ids as they are.
/// `threadNames` false skips reading threading._active (a dict walk): the
/// sampler reads names once per thread, not once per sample.
/// `codes`, when given, keeps decoded code objects across calls (CodeCache.h);
/// its owner calls codes->newPass() whenever the target may have run since.
std::vector<PythonThreadStack> resolve(const Interpreter &interp,
                                       const CapturedPython &captured,
                                       MemorySource &mem,
                                       const TidMap &threads = {},
                                       bool threadNames = true,
                                       CodeCache *codes = nullptr);

/// Decodes frames that are not on a thread's chain (traceback entries,
/// suspended coroutines) with resolve()'s rules, one Frame per input, in
/// order; incomplete-frame filtering does not apply. Code objects are read
/// once per call, so pass all such frames together.
std::vector<Frame> resolveFrames(const Interpreter &interp,
                                 const std::vector<CapturedFrame> &frames,
                                 MemorySource &mem);

} // namespace stackpeek::python
