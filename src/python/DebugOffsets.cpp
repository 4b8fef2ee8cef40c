// Reading `_Py_DebugOffsets`: the field order of each minor version's struct
// and the checks every value must pass. See DebugOffsets.h.
//
// The orders below are those of Include/internal/pycore_debug_offsets.h
// (3.13, 3.14, 3.15), confirmed against the interpreters' own tables
// (3.13.0, 3.13.15t, 3.14.7 with and without free threading, 3.15.2):
// gdb's `ptype /o struct _Py_DebugOffsets` on builds with DWARF, and on
// stripped ones by checking that every decoded size and offset is plausible
// and matches the object layouts measured on a live process.
#include "python/DebugOffsets.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace stackpeek::python {

namespace {

using F = DebugField;
constexpr F U = F::Unused;

// Word 0 is the cookie, 1 the version, 2 the free-threaded flag; the lists
// start at word 3.
constexpr F kOrder313[] = {
    // runtime_state: size, finalizing, interpreters_head
    F::RuntimeSize, U, F::InterpretersHead,
    // interpreter_state: size, id, next, threads_head, gc, imports_modules,
    // sysdict, builtins, ceval_gil, gil_runtime_state, _enabled, _locked, _holder
    F::InterpSize, U, F::InterpNext, F::ThreadsHead, F::InterpGc, F::ImportsModules,
    U, U, F::CevalGil, F::GilRuntimeState, F::GilEnabled, F::GilLocked, F::GilHolder,
    // thread_state: size, prev, next, interp, current_frame, thread_id,
    // native_thread_id, datastack_chunk, status
    F::TstateSize, U, F::TstateNext, F::TstateInterp, F::CurrentFrame, F::ThreadId,
    F::NativeThreadId, U, U,
    // interpreter_frame: size, previous, executable, instr_ptr, localsplus, owner
    F::FrameSize, F::FramePrevious, F::FrameExecutable, F::FrameInstrPtr,
    F::FrameLocalsplus, F::FrameOwner,
    // code_object: size, filename, name, qualname, linetable, firstlineno,
    // argcount, localsplusnames, localspluskinds, co_code_adaptive
    F::CodeSize, F::CoFilename, F::CoName, F::CoQualname, F::CoLinetable,
    F::CoFirstlineno, F::CoArgcount, F::CoLocalsplusnames, F::CoLocalspluskinds,
    F::CoCodeAdaptive,
    F::ObjectSize, F::ObType,                      // pyobject
    F::TypeSize, F::TpName, U, F::TpFlags,         // type_object (tp_repr unused)
    F::TupleSize, F::TupleItem, F::TupleObSize,    // tuple_object
    F::ListSize, F::ListItem, F::ListObSize,       // list_object
    F::DictSize, F::DictKeys, F::DictValues,       // dict_object
    F::FloatSize, F::FloatFval,                    // float_object
    F::LongSize, F::LongTag, F::LongDigit,         // long_object
    F::BytesSize, F::BytesObSize, F::BytesSval,    // bytes_object
    F::UnicodeSize, F::UnicodeState, F::UnicodeLength, F::AsciiObjectSize,
    F::GcSize, F::GcCollecting,                    // gc
};

// 3.14: interpreter_state gained threads_main (after threads_head) and
// code_object_generation, tlbc_generation (at its end); interpreter_frame
// stackpointer and tlbc_index; code_object co_tlbc; a set_object group
// between list and dict; gen_object, llist_node and debugger_support groups
// at the end.
constexpr F kOrder314[] = {
    F::RuntimeSize, U, F::InterpretersHead,
    F::InterpSize, U, F::InterpNext, F::ThreadsHead, U /*threads_main*/, F::InterpGc,
    F::ImportsModules, U, U, F::CevalGil, F::GilRuntimeState, F::GilEnabled,
    F::GilLocked, F::GilHolder, U /*code_object_generation*/, U /*tlbc_generation*/,
    F::TstateSize, U, F::TstateNext, F::TstateInterp, F::CurrentFrame, F::ThreadId,
    F::NativeThreadId, U, U,
    F::FrameSize, F::FramePrevious, F::FrameExecutable, F::FrameInstrPtr,
    F::FrameLocalsplus, F::FrameOwner, F::FrameStackpointer, F::FrameTlbcIndex,
    F::CodeSize, F::CoFilename, F::CoName, F::CoQualname, F::CoLinetable,
    F::CoFirstlineno, F::CoArgcount, F::CoLocalsplusnames, F::CoLocalspluskinds,
    F::CoCodeAdaptive, F::CoTlbc,
    F::ObjectSize, F::ObType,
    F::TypeSize, F::TpName, U, F::TpFlags,
    F::TupleSize, F::TupleItem, F::TupleObSize,
    F::ListSize, F::ListItem, F::ListObSize,
    U, U, U, U, // set_object: size, used, table, mask
    F::DictSize, F::DictKeys, F::DictValues,
    F::FloatSize, F::FloatFval,
    F::LongSize, F::LongTag, F::LongDigit,
    F::BytesSize, F::BytesObSize, F::BytesSval,
    F::UnicodeSize, F::UnicodeState, F::UnicodeLength, F::AsciiObjectSize,
    F::GcSize, F::GcCollecting,
    F::GenSize, F::GiName, F::GiIframe, F::GiFrameState,
    U, U,             // llist_node: next, prev
    U, U, U, U, U, U, // debugger_support
};

// 3.15: thread_state gained base_frame, last_profiled_frame and one more
// word after current_frame, and holds_gil, gil_requested, current_exception,
// exc_state at its end; an err_stackitem group follows it; type_object
// gained tp_basicsize and tp_dictoffset, then a heap_type_object group;
// unicode_object compactunicodeobject_size; gc frame and two
// generation-stats words. 3.15.2's table has the word at thread_state+7
// (offset 96, zero in a live thread) that the 3.15 alpha headers lack.
constexpr F kOrder315[] = {
    F::RuntimeSize, U, F::InterpretersHead,
    F::InterpSize, U, F::InterpNext, F::ThreadsHead, U /*threads_main*/, F::InterpGc,
    F::ImportsModules, U, U, F::CevalGil, F::GilRuntimeState, F::GilEnabled,
    F::GilLocked, F::GilHolder, U /*code_object_generation*/, U /*tlbc_generation*/,
    F::TstateSize, U, F::TstateNext, F::TstateInterp, F::CurrentFrame, F::BaseFrame,
    U /*last_profiled_frame*/, U, F::ThreadId, F::NativeThreadId, U, U,
    F::HoldsGil, F::GilRequested, F::CurrentException, F::ExcState,
    F::ErrStackItemExcValue,
    F::FrameSize, F::FramePrevious, F::FrameExecutable, F::FrameInstrPtr,
    F::FrameLocalsplus, F::FrameOwner, F::FrameStackpointer, F::FrameTlbcIndex,
    F::CodeSize, F::CoFilename, F::CoName, F::CoQualname, F::CoLinetable,
    F::CoFirstlineno, F::CoArgcount, F::CoLocalsplusnames, F::CoLocalspluskinds,
    F::CoCodeAdaptive, F::CoTlbc,
    F::ObjectSize, F::ObType,
    F::TypeSize, F::TpName, U, F::TpFlags, F::TpBasicsize, F::TpDictoffset,
    F::HeapTypeSize, F::HtCachedKeys,
    F::TupleSize, F::TupleItem, F::TupleObSize,
    F::ListSize, F::ListItem, F::ListObSize,
    U, U, U, U, // set_object
    F::DictSize, F::DictKeys, F::DictValues,
    F::FloatSize, F::FloatFval,
    F::LongSize, F::LongTag, F::LongDigit,
    F::BytesSize, F::BytesObSize, F::BytesSval,
    F::UnicodeSize, F::UnicodeState, F::UnicodeLength, F::AsciiObjectSize,
    F::CompactUnicodeSize,
    F::GcSize, F::GcCollecting, U /*frame*/, U, U /*generation stats*/,
    F::GenSize, F::GiName, F::GiIframe, F::GiFrameState,
    U, U,             // llist_node
    U, U, U, U, U, U, // debugger_support
};

static_assert(std::size(kOrder313) == 70, "3.13's struct is 73 words");
static_assert(std::size(kOrder314) == 92, "3.14's struct is 95 words");
static_assert(std::size(kOrder315) == 108, "3.15's struct is 111 words");

struct FieldOrder {
  int minor;
  const F *fields;
  size_t count;
};

constexpr FieldOrder kOrders[] = {
    {13, kOrder313, std::size(kOrder313)},
    {14, kOrder314, std::size(kOrder314)},
    {15, kOrder315, std::size(kOrder315)},
};

const FieldOrder &orderFor(int minor, bool &guessed) {
  guessed = false;
  for (const FieldOrder &o : kOrders)
    if (o.minor == minor)
      return o;
  guessed = true;
  return kOrders[std::size(kOrders) - 1];
}

llvm::Error invalid(const std::string &why) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "invalid _Py_DebugOffsets: %s", why.c_str());
}

