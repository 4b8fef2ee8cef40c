// Interpreter: one located CPython runtime, and how the frame decoder is
// split around the pause.
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
//
// Each phase has its own header: Locate.h, Capture.h, Resolve.h, Merge.h;
// GilAnchor.h and GilState.h read and classify the GIL.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/Snapshot.h"
#include "python/layout/DepthLayout.h"
#include "python/layout/Layout.h"

namespace stackpeek::python {

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

} // namespace stackpeek::python
