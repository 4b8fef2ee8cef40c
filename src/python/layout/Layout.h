// Layout: where CPython keeps the fields stackpeek reads, per minor version.
//
// CPython's internal structs (interpreter and thread states, frames, code
// objects, strings, dicts) change layout between minor versions and are not a
// stable ABI. Rather than compile against each version's headers (which would
// mean one #ifdef forest per version), we describe each version as data: one
// `Layout` value per supported minor version (2.7, 3.6-3.15), holding byte
// offsets (x86_64 Linux, release GIL builds; free-threaded ones come from
// their debug offsets, see VersionLayouts.h) and a few
// "model" enums for things whose *shape* changed (frame objects vs.
// interpreter frames, line-table encodings, GIL bookkeeping, dict layouts).
//
// The numbers were taken from offsetof() on the headers of the pyenv builds
// 2.7.18, 3.6.15, 3.7.16, 3.8.18, 3.9.18, 3.10.13, 3.11.7, 3.12.1, 3.13.0 and
// Debian's 3.11.2 (identical to 3.11.7). From 3.13 on CPython publishes most
// of them itself in `_Py_DebugOffsets` at the start of `_PyRuntime`;
// `layoutsFromDebugOffsets` (VersionLayouts.h) overlays those onto the
// built-in table so that a new minor version mostly needs the debug-offsets
// field positions only (see docs/python-versions.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "llvm/Support/Error.h"
#include "memory/MemorySource.h"

namespace stackpeek::python {

struct PythonVersion {
  int major = 0, minor = 0, micro = 0;
  uint64_t hex = 0; // PY_VERSION_HEX when known (3.11+), else 0
  std::string toString() const;
  bool atLeast(int maj, int min) const {
    return major > maj || (major == maj && minor >= min);
  }
  static PythonVersion fromHex(uint64_t hex);
};

// ≤3.10: heap PyFrameObjects linked by f_back; 3.11+: _PyInterpreterFrame
// records in per-thread data stacks, linked by `previous`.
enum class FrameModel { FrameObject, InterpreterFrame };

// How code-object positions map to lines (see LineTable.h).
enum class LineTableFormat {
  LnotabUnsignedLines, // 2.7 (and ≤3.5): line increments are unsigned
  LnotabSignedLines,   // 3.6-3.9
  Linetable310,        // 3.10 (PEP 626)
  Locations311,        // 3.11+ (PEP 657, with columns)
};

// Where "the thread holding the GIL" is recorded.
enum class GilModel {
  CurrentThreadSymbol,  // 2.7/3.6: *_PyThreadState_Current
  RuntimeTstateCurrent, // 3.7-3.11: _PyRuntime.gilstate.tstate_current
  InterpreterGil,       // 3.12+: interp->ceval.gil → {last_holder, locked}
};

// Where the lock a thread waiting for the GIL sleeps on lives. A waiter
// blocks in a futex on the GIL's condition variable or mutex (take_gil), so
// its futex address tells it apart from threads blocked on anything else.
enum class GilLockModel {
  Unknown,              // no table for it (a layout the debug offsets moved)
  StaticSemaphore,      // 2.7: `interpreter_lock`, a pointer to a malloc'ed sem_t
  StaticCondMutex,      // 3.6: static `gil_cond` and `gil_mutex` in ceval_gil.h
  RuntimeGilStruct,     // 3.7-3.11: _gil_runtime_state embedded in _PyRuntime
  InterpreterGilPointer // 3.12+: interp->ceval.gil points at it
};

// Where the collector's "currently collecting" flag is.
enum class GcModel {
  StaticCollecting,    // 2.7/3.6: `static int collecting` in gcmodule.c
  RuntimeCollecting,   // 3.7/3.8: _PyRuntime.gc.collecting
  InterpreterCollecting // 3.9+: interp->gc.collecting
};

enum class StringModel { Py2, Py3 };

// Dict and instance-dict layouts, needed only for thread names.
enum class DictModel { Py27, Py36, Py311 };
enum class InstanceDictModel {
  TypeDictOffset,  // ≤3.10: *(obj + type->tp_dictoffset)
  Managed311,      // values at obj-4 words, dict at obj-3 words
  DictOrValues312, // one tagged word at obj-3 words (bit 0: values)
  Inline313,       // dict before obj (Layout::managedDictBefore), else
                   // inline values after the type's basic size
};
enum class IntModel { Py2Int, SignedSize, LvTag };

struct Layout {
  PythonVersion version;

  // _PyRuntime (3.7+)
  std::optional<uint32_t> runtimeInterpretersHead;
  std::optional<uint32_t> runtimeTstateCurrent; // 3.7-3.11
  uint32_t runtimeSize = 0; // bytes to copy when reading _PyRuntime fields

  // PyInterpreterState
  uint32_t interpSize = 0; // bytes to copy
  uint32_t interpNext = 0;
  uint32_t interpThreadsHead = 0;
  uint32_t interpModules = 0;
  std::optional<uint32_t> interpGilPointer; // 3.12+: ceval.gil
  uint32_t gilLastHolder = 8, gilLocked = 16; // inside _gil_runtime_state
  uint32_t gilInterval = 0, gilSwitchNumber = 24; // unsigned long each; 3.7-3.14
  GilModel gilModel = GilModel::CurrentThreadSymbol;