// Each checked field with the size it must lie within, and how many bytes
// of it are read.
struct Bound {
  F field, size;
  uint64_t len = 8;
};

constexpr Bound kBounds[] = {
    {F::InterpretersHead, F::RuntimeSize},
    {F::InterpNext, F::InterpSize},
    {F::ThreadsHead, F::InterpSize},
    {F::ImportsModules, F::InterpSize},
    {F::CevalGil, F::InterpSize},
    {F::GilHolder, F::InterpSize},
    {F::GilLocked, F::InterpSize, 4},
    {F::TstateNext, F::TstateSize},
    {F::TstateInterp, F::TstateSize},
    {F::CurrentFrame, F::TstateSize},
    {F::ThreadId, F::TstateSize},
    {F::NativeThreadId, F::TstateSize},
    {F::HoldsGil, F::TstateSize, 4},
    {F::CurrentException, F::TstateSize},
    {F::FramePrevious, F::FrameSize},
    {F::FrameExecutable, F::FrameSize},
    {F::FrameInstrPtr, F::FrameSize},
    {F::FrameOwner, F::FrameSize, 1},
    {F::FrameStackpointer, F::FrameSize},
    {F::FrameTlbcIndex, F::FrameSize, 4},
    // localsplus is a flexible array: it may start at the very end.
    {F::FrameLocalsplus, F::FrameSize, 0},
    {F::CoFilename, F::CodeSize},
    {F::CoName, F::CodeSize},
    {F::CoQualname, F::CodeSize},
    {F::CoLinetable, F::CodeSize},
    {F::CoFirstlineno, F::CodeSize, 4},
    {F::CoLocalsplusnames, F::CodeSize},
    {F::CoLocalspluskinds, F::CodeSize},
    {F::CoTlbc, F::CodeSize},
    {F::CoCodeAdaptive, F::CodeSize, 0},
    {F::ObType, F::ObjectSize},
    {F::TpName, F::TypeSize},
    {F::TpFlags, F::TypeSize},
    {F::TpBasicsize, F::TypeSize},
    {F::TpDictoffset, F::TypeSize},
    {F::HtCachedKeys, F::HeapTypeSize},
    {F::BaseFrame, F::TstateSize},
    {F::GilRequested, F::TstateSize, 4},
    {F::ExcState, F::TstateSize},
    {F::DictKeys, F::DictSize},
    {F::DictValues, F::DictSize},
    {F::LongTag, F::LongSize},
    {F::BytesObSize, F::BytesSize},
    {F::BytesSval, F::BytesSize, 0},
    {F::UnicodeState, F::UnicodeSize, 4},
    {F::UnicodeLength, F::UnicodeSize},
    {F::AsciiObjectSize, F::UnicodeSize, 0},
    {F::GcCollecting, F::GcSize, 4},
    {F::GiIframe, F::GenSize, 0},
    {F::GiFrameState, F::GenSize, 1},
};

