// PythonStacks: the CPython frame decoder's public API.
//
// A Python thread's stack lives in interpreter data structures, not only on
// the native stack, so dumping it means reading CPython internals out of
// process: docs/cpython-structures.md states the structures and rules read,
// docs/python-versions.md what was verified on each version.
// The work is split so the target is paused as briefly as possible:
//
//   locate()  before the pause: find libpython/the executable in
//             /proc/PID/maps, read its ELF symbols, determine the version and
//             the layout table, validate the runtime. May open files.
//   capture() during the pause: walk interpreters -> thread states -> frame
//             chains, copying only addresses and instruction positions.
//             Memory reads only, bounded and cycle-checked.
//   resolve() after the pause: read code objects (immutable, so reading them
//             late is safe), decode names and line tables, map thread states
//             to OS thread ids, read thread names.
//   mergeNativeAndPython(): splice a thread's Python frames into its native
//             stack in place of the interpreter's eval-loop frames.
//
// Target memory is untrusted: every read is checked, and a frame that cannot
// be decoded becomes a Frame with `error` set; the rest of the stack continues.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <string>
#include <vector>

#include "llvm/Support/Error.h"
#include "memory/MemorySource.h"
#include "model/Snapshot.h"
#include "process/Maps.h"
#include "process/TidMap.h"
#include "python/DepthLayout.h"
#include "python/Layout.h"

namespace stackpeek::python {

class CodeCache; // CodeCache.h

/// A located, validated CPython runtime in one process.
struct Interpreter {
  Layout layout;                 // layout.version is the detected version
  std::string modulePath;        // libpython or executable, as in the maps
  uint64_t loadBias = 0;         // runtime address - link-time address
  uint64_t runtimeAddr = 0;      // _PyRuntime (3.7+), 0 before
  uint64_t interpHeadAddr = 0;   // address of the first-interpreter pointer
  uint64_t currentTstateAddr = 0; // &_PyThreadState_Current (2.7/3.6), else 0
  // 2.7/3.6 keep the GIL and the collector flag in static variables (local
  // symbols, .symtab only); 0 when the symbol was not found.
  uint64_t gilLockPointerAddr = 0; // 2.7: &interpreter_lock
  uint64_t gilCondAddr = 0, gilMutexAddr = 0; // 3.6: &gil_cond, &gil_mutex
  uint64_t gcCollectingAddr = 0;   // 2.7/3.6: &collecting
  std::vector<std::string> warnings; // e.g. debug offsets vs built-in table
  // What locals, exceptions and tasks need (DepthLayout.h), from the same
  // debug offsets as `layout` on 3.13+; nullopt when the version has none.
  std::optional<DepthLayout> depth;
  // 3.14+: where the `_asyncio` module's debug offsets are (its
  // .AsyncioDebug section: in the interpreter for a static build, else in
  // the _asyncio extension once imported); 0 when not found.
  uint64_t asyncioDebugAddr = 0;

  PythonVersion version() const { return layout.version; }
  PythonInfo info() const {
    PythonInfo i{layout.version.toString(), "cpython"};
    i.freeThreaded = layout.freeThreaded;
    return i;
  }
};

/// Finds the interpreter of process `pid`. nullopt: not a (supported-layout)
/// CPython process. An error: it looks like Python but could not be decoded
/// (unsupported version, runtime not initialised, unreadable file, ...).
llvm::Expected<std::optional<Interpreter>> locate(pid_t pid, MemorySource &mem);

/// 3.14+, for --async: finds `_asyncio`'s debug offsets in an extension
/// module the target imported (one of `maps`, the target's mappings), when
/// the interpreter does not hold them. Reads ELF headers: call before the
/// pause.
void locateAsyncioDebug(pid_t pid, const std::vector<MapEntry> &maps, Interpreter &in);

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

/// The system call a stopped thread was in, from its registers.
struct SyscallStop {
  long number = -1;    // orig_rax; -1 when not stopped in a system call
  uint64_t arg0 = 0;   // rdi: for futex, the futex word's address
};

/// The thread's GIL state from what capture() read, the system call it was
/// stopped in (nullopt: registers unknown, e.g. record --nonblocking) and
/// its native frames (`take_gil` is proof of waiting).
GilState classifyGil(bool holdsGil, const ThreadStatus &status,
                     const std::optional<SyscallStop> &stop,
                     const std::vector<Frame> &frames);

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

/// The OS thread a thread state belongs to, as we name it: native_thread_id
/// (3.11+), else the tid in glibc's struct pthread that thread_id points to,
/// mapped through `tids` (see CaptureLimits::tidMap).
std::optional<pid_t> threadStateTid(const Layout &l, MemorySource &mem, uint64_t tstateAddr,
                                    uint64_t pthreadTidOffset, const TidMap *tids = nullptr);

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

struct MergedStack {
  std::vector<Frame> frames;          // innermost first
  std::optional<std::string> warning; // set when the stacks did not line up
};

/// True for native frames that run the bytecode loop
/// (_PyEval_EvalFrameDefault; PyEval_EvalFrameEx on 2.7).
bool isEvalFrame(const Frame &native);

/// Replaces the eval-loop native frames by the Python frames each ran. Each
/// activation's Python frames end (outermost) at a frame with pythonEntry.
/// Activations are placed by where their entry record lies on the native
/// stack when every one of them has one there (3.12+), else by counting
/// eval-loop frames by name.
MergedStack mergeNativeAndPython(const std::vector<Frame> &native,
                                 const std::vector<Frame> &python);

} // namespace stackpeek::python
