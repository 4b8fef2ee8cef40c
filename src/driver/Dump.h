// Dump: the whole `stackpeek dump` pipeline for one process, as one call.
//
// attach -> snapshot -> resume -> unwind -> decode -> symbolize -> model.
// Everything that can be done before the pause (reading /proc, locating the
// interpreter, opening files) is done before it, and everything expensive
// (unwinding, symbolization, decoding names) after it, so the target is
// stopped only while its registers, live stacks and Python frame chains are
// copied.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "llvm/Support/Error.h"

#include "model/Snapshot.h"

namespace stackpeek {

struct DumpOptions {
  bool native = false;         // merge native and Python frames
  size_t maxFrames = 0;        // keep only the N innermost frames (0 = all)
  std::vector<std::string> debugDirs;
  bool locals = false;         // Python: arguments and locals of each frame
  bool async = false;          // Python: asyncio tasks of every event loop
  // Test hook (STACKPEEK_TEST_HOLD_PAUSE): hold the target paused until a
  // signal arrives, so tests can kill stackpeek mid-pause.
  bool holdPauseForTests = false;
};

struct DumpResult {
  Process process;
  // The target (or some of its threads) went away mid-dump: what was
  // captured is in `process`, with notes in its errors.
  bool incomplete = false;
};

/// Fails only when nothing could be captured (no such process, permission
/// denied, ...); the error is an AttachError when attaching was the problem.
llvm::Expected<DumpResult> dumpProcess(pid_t pid, const DumpOptions &options);

} // namespace stackpeek