llvm::Error checkBounds(const DebugOffsets &d) {
  constexpr uint64_t kMaxStruct = 1u << 20;
  for (const Bound &b : kBounds) {
    auto offset = d.get(b.field), size = d.get(b.size);
    if (!offset)
      continue;
    if (!size || *size > kMaxStruct || *offset + b.len > *size)
      return invalid(std::string(debugFieldName(b.field)) + " outside its struct");
  }
  for (F f : {F::GilHolder, F::GilLocked})
    if (d.get(f) && d.get(F::GilRuntimeState) && *d.get(f) < *d.get(F::GilRuntimeState))
      return invalid("GIL fields precede the GIL struct");
  if (auto gc = d.get(F::InterpGc))
    if (!d.get(F::GcSize) || !d.get(F::InterpSize) ||
        *gc + *d.get(F::GcSize) > *d.get(F::InterpSize))
      return invalid("gc outside the interpreter state");
  // A field stackpeek cannot do without.
  for (F f : {F::InterpretersHead, F::ThreadsHead, F::TstateNext, F::CurrentFrame,
              F::FramePrevious, F::FrameExecutable, F::FrameInstrPtr, F::CoFilename,
              F::CoLinetable, F::CoCodeAdaptive, F::ObType})
    if (!d.get(f))
      return invalid(std::string("no ") + debugFieldName(f));
  return llvm::Error::success();
}

} // namespace

