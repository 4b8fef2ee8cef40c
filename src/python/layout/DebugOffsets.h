// DebugOffsets: CPython's own description of its structs, `_Py_DebugOffsets`,
// read from the target.
//
// From 3.13 on, `_PyRuntime` starts with a table of sizes and offsets that
// CPython fills in at build time for out-of-process readers: the cookie
// "xdebugpy", PY_VERSION_HEX, a free-threaded flag, then groups of uint64
// values (runtime, interpreter, thread state, interpreter frame, code object,
// object, type, tuple, list, dict, ... — see Include/internal/
// pycore_debug_offsets.h of each version). Its values are the truth for the
// exact build: patch releases move fields (3.14.5 moved imports.modules),
// free-threaded builds have larger object headers, and both are published
// here. The struct itself is stable only within one minor version: 3.14 and
// 3.15 insert groups and fields mid-struct, so each minor version has its own
// field order below, and a version without one is read with the newest order
// known (its values then checked like any other) rather than refused.
//
// The values are untrusted data like any other target memory: every offset
// must lie inside the struct size its group publishes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "llvm/Support/Error.h"
#include "memory/MemorySource.h"
#include "python/layout/Layout.h"

namespace stackpeek::python {

// Every field stackpeek reads from some version's table. A version's table
// lacks the fields it does not have (nullopt).
enum class DebugField : uint8_t {
  RuntimeSize, InterpretersHead,
  InterpSize, InterpNext, ThreadsHead, InterpGc, ImportsModules, CevalGil,
  GilRuntimeState, GilEnabled, GilLocked, GilHolder,
  TstateSize, TstateNext, TstateInterp, CurrentFrame, ThreadId, NativeThreadId,
  BaseFrame, HoldsGil, GilRequested, CurrentException, ExcState,
  FrameSize, FramePrevious, FrameExecutable, FrameInstrPtr, FrameLocalsplus,
  FrameOwner, FrameStackpointer, FrameTlbcIndex,
  CodeSize, CoFilename, CoName, CoQualname, CoLinetable, CoFirstlineno,
  CoArgcount, CoLocalsplusnames, CoLocalspluskinds, CoCodeAdaptive, CoTlbc,
  ObjectSize, ObType,
  TypeSize, TpName, TpFlags, TpBasicsize, TpDictoffset,
  HeapTypeSize, HtCachedKeys,
  TupleSize, TupleItem, TupleObSize,
  ListSize, ListItem, ListObSize,
  DictSize, DictKeys, DictValues,
  FloatSize, FloatFval,
  LongSize, LongTag, LongDigit,
  BytesSize, BytesObSize, BytesSval,
  UnicodeSize, UnicodeState, UnicodeLength, AsciiObjectSize, CompactUnicodeSize,
  GcSize, GcCollecting,
  GenSize, GiName, GiIframe, GiFrameState,
  ErrStackItemExcValue,
  Unused, // a field of the table that stackpeek does not read
  Count = Unused
};

const char *debugFieldName(DebugField f);

/// The target's table, by field.
class DebugOffsets {
public:
  PythonVersion version;
  bool freeThreaded = false;
  // True when the version has no field order of its own and was read with
  // the newest one known.
  bool orderGuessed = false;

  // Unused: nullopt, so that tables may mark a field they do not take.
  std::optional<uint64_t> get(DebugField f) const {
    size_t i = static_cast<size_t>(f);
    return i < values_.size() ? values_[i] : std::nullopt;
  }
  void set(DebugField f, uint64_t v) { values_[static_cast<size_t>(f)] = v; }
  void clear(DebugField f) { values_[static_cast<size_t>(f)].reset(); }

  /// Sets `field` (an offset, plain or optional) to the table's value of
  /// `f`, when the table has one.
  template <class Field> void copyTo(DebugField f, Field &field) const {
    if (auto v = get(f))
      field = static_cast<uint32_t>(*v);
  }

private:
  std::array<std::optional<uint64_t>, static_cast<size_t>(DebugField::Count)> values_;
};

/// Reads the table at `runtimeAddr` (the start of _PyRuntime) and checks it:
/// cookie, version 3.13+, every offset inside its struct. Fails with the
/// reason otherwise.
llvm::Expected<DebugOffsets> readDebugOffsets(MemorySource &mem, uint64_t runtimeAddr);

/// Newest minor version whose field order is known.
int newestDebugOffsetsMinor();

/// "invalid _Py_DebugOffsets: `why`", the one form every rejection of a
/// table takes, here or where the layouts are built from it.
llvm::Error invalidDebugOffsets(const std::string &why);

} // namespace stackpeek::python