  // GIL waiters and the collector (thread-state details). In every
  // _gil_runtime_state (3.7-3.13): interval, last_holder, locked,
  // switch_number, cond (+32), mutex (+80), switch_cond (+120), switch_mutex.
  // [cond, switch_cond) covers what take_gil waits on; the switch pair is
  // waited on by the thread *dropping* the GIL, so it is left out.
  GilLockModel gilLock = GilLockModel::Unknown;
  std::optional<uint32_t> runtimeGil; // 3.7-3.11: offset of ceval.gil
  uint32_t gilWaitBegin = 32, gilWaitEnd = 120;
  uint32_t condSize = 48, mutexSize = 40, semSize = 32; // glibc x86_64
  GcModel gcModel = GcModel::StaticCollecting;
  std::optional<uint32_t> gcCollecting; // int, in _PyRuntime or the interpreter
  // Free-threaded builds (3.13t+): no GIL unless re-enabled at run time,
  // which the GIL struct's `enabled` counter (nonzero: enabled) says.
  bool freeThreaded = false;
  std::optional<uint32_t> gilEnabled; // int, inside _gil_runtime_state
  // 3.15+: PyThreadState.holds_gil and gil_requested (ints), set by the
  // thread itself: it holds the GIL; it waits for it in take_gil.
  std::optional<uint32_t> tstateHoldsGil, tstateGilRequested;

  // PyThreadState
  uint32_t tstateSize = 0;
  uint32_t tstateNext = 0;
  uint32_t tstateInterp = 0;
  uint32_t tstateFrame = 0; // frame / cframe / current_frame
  std::optional<uint32_t> cframeCurrentFrame; // 3.11/3.12: via _PyCFrame
  uint32_t tstateThreadId = 0;
  std::optional<uint32_t> tstateNativeThreadId; // 3.11+

  // Frames
  FrameModel frameModel = FrameModel::FrameObject;
  uint32_t frameSize = 0;
  uint32_t frameBack = 0;
  uint32_t frameCode = 0;
  uint32_t frameLasti = 0;        // FrameObject: int f_lasti
  bool lastiInCodeUnits = false;  // 3.10: f_lasti counts 2-byte code units
  uint32_t frameInstrPtr = 0;     // InterpreterFrame: prev_instr / instr_ptr
  std::optional<uint32_t> frameIsEntry; // 3.11 bool
  std::optional<uint32_t> frameOwner;   // 3.11+ char
  uint8_t ownerGenerator = 1;
  // 3.12+: owners from this value up are not Python code but C/eval
  // boundaries: CSTACK (3) in 3.12/3.13; INTERPRETER (3) and CSTACK (4) in
  // 3.14; INTERPRETER (3), also the base_frame sentinel, in 3.15.
  std::optional<uint8_t> firstShimOwner;
  // 3.14+: f_executable is a _PyStackRef whose low bits are tags.
  uint64_t executableTagBits = 0;
  // 3.14+ free-threaded: thread-local bytecode. instr_ptr points into
  // co_tlbc->entries[tlbc_index] (index 0 is co_code_adaptive itself).
  std::optional<uint32_t> frameTlbcIndex; // int32
  std::optional<uint32_t> coTlbc;         // _PyCodeArray*: {size, entries[]}

  // PyCodeObject
  uint32_t codeSize = 0;
  uint32_t coFilename = 0, coName = 0;
  std::optional<uint32_t> coQualname; // 3.11+
  uint32_t coFirstLineno = 0;
  uint32_t coLineTable = 0;
  std::optional<uint32_t> coCodeAdaptive;   // 3.11+
  std::optional<uint32_t> coFirstTraceable; // 3.11+ (int, code units)
  LineTableFormat lineTable = LineTableFormat::LnotabSignedLines;

  // Objects and types
  uint32_t obType = 8;
  uint32_t tpName = 24, tpFlags = 168, tpDictOffset = 288, tpBasicSize = 32;
  std::optional<uint32_t> htCachedKeys; // 3.11+

  // Strings and bytes
  StringModel stringModel = StringModel::Py3;
  uint32_t bytesSize = 16, bytesData = 32; // 2.7 str: data at 36
  uint32_t unicodeLength = 16, unicodeState = 32;
  // First bit of `kind` in the state word: after interned:2, or after a
  // whole `unsigned char interned` on free-threaded 3.14+ (atomic access).
  uint8_t unicodeKindBit = 2;
  uint32_t asciiObjectSize = 48, compactUnicodeSize = 72; // 40/56 in 3.12+
  uint32_t py2UnicodeData = 24, py2UnicodeWidth = 4;

  // Dicts (thread names)
  DictModel dictModel = DictModel::Py36;
  uint32_t dictUsed = 16, dictKeys = 32, dictValues = 40;
  uint32_t dictValuesArray = 0; // offset of values[] inside PyDictValues
  InstanceDictModel instanceDict = InstanceDictModel::TypeDictOffset;
  // Inline313: the managed dict pointer is this many bytes before the
  // object: 3 words (after the GC header's 2), or 1 word on free-threaded
  // builds, which have no GC header in front of objects.
  uint32_t managedDictBefore = 24;
  IntModel intModel = IntModel::SignedSize;
  uint32_t intHeader = 16, intDigits = 24; // ob_size / lv_tag, ob_digit
  uint32_t moduleDict = 16; // PyModuleObject.md_dict
};

/// The `_Py_DebugOffsets` cookie ("xdebugpy") at the start of _PyRuntime.
inline constexpr char kDebugOffsetsCookie[8] = {'x', 'd', 'e', 'b',
                                                'u', 'g', 'p', 'y'};

/// Differences between two layouts' shared offsets, as "field: a != b"
/// lines (empty when they agree). Used to cross-check the debug offsets
/// against the built-in table.
std::string describeLayoutDifferences(const Layout &a, const Layout &b);

} // namespace stackpeek::python
