// Reading `_Py_DebugOffsets`: the field order of each minor version's struct
// and the checks every value must pass. See DebugOffsets.h.
//
// The orders below are those of Include/internal/pycore_debug_offsets.h
// (3.13, 3.14, 3.15), confirmed against the interpreters' own tables
// (3.13.0, 3.13.15t, 3.14.7 with and without free threading, 3.15.2):
// gdb's `ptype /o struct _Py_DebugOffsets` on builds with DWARF, and on
// stripped ones by checking that every decoded size and offset is plausible
// and matches the object layouts measured on a live process.
#include "python/layout/DebugOffsets.h"

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

// What is known of each field besides its position: its name in
// pycore_debug_offsets.h, the struct size it must lie within (Unused: not
// checked) and how many bytes at it are read, and whether no stack can be
// walked without it. In DebugField order, so a field is added in one line.
struct FieldInfo {
  F field;
  const char *name;
  F within = U;
  uint8_t len = 8;
  bool needed = false;
};

constexpr bool kNeeded = true;

constexpr FieldInfo kFields[] = {
    {F::RuntimeSize, "runtime_state.size"},
    {F::InterpretersHead, "runtime_state.interpreters_head", F::RuntimeSize, 8, kNeeded},
    {F::InterpSize, "interpreter_state.size"},
    {F::InterpNext, "interpreter_state.next", F::InterpSize},
    {F::ThreadsHead, "interpreter_state.threads_head", F::InterpSize, 8, kNeeded},
    {F::InterpGc, "interpreter_state.gc"}, // with gc.size, in checkBounds
    {F::ImportsModules, "interpreter_state.imports_modules", F::InterpSize},
    {F::CevalGil, "interpreter_state.ceval_gil", F::InterpSize},
    {F::GilRuntimeState, "interpreter_state.gil_runtime_state"},
    {F::GilEnabled, "interpreter_state.gil_runtime_state_enabled"},
    {F::GilLocked, "interpreter_state.gil_runtime_state_locked", F::InterpSize, 4},
    {F::GilHolder, "interpreter_state.gil_runtime_state_holder", F::InterpSize},
    {F::TstateSize, "thread_state.size"},
    {F::TstateNext, "thread_state.next", F::TstateSize, 8, kNeeded},
    {F::TstateInterp, "thread_state.interp", F::TstateSize},
    {F::CurrentFrame, "thread_state.current_frame", F::TstateSize, 8, kNeeded},
    {F::ThreadId, "thread_state.thread_id", F::TstateSize},
    {F::NativeThreadId, "thread_state.native_thread_id", F::TstateSize},
    {F::BaseFrame, "thread_state.base_frame", F::TstateSize},
    {F::HoldsGil, "thread_state.holds_gil", F::TstateSize, 4},
    {F::GilRequested, "thread_state.gil_requested", F::TstateSize, 4},
    {F::CurrentException, "thread_state.current_exception", F::TstateSize},
    {F::ExcState, "thread_state.exc_state", F::TstateSize},
    {F::FrameSize, "interpreter_frame.size"},
    {F::FramePrevious, "interpreter_frame.previous", F::FrameSize, 8, kNeeded},
    {F::FrameExecutable, "interpreter_frame.executable", F::FrameSize, 8, kNeeded},
    {F::FrameInstrPtr, "interpreter_frame.instr_ptr", F::FrameSize, 8, kNeeded},
    // localsplus is a flexible array: it may start at the very end.
    {F::FrameLocalsplus, "interpreter_frame.localsplus", F::FrameSize, 0},
    {F::FrameOwner, "interpreter_frame.owner", F::FrameSize, 1},
    {F::FrameStackpointer, "interpreter_frame.stackpointer", F::FrameSize},
    {F::FrameTlbcIndex, "interpreter_frame.tlbc_index", F::FrameSize, 4},
    {F::CodeSize, "code_object.size"},
    {F::CoFilename, "code_object.filename", F::CodeSize, 8, kNeeded},
    {F::CoName, "code_object.name", F::CodeSize},
    {F::CoQualname, "code_object.qualname", F::CodeSize},
    {F::CoLinetable, "code_object.linetable", F::CodeSize, 8, kNeeded},
    {F::CoFirstlineno, "code_object.firstlineno", F::CodeSize, 4},
    {F::CoArgcount, "code_object.argcount"},
    {F::CoLocalsplusnames, "code_object.localsplusnames", F::CodeSize},
    {F::CoLocalspluskinds, "code_object.localspluskinds", F::CodeSize},
    {F::CoCodeAdaptive, "code_object.co_code_adaptive", F::CodeSize, 0, kNeeded},
    {F::CoTlbc, "code_object.co_tlbc", F::CodeSize},
    {F::ObjectSize, "pyobject.size"},
    {F::ObType, "pyobject.ob_type", F::ObjectSize, 8, kNeeded},
    {F::TypeSize, "type_object.size"},
    {F::TpName, "type_object.tp_name", F::TypeSize},
    {F::TpFlags, "type_object.tp_flags", F::TypeSize},
    {F::TpBasicsize, "type_object.tp_basicsize", F::TypeSize},
    {F::TpDictoffset, "type_object.tp_dictoffset", F::TypeSize},
    {F::HeapTypeSize, "heap_type_object.size"},
    {F::HtCachedKeys, "heap_type_object.ht_cached_keys", F::HeapTypeSize},
    {F::TupleSize, "tuple_object.size"},
    {F::TupleItem, "tuple_object.ob_item"},
    {F::TupleObSize, "tuple_object.ob_size"},
    {F::ListSize, "list_object.size"},
    {F::ListItem, "list_object.ob_item"},
    {F::ListObSize, "list_object.ob_size"},
    {F::DictSize, "dict_object.size"},
    {F::DictKeys, "dict_object.ma_keys", F::DictSize},
    {F::DictValues, "dict_object.ma_values", F::DictSize},
    {F::FloatSize, "float_object.size"},
    {F::FloatFval, "float_object.ob_fval"},
    {F::LongSize, "long_object.size"},
    {F::LongTag, "long_object.lv_tag", F::LongSize},
    {F::LongDigit, "long_object.ob_digit"},
    {F::BytesSize, "bytes_object.size"},
    {F::BytesObSize, "bytes_object.ob_size", F::BytesSize},
    {F::BytesSval, "bytes_object.ob_sval", F::BytesSize, 0},
    {F::UnicodeSize, "unicode_object.size"},
    {F::UnicodeState, "unicode_object.state", F::UnicodeSize, 4},
    {F::UnicodeLength, "unicode_object.length", F::UnicodeSize},
    {F::AsciiObjectSize, "unicode_object.asciiobject_size", F::UnicodeSize, 0},
    {F::CompactUnicodeSize, "unicode_object.compactunicodeobject_size"},
    {F::GcSize, "gc.size"},
    {F::GcCollecting, "gc.collecting", F::GcSize, 4},
    {F::GenSize, "gen_object.size"},
    {F::GiName, "gen_object.gi_name"},
    {F::GiIframe, "gen_object.gi_iframe", F::GenSize, 0},
    {F::GiFrameState, "gen_object.gi_frame_state", F::GenSize, 1},
    {F::ErrStackItemExcValue, "err_stackitem.exc_value"},
};

