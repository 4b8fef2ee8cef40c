// Capture: walking thread states and frame chains while the target is
// stopped, copying only addresses and instruction positions; memory reads
// only, bounded and cycle-checked (docs/cpython-structures.md §2-3).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "llvm/Support/Error.h"
#include "memory/MemorySource.h"
#include "model/Snapshot.h"
#include "process/TidMap.h"
#include "python/frames/Interpreter.h"

namespace stackpeek::python {

/// Where each OS thread's thread state was at the last full walk of the
/// thread list, kept by a caller that captures over and over (the sampler).
/// With it, capture() reads just the thread states of `onlyTids` instead
/// of walking all of them: for a server with 200 threads, 2 reads instead
/// of 200 during the pause. A hint is used only after checking that the
/// thread state there still names that thread and interpreter; any miss
/// falls back to a full walk, which refreshes the hints, as does every
/// kFullWalkEvery-th capture (new threads, freed thread states).
struct ThreadStateHints {
  static constexpr unsigned kFullWalkEvery = 100;
  static constexpr size_t kMaxWithoutPython = 4096;
  uint64_t interpAddr = 0;                         // the only interpreter
  std::unordered_map<pid_t, uint64_t> tstateByTid; // tid -> thread state
  std::unordered_set<pid_t> withoutPython; // chosen, but no thread state
  unsigned capturesSinceWalk = 0;
  bool valid = false; // false: walk (set after a walk of one interpreter)
};

/// Limits for capture; the defaults bound a hostile or corrupt target.
struct CaptureLimits {
  size_t maxInterpreters = 64;
  size_t maxThreads = 10000;
  size_t maxFramesPerThread = 10000;
  // Walk only the frame chains of these OS threads (the sampler's chosen
  // threads); empty: every thread. On 2.7-3.10 a thread state's tid is read
  // from glibc's struct pthread at pthreadTidOffset (resolve() validates it).
  std::vector<pid_t> onlyTids;
  uint64_t pthreadTidOffset = 0x2d0;
  // Thread states name their threads in the target's own pid namespace;
  // this gives ours (onlyTids, hints and osTid are ours). Null: the same.
  const TidMap *tidMap = nullptr;
  ThreadStateHints *hints = nullptr; // used with onlyTids only
  // GIL holder and waiters, the running collector (ThreadStatus): a few
  // more reads per capture, which the sampler makes only for --gil.
  bool threadStatus = true;
};

struct CapturedFrame {
  uint64_t frameAddr = 0;
  uint64_t codeAddr = 0; // f_code / f_executable
  int64_t lasti = -1;    // ≤3.10: f_lasti as stored
  uint64_t instrPtr = 0; // 3.11+: prev_instr / instr_ptr
  uint8_t owner = 0;       // 3.11+
  int32_t tlbcIndex = 0;   // free-threaded 3.14+: which bytecode copy
  bool entry = false;      // first frame of a C->Python eval activation
  uint64_t entryRecord = 0; // 3.12+: address of the shim frame closing it
  std::optional<std::string> error; // the chain was cut here
  // --locals: read during the pause by captureDepth() (Depth.h); resolve()
  // hands them on to the decoded Frame.
  std::vector<LocalVariable> locals;
};

/// A half-open range of target addresses.
struct AddressRange {
  uint64_t begin = 0, end = 0;
  bool contains(uint64_t addr) const { return addr >= begin && addr < end; }
};

/// Thread-state details read during the pause, beyond who holds the GIL.
struct ThreadStatus {
  // The futex words a thread waiting for the GIL sleeps on (its condition
  // variable and mutex); empty when this version's GIL cannot be located.
  std::vector<AddressRange> gilWaitFutexes;
  // The collector runs on this thread (see Capture.cpp for how that is
  // decided); nullopt when the collector's flag cannot be read.
  std::optional<bool> collectingGarbage;
  // A free-threaded build running without its GIL: no thread holds one or
  // waits for one, so the thread has no GIL state at all.
  bool noGil = false;
  // 3.15+: the thread's own gil_requested flag (it is in take_gil), which
  // tells waiting without registers; nullopt before 3.15.
  std::optional<bool> gilRequested;
};

struct CapturedThread {
  uint64_t tstateAddr = 0, interpAddr = 0;
  uint64_t threadIdent = 0;                  // pthread_t (threading ident)
  std::optional<uint64_t> nativeThreadId;    // 3.11+
  pid_t osTid = 0; // when capture() read it (to filter, or for hints)
  bool holdsGil = false;
  ThreadStatus status;
  std::vector<CapturedFrame> frames;         // innermost first
  std::vector<std::string> errors;
};

struct CapturedPython {
  std::vector<CapturedThread> threads;
  std::vector<std::string> errors; // process-level (interpreter chain) issues
  // Free-threaded builds: whether the main interpreter's GIL was enabled at
  // run time (PYTHON_GIL=1, -X gil=1, or an extension that needs it);
  // nullopt on GIL builds or when unreadable.
  std::optional<bool> gilEnabled;
};

/// Walks every thread's frame chain. Call while the target is stopped.
llvm::Expected<CapturedPython> capture(const Interpreter &interp,
                                       MemorySource &mem,
                                       const CaptureLimits &limits = {});

/// The OS thread a thread state belongs to, as we name it: native_thread_id
/// (3.11+), else the tid in glibc's struct pthread that thread_id points to,
/// mapped through `tids` (see CaptureLimits::tidMap).
std::optional<pid_t> threadStateTid(const Layout &l, MemorySource &mem, uint64_t tstateAddr,
                                    uint64_t pthreadTidOffset, const TidMap *tids = nullptr);

} // namespace stackpeek::python