const char *debugFieldName(DebugField f) {
  static constexpr const char *kNames[] = {
      "runtime_state.size", "runtime_state.interpreters_head",
      "interpreter_state.size", "interpreter_state.next",
      "interpreter_state.threads_head", "interpreter_state.gc",
      "interpreter_state.imports_modules", "interpreter_state.ceval_gil",
      "interpreter_state.gil_runtime_state", "interpreter_state.gil_runtime_state_enabled",
      "interpreter_state.gil_runtime_state_locked",
      "interpreter_state.gil_runtime_state_holder",
      "thread_state.size", "thread_state.next", "thread_state.interp",
      "thread_state.current_frame", "thread_state.thread_id",
      "thread_state.native_thread_id", "thread_state.base_frame",
      "thread_state.holds_gil", "thread_state.gil_requested",
      "thread_state.current_exception", "thread_state.exc_state",
      "interpreter_frame.size", "interpreter_frame.previous",
      "interpreter_frame.executable", "interpreter_frame.instr_ptr",
      "interpreter_frame.localsplus", "interpreter_frame.owner",
      "interpreter_frame.stackpointer", "interpreter_frame.tlbc_index",
      "code_object.size", "code_object.filename", "code_object.name",
      "code_object.qualname", "code_object.linetable", "code_object.firstlineno",
      "code_object.argcount", "code_object.localsplusnames",
      "code_object.localspluskinds", "code_object.co_code_adaptive",
      "code_object.co_tlbc", "pyobject.size", "pyobject.ob_type",
      "type_object.size", "type_object.tp_name", "type_object.tp_flags",
      "type_object.tp_basicsize", "type_object.tp_dictoffset",
      "heap_type_object.size", "heap_type_object.ht_cached_keys",
      "tuple_object.size", "tuple_object.ob_item", "tuple_object.ob_size",
      "list_object.size", "list_object.ob_item", "list_object.ob_size",
      "dict_object.size", "dict_object.ma_keys", "dict_object.ma_values",
      "float_object.size", "float_object.ob_fval", "long_object.size",
      "long_object.lv_tag", "long_object.ob_digit", "bytes_object.size",
      "bytes_object.ob_size", "bytes_object.ob_sval", "unicode_object.size",
      "unicode_object.state", "unicode_object.length",
      "unicode_object.asciiobject_size", "unicode_object.compactunicodeobject_size",
      "gc.size", "gc.collecting", "gen_object.size", "gen_object.gi_name",
      "gen_object.gi_iframe", "gen_object.gi_frame_state",
      "err_stackitem.exc_value",
  };
  static_assert(std::size(kNames) == static_cast<size_t>(DebugField::Count));
  size_t i = static_cast<size_t>(f);
  return i < std::size(kNames) ? kNames[i] : "unused";
}

int newestDebugOffsetsMinor() { return kOrders[std::size(kOrders) - 1].minor; }

llvm::Expected<DebugOffsets> readDebugOffsets(MemorySource &mem, uint64_t runtimeAddr) {
  uint64_t head[3];
  if (llvm::Error err = mem.readExact(runtimeAddr, head, sizeof head))
    return std::move(err);
  if (std::memcmp(head, kDebugOffsetsCookie, 8) != 0)
    return invalid("cookie mismatch");
  DebugOffsets d;
  d.version = PythonVersion::fromHex(head[1]);
  if (d.version.major != 3 || d.version.minor < 13)
    return invalid("version " + d.version.toString() + " has no debug offsets");
  if (head[2] > 1)
    return invalid("free_threaded flag is " + std::to_string(head[2]));
  d.freeThreaded = head[2] == 1;
  const FieldOrder &order = orderFor(d.version.minor, d.orderGuessed);
  std::vector<uint64_t> words(3 + order.count);
  if (llvm::Error err = mem.readExact(runtimeAddr, words.data(), words.size() * 8))
    return std::move(err);
  for (size_t i = 0; i < order.count; ++i)
    if (order.fields[i] != F::Unused)
      d.set(order.fields[i], words[3 + i]);
  // The table publishes 0 for the GIL's `enabled` on GIL builds (there it
  // has no such field).
  if (!d.freeThreaded)
    d.clear(F::GilEnabled);
  if (llvm::Error err = checkBounds(d))
    return std::move(err);
  return d;
}

} // namespace stackpeek::python