constexpr bool listsEveryFieldInOrder() {
  for (size_t i = 0; i < std::size(kFields); ++i)
    if (kFields[i].field != static_cast<F>(i))
      return false;
  return std::size(kFields) == static_cast<size_t>(F::Count);
}
static_assert(listsEveryFieldInOrder(), "kFields: one entry per DebugField, in order");

llvm::Error checkBounds(const DebugOffsets &d) {
  constexpr uint64_t kMaxStruct = 1u << 20;
  for (const FieldInfo &f : kFields) {
    auto offset = d.get(f.field), size = d.get(f.within);
    if (!offset || f.within == U)
      continue;
    if (!size || *size > kMaxStruct || *offset + f.len > *size)
      return invalidDebugOffsets(std::string(f.name) + " outside its struct");
  }
  for (F f : {F::GilHolder, F::GilLocked})
    if (d.get(f) && d.get(F::GilRuntimeState) && *d.get(f) < *d.get(F::GilRuntimeState))
      return invalidDebugOffsets("GIL fields precede the GIL struct");
  if (auto gc = d.get(F::InterpGc))
    if (!d.get(F::GcSize) || !d.get(F::InterpSize) ||
        *gc + *d.get(F::GcSize) > *d.get(F::InterpSize))
      return invalidDebugOffsets("gc outside the interpreter state");
  for (const FieldInfo &f : kFields)
    if (f.needed && !d.get(f.field))
      return invalidDebugOffsets(std::string("no ") + f.name);
  return llvm::Error::success();
}

} // namespace

const char *debugFieldName(DebugField f) {
  size_t i = static_cast<size_t>(f);
  return i < std::size(kFields) ? kFields[i].name : "unused";
}

llvm::Error invalidDebugOffsets(const std::string &why) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "invalid _Py_DebugOffsets: %s", why.c_str());
}

int newestDebugOffsetsMinor() { return kOrders[std::size(kOrders) - 1].minor; }

llvm::Expected<DebugOffsets> readDebugOffsets(MemorySource &mem, uint64_t runtimeAddr) {
  uint64_t head[3];
  if (llvm::Error err = mem.readExact(runtimeAddr, head, sizeof head))
    return std::move(err);
  if (std::memcmp(head, kDebugOffsetsCookie, 8) != 0)
    return invalidDebugOffsets("cookie mismatch");
  DebugOffsets d;
  d.version = PythonVersion::fromHex(head[1]);
  if (d.version.major != 3 || d.version.minor < 13)
    return invalidDebugOffsets("version " + d.version.toString() + " has no debug offsets");
  if (head[2] > 1)
    return invalidDebugOffsets("free_threaded flag is " + std::to_string(head[2]));
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
