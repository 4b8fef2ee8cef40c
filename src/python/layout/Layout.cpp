// The built-in Layout of each CPython version (2.7, 3.6-3.15, listed side by
// side with their DepthLayouts in VersionLayouts.cpp), the `_Py_DebugOffsets`
// overlay for 3.13+, and the field table that overlay and the layout diff
// share. See Layout.h for where the numbers come from.
#include "python/layout/Layout.h"

#include "python/layout/BuiltinTables.h"
#include "python/layout/DebugOffsets.h"
#include "python/layout/OffsetField.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <sstream>

namespace stackpeek::python {

std::string PythonVersion::toString() const {
  std::string s = std::to_string(major) + "." + std::to_string(minor) + "." +
                  std::to_string(micro);
  unsigned level = (hex >> 4) & 0xf, serial = hex & 0xf;
  if (hex != 0 && level != 0xf) {
    const char *tag = level == 0xa ? "a" : level == 0xb ? "b" : "rc";
    s += tag + std::to_string(serial);
  }
  return s;
}

PythonVersion PythonVersion::fromHex(uint64_t hex) {
  PythonVersion v;
  v.major = (hex >> 24) & 0xff;
  v.minor = (hex >> 16) & 0xff;
  v.micro = (hex >> 8) & 0xff;
  v.hex = hex;
  return v;
}

namespace {

// Fields shared by every 3.x FrameObject version (3.6-3.10).
Layout py3FrameObjectBase(int minor) {
  Layout l;
  l.version = {3, minor, 0, 0};
  l.interpNext = 0, l.interpThreadsHead = 8;
  l.tstateNext = 8, l.tstateInterp = 16, l.tstateFrame = 24;
  l.frameModel = FrameModel::FrameObject;
  l.frameBack = 24, l.frameCode = 32;
  l.dictModel = DictModel::Py36;
  return l;
}

// 3.8-3.10 differ in a few offsets only.
Layout py38to310(int minor) {
  Layout l = py3FrameObjectBase(minor);
  l.gilModel = GilModel::RuntimeTstateCurrent;
  l.runtimeInterpretersHead = 32;
  l.runtimeTstateCurrent = minor == 8 ? 1368 : 568;
  l.gilLock = GilLockModel::RuntimeGilStruct;
  l.runtimeGil = minor == 8 ? 1152 : 352;
  // 3.9 moved the collector's state from _PyRuntime into the interpreter.
  l.gcModel = minor == 8 ? GcModel::RuntimeCollecting
                         : GcModel::InterpreterCollecting;
  l.gcCollecting = minor == 8 ? 544 : 816;
  l.interpModules = minor == 8 ? 56 : 856;
  l.tstateThreadId = 176;
  l.frameLasti = minor == 10 ? 96 : 104;
  l.lastiInCodeUnits = minor == 10;
  l.coFilename = 104, l.coName = 112, l.coFirstLineno = 40, l.coLineTable = 120;
  l.lineTable = minor == 10 ? LineTableFormat::Linetable310
                            : LineTableFormat::LnotabSignedLines;
  return l;
}

// Fields shared by the interpreter-frame versions (3.11+).
Layout py3InterpreterFrameBase(int minor) {
  Layout l;
  l.version = {3, minor, 0, 0};
  l.tstateNext = 8, l.tstateInterp = 16;
  l.frameModel = FrameModel::InterpreterFrame;
  l.frameInstrPtr = 56;
  l.coFilename = 112, l.coName = 120, l.coQualname = 128, l.coLineTable = 136;
  l.lineTable = LineTableFormat::Locations311;
  l.dictModel = DictModel::Py311;
  return l;
}

} // namespace

namespace builtin {

// Copy sizes cover the furthest field read from each struct, so one
// RemoteStruct read per object suffices and stays small.
void computeCopySizes(Layout &l) {
  auto end = [](std::initializer_list<std::optional<uint32_t>> offs) {
    uint32_t m = 0;
    for (auto o : offs)
      if (o)
        m = std::max(m, *o + 8);
    return m;
  };
  l.runtimeSize = end({l.runtimeInterpretersHead, l.runtimeTstateCurrent});
  l.interpSize = end({l.interpNext, l.interpThreadsHead, l.interpModules,
                      l.interpGilPointer,
                      l.gcModel == GcModel::InterpreterCollecting
                          ? l.gcCollecting
                          : std::nullopt});
  l.tstateSize = end({l.tstateNext, l.tstateInterp, l.tstateFrame,
                      l.tstateThreadId, l.tstateNativeThreadId, l.tstateHoldsGil,
                      l.tstateGilRequested});
  l.frameSize = end({l.frameBack, l.frameCode,
                     l.frameModel == FrameModel::FrameObject
                         ? std::optional<uint32_t>(l.frameLasti)
                         : std::optional<uint32_t>(l.frameInstrPtr),
                     l.frameIsEntry, l.frameOwner, l.frameTlbcIndex});
  l.codeSize = end({l.coFilename, l.coName, l.coQualname, l.coFirstLineno,
                    l.coLineTable, l.coFirstTraceable, l.coTlbc});
}

Layout layout27() {
  Layout l;
  l.version = {2, 7, 0, 0};
  l.gilModel = GilModel::CurrentThreadSymbol;
  l.gilLock = GilLockModel::StaticSemaphore;
  l.gcModel = GcModel::StaticCollecting;
  l.interpNext = 0, l.interpThreadsHead = 8, l.interpModules = 16;
  l.tstateNext = 0, l.tstateInterp = 8, l.tstateFrame = 16;
  l.tstateThreadId = 144;
  l.frameModel = FrameModel::FrameObject;
  l.frameBack = 24, l.frameCode = 32, l.frameLasti = 120;
  l.coFilename = 80, l.coName = 88, l.coFirstLineno = 96, l.coLineTable = 104;
  l.lineTable = LineTableFormat::LnotabUnsignedLines;
  l.stringModel = StringModel::Py2;
  l.bytesSize = 16, l.bytesData = 36;
  l.py2UnicodeData = 24, l.py2UnicodeWidth = 4; // pyenv/Debian: UCS4 builds
  l.dictModel = DictModel::Py27;
  l.dictUsed = 24, l.dictKeys = 32 /* ma_mask */, l.dictValues = 40 /* ma_table */;
  l.intModel = IntModel::Py2Int;
  return l;
}

Layout layout36() {
  Layout l = py3FrameObjectBase(6);
  l.gilModel = GilModel::CurrentThreadSymbol;
  l.gilLock = GilLockModel::StaticCondMutex;
  l.gcModel = GcModel::StaticCollecting;
  l.interpModules = 16;
  l.tstateThreadId = 152;
  l.frameLasti = 120;
  l.coFilename = 96, l.coName = 104, l.coFirstLineno = 36, l.coLineTable = 112;
  return l;
}

Layout layout37() {
  Layout l = py3FrameObjectBase(7);
  l.gilModel = GilModel::RuntimeTstateCurrent;
  l.runtimeInterpretersHead = 24, l.runtimeTstateCurrent = 1480;
  l.gilLock = GilLockModel::RuntimeGilStruct, l.runtimeGil = 1264;
  l.gcModel = GcModel::RuntimeCollecting, l.gcCollecting = 632;
  l.interpModules = 40;
  l.tstateThreadId = 176;
  l.frameLasti = 104;
  l.coFilename = 96, l.coName = 104, l.coFirstLineno = 36, l.coLineTable = 112;
  return l;
}

Layout layout38() { return py38to310(8); }
Layout layout39() { return py38to310(9); }
Layout layout310() { return py38to310(10); }

Layout layout311() {
  Layout l = py3InterpreterFrameBase(11);
  l.gilModel = GilModel::RuntimeTstateCurrent;
  l.runtimeInterpretersHead = 40, l.runtimeTstateCurrent = 576;
  l.gilLock = GilLockModel::RuntimeGilStruct, l.runtimeGil = 360;
  l.gcModel = GcModel::InterpreterCollecting, l.gcCollecting = 848;
  l.interpNext = 0, l.interpThreadsHead = 16, l.interpModules = 888;
  l.tstateFrame = 56, l.cframeCurrentFrame = 8;
  l.tstateThreadId = 152, l.tstateNativeThreadId = 160;
  l.frameBack = 48, l.frameCode = 32;
  l.frameIsEntry = 68, l.frameOwner = 69;
  l.coFirstLineno = 72, l.coCodeAdaptive = 184, l.coFirstTraceable = 168;
  l.htCachedKeys = 872;
  l.instanceDict = InstanceDictModel::Managed311;
  return l;
}

Layout layout312() {
  Layout l = py3InterpreterFrameBase(12);
  l.gilModel = GilModel::InterpreterGil;
  l.runtimeInterpretersHead = 40;
  l.interpNext = 0, l.interpThreadsHead = 72, l.interpModules = 944;
  l.interpGilPointer = 384;
  l.gilLock = GilLockModel::InterpreterGilPointer;
  l.gcModel = GcModel::InterpreterCollecting, l.gcCollecting = 312;
  l.tstateFrame = 56, l.cframeCurrentFrame = 0;
  l.tstateThreadId = 136, l.tstateNativeThreadId = 144;
  l.frameBack = 8, l.frameCode = 0;
  l.frameOwner = 70, l.firstShimOwner = 3;
  l.coFirstLineno = 68, l.coCodeAdaptive = 192, l.coFirstTraceable = 176;
  l.htCachedKeys = 880;
  l.asciiObjectSize = 40, l.compactUnicodeSize = 56;
  l.instanceDict = InstanceDictModel::DictOrValues312;
  l.intModel = IntModel::LvTag;
  return l;
}

Layout layout313() {
  Layout l = py3InterpreterFrameBase(13);
  l.gilModel = GilModel::InterpreterGil;
  l.runtimeInterpretersHead = 632;
  l.interpNext = 7264, l.interpThreadsHead = 7344, l.interpModules = 7656;
  l.interpGilPointer = 16;
  l.gilLock = GilLockModel::InterpreterGilPointer;
  l.gcModel = GcModel::InterpreterCollecting, l.gcCollecting = 7600;
  l.tstateFrame = 72;
  l.tstateThreadId = 152, l.tstateNativeThreadId = 160;
  l.frameBack = 8, l.frameCode = 0;
  l.frameOwner = 70, l.firstShimOwner = 3;
  l.coFirstLineno = 68, l.coCodeAdaptive = 200, l.coFirstTraceable = 184;
  l.htCachedKeys = 880;
  l.asciiObjectSize = 40, l.compactUnicodeSize = 56;
  l.dictValuesArray = 8;
  l.instanceDict = InstanceDictModel::Inline313;
  l.intModel = IntModel::LvTag;
  return l;
}

// 3.14.7 (gdb's offsets on a build with DWARF). f_executable became a
// tagged _PyStackRef; owners INTERPRETER (3) and CSTACK (4) are both shims.
Layout layout314() {
  Layout l = layout313();
  l.version = {3, 14, 0, 0};
  l.interpModules = 7688;
  l.frameOwner = 74;
  l.executableTagBits = 3;
  l.coCodeAdaptive = 208, l.coFirstTraceable = 192;
  return l;
}

// 3.15.2 (Debian's build; stripped, so checked on a live process). The
// table publishes nearly everything. What it does not is taken as 3.14 has
// it: the GIL struct's waiters (the GIL suite's waiting states confirm
// them) and _co_firsttraceable (code objects are otherwise laid out as in
// 3.14, but no DWARF was at hand to check it).
Layout layout315() {
  Layout l = layout314();
  l.version = {3, 15, 0, 0};
  l.interpModules = 7592;
  l.htCachedKeys = 888;
  return l;
}

} // namespace builtin

// --- _Py_DebugOffsets (3.13+) ---------------------------------------------

namespace {

// Every offset the layouts are compared by, named as
// describeLayoutDifferences prints it, with the debug-offsets field that
// overlays it. The ones a rule of their own derives from the table
// (gc.collecting, the GIL struct's) are compared here and set below.
struct LayoutField {
  const char *name;
  DebugField source;
  OffsetField<Layout> member;
};

constexpr DebugField kNotCopied = DebugField::Unused;
using F = DebugField;
using L = Layout;

constexpr LayoutField kLayoutFields[] = {
    {"interpreters_head", F::InterpretersHead, &L::runtimeInterpretersHead},
    {"interp.next", F::InterpNext, &L::interpNext},
    {"interp.threads_head", F::ThreadsHead, &L::interpThreadsHead},
    {"interp.modules", F::ImportsModules, &L::interpModules},
    {"interp.ceval_gil", F::CevalGil, &L::interpGilPointer},
    {"gil.last_holder", kNotCopied, &L::gilLastHolder},
    {"gil.locked", kNotCopied, &L::gilLocked},
    {"gc.collecting", kNotCopied, &L::gcCollecting},
    {"tstate.next", F::TstateNext, &L::tstateNext},
    {"tstate.interp", F::TstateInterp, &L::tstateInterp},
    {"tstate.current_frame", F::CurrentFrame, &L::tstateFrame},
    {"tstate.thread_id", F::ThreadId, &L::tstateThreadId},
    {"tstate.native_thread_id", F::NativeThreadId, &L::tstateNativeThreadId},
    {"tstate.holds_gil", F::HoldsGil, &L::tstateHoldsGil},
    {"tstate.gil_requested", F::GilRequested, &L::tstateGilRequested},
    {"frame.previous", F::FramePrevious, &L::frameBack},
    {"frame.executable", F::FrameExecutable, &L::frameCode},
    {"frame.instr_ptr", F::FrameInstrPtr, &L::frameInstrPtr},
    {"frame.owner", F::FrameOwner, &L::frameOwner},
    {"co_filename", F::CoFilename, &L::coFilename},
    {"co_name", F::CoName, &L::coName},
    {"co_qualname", F::CoQualname, &L::coQualname},
    {"co_linetable", F::CoLinetable, &L::coLineTable},
    {"co_firstlineno", F::CoFirstlineno, &L::coFirstLineno},
    {"co_code_adaptive", F::CoCodeAdaptive, &L::coCodeAdaptive},
    {"ob_type", F::ObType, &L::obType},
    {"tp_name", F::TpName, &L::tpName},
    {"tp_flags", F::TpFlags, &L::tpFlags},
    {"tp_basicsize", F::TpBasicsize, &L::tpBasicSize},
    {"tp_dictoffset", F::TpDictoffset, &L::tpDictOffset},
    {"ht_cached_keys", F::HtCachedKeys, &L::htCachedKeys},
    {"dict.ma_keys", F::DictKeys, &L::dictKeys},
    {"dict.ma_values", F::DictValues, &L::dictValues},
    {"long.lv_tag", F::LongTag, &L::intHeader},
    {"long.ob_digit", F::LongDigit, &L::intDigits},
    {"bytes.ob_size", F::BytesObSize, &L::bytesSize},
    {"bytes.ob_sval", F::BytesSval, &L::bytesData},
    {"unicode.state", F::UnicodeState, &L::unicodeState},
    {"unicode.length", F::UnicodeLength, &L::unicodeLength},
    {"asciiobject_size", F::AsciiObjectSize, &L::asciiObjectSize},
    {"compactunicodeobject_size", F::CompactUnicodeSize, &L::compactUnicodeSize},
};

// Overlays every field the table has onto `l`.
void overlayPublished(const DebugOffsets &d, Layout &l) {
  for (const LayoutField &f : kLayoutFields)
    if (auto v = d.get(f.source))
      f.member.set(l, static_cast<uint32_t>(*v));
  if (d.get(DebugField::InterpGc) && d.get(DebugField::GcCollecting))
    l.gcCollecting = static_cast<uint32_t>(*d.get(DebugField::InterpGc) +
                                           *d.get(DebugField::GcCollecting));
  l.cframeCurrentFrame.reset();
}

// The GIL struct's fields are published relative to the interpreter; ours
// are relative to the struct. Its waiters' futexes are not published: they
// follow `locked` and `last_holder` when both moved by the same amount (a
// free-threaded build's `enabled` counter in front of them), else unknown.
void overlayGil(const DebugOffsets &d, const Layout &base, Layout &l) {
  auto gil = d.get(DebugField::GilRuntimeState);
  auto holder = d.get(DebugField::GilHolder), locked = d.get(DebugField::GilLocked);
  if (!gil || !holder || !locked) {
    l.gilLock = GilLockModel::Unknown;
    return;
  }
  l.gilLastHolder = static_cast<uint32_t>(*holder - *gil);
  l.gilLocked = static_cast<uint32_t>(*locked - *gil);
  int64_t moved = int64_t(l.gilLastHolder) - int64_t(base.gilLastHolder);
  if (int64_t(l.gilLocked) - int64_t(base.gilLocked) != moved || moved < 0) {
    l.gilLock = GilLockModel::Unknown;
    return;
  }
  l.gilInterval += moved, l.gilSwitchNumber += moved;
  l.gilWaitBegin += moved, l.gilWaitEnd += moved;
  if (d.freeThreaded)
    l.gilEnabled = static_cast<uint32_t>(d.get(DebugField::GilEnabled).value_or(0));
}

// Fields of objects that the table does not cover sit after the object
// header, which a free-threaded build makes larger (ob_tid, ob_ref_local,
// ob_ref_shared ahead of ob_type): they move by as much as ob_type did.
void shiftUnpublishedObjectFields(const DebugOffsets &d, const Layout &base, Layout &l) {
  uint32_t shift = l.obType - base.obType;
  if (shift == 0)
    return;
  if (!d.get(DebugField::TpDictoffset))
    l.tpDictOffset = base.tpDictOffset + shift;
  if (!d.get(DebugField::TpBasicsize))
    l.tpBasicSize = base.tpBasicSize + shift;
  if (!d.get(DebugField::CompactUnicodeSize))
    l.compactUnicodeSize = base.compactUnicodeSize + shift;
  if (base.htCachedKeys && !d.get(DebugField::HtCachedKeys))
    l.htCachedKeys = *base.htCachedKeys + shift;
  if (base.coFirstTraceable)
    l.coFirstTraceable = *base.coFirstTraceable + shift;
  l.dictUsed = base.dictUsed + shift;
  l.moduleDict = base.moduleDict + shift;
}

// What a free-threaded build does differently beyond its offsets: a whole
// `interned` byte in a string's state (3.14+), no GC header in front of the
// managed dict, and thread-local bytecode.
void overlayFreeThreaded(const DebugOffsets &d, Layout &l) {
  if (!d.freeThreaded)
    return;
  if (d.version.atLeast(3, 14))
    l.unicodeKindBit = 8;
  l.managedDictBefore = 8;
  if (d.get(DebugField::FrameTlbcIndex) && d.get(DebugField::CoTlbc)) {
    l.frameTlbcIndex = static_cast<uint32_t>(*d.get(DebugField::FrameTlbcIndex));
    l.coTlbc = static_cast<uint32_t>(*d.get(DebugField::CoTlbc));
  }
}

} // namespace

llvm::Expected<Layout> builtin::overlayDebugOffsets(const DebugOffsets &d, const Layout &base) {
  uint64_t obType = d.get(DebugField::ObType).value_or(0);
  if (obType < base.obType || obType > base.obType + 64)
    return invalidDebugOffsets("ob_type at " + std::to_string(obType));
  Layout l = base;
  l.version = d.version;
  l.freeThreaded = d.freeThreaded;
  overlayPublished(d, l);
  overlayGil(d, base, l);
  shiftUnpublishedObjectFields(d, base, l);
  overlayFreeThreaded(d, l);
  computeCopySizes(l);
  return l;
}

std::string describeLayoutDifferences(const Layout &a, const Layout &b) {
  std::ostringstream out;
  auto text = [](std::optional<uint32_t> v) { return v ? std::to_string(*v) : "-"; };
  for (const LayoutField &f : kLayoutFields) {
    std::optional<uint32_t> x = f.member.get(a), y = f.member.get(b);
    if (x != y)
      out << f.name << ": " << text(x) << " != " << text(y) << "\n";
  }
  return out.str();
}

} // namespace stackpeek::python
