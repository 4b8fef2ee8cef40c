// Layout tables for CPython 2.7 and 3.6-3.13, and the `_Py_DebugOffsets`
// overlay for 3.13+. See Layout.h for where the numbers come from; every value
// below was checked with offsetof() against that version's installed headers.
#include "python/Layout.h"

#include "python/DebugOffsets.h"

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

Layout py27() {
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

Layout py36() {
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

Layout py37() {
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

Layout py311() {
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

Layout py312() {
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

Layout py313() {
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
Layout py314() {
  Layout l = py313();
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
Layout py315() {
  Layout l = py314();
  l.version = {3, 15, 0, 0};
  l.interpModules = 7592;
  l.htCachedKeys = 888;
  return l;
}

} // namespace

std::optional<Layout> builtinLayout(int major, int minor) {
  std::optional<Layout> l;
  if (major == 2 && minor == 7)
    l = py27();
  else if (major == 3 && minor == 6)
    l = py36();
  else if (major == 3 && minor == 7)
    l = py37();
  else if (major == 3 && minor >= 8 && minor <= 10)
    l = py38to310(minor);
  else if (major == 3 && minor == 11)
    l = py311();
  else if (major == 3 && minor == 12)
    l = py312();
  else if (major == 3 && minor == 13)
    l = py313();
  else if (major == 3 && minor == 14)
    l = py314();
  else if (major == 3 && minor == 15)
    l = py315();
  if (l)
    computeCopySizes(*l);
  return l;
}

// --- _Py_DebugOffsets (3.13+) ---------------------------------------------

namespace {

llvm::Error invalid(const std::string &why) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "invalid _Py_DebugOffsets: %s", why.c_str());
}

// Overlays every field the table has onto `l`.
void overlayPublished(const DebugOffsets &d, Layout &l) {
  d.copyTo(DebugField::InterpretersHead, l.runtimeInterpretersHead);
  d.copyTo(DebugField::InterpNext, l.interpNext);
  d.copyTo(DebugField::ThreadsHead, l.interpThreadsHead);
  d.copyTo(DebugField::ImportsModules, l.interpModules);
  d.copyTo(DebugField::CevalGil, l.interpGilPointer);
  d.copyTo(DebugField::TstateNext, l.tstateNext);
  d.copyTo(DebugField::TstateInterp, l.tstateInterp);
  d.copyTo(DebugField::CurrentFrame, l.tstateFrame);
  d.copyTo(DebugField::ThreadId, l.tstateThreadId);
  d.copyTo(DebugField::NativeThreadId, l.tstateNativeThreadId);
  d.copyTo(DebugField::HoldsGil, l.tstateHoldsGil);
  d.copyTo(DebugField::GilRequested, l.tstateGilRequested);
  d.copyTo(DebugField::FramePrevious, l.frameBack);
  d.copyTo(DebugField::FrameExecutable, l.frameCode);
  d.copyTo(DebugField::FrameInstrPtr, l.frameInstrPtr);
  d.copyTo(DebugField::FrameOwner, l.frameOwner);
  d.copyTo(DebugField::CoFilename, l.coFilename);
  d.copyTo(DebugField::CoName, l.coName);
  d.copyTo(DebugField::CoQualname, l.coQualname);
  d.copyTo(DebugField::CoLinetable, l.coLineTable);
  d.copyTo(DebugField::CoFirstlineno, l.coFirstLineno);
  d.copyTo(DebugField::CoCodeAdaptive, l.coCodeAdaptive);
  d.copyTo(DebugField::ObType, l.obType);
  d.copyTo(DebugField::TpName, l.tpName);
  d.copyTo(DebugField::TpFlags, l.tpFlags);
  d.copyTo(DebugField::TpBasicsize, l.tpBasicSize);
  d.copyTo(DebugField::TpDictoffset, l.tpDictOffset);
  d.copyTo(DebugField::HtCachedKeys, l.htCachedKeys);
  d.copyTo(DebugField::DictKeys, l.dictKeys);
  d.copyTo(DebugField::DictValues, l.dictValues);
  d.copyTo(DebugField::LongTag, l.intHeader);
  d.copyTo(DebugField::LongDigit, l.intDigits);
  d.copyTo(DebugField::BytesObSize, l.bytesSize);
  d.copyTo(DebugField::BytesSval, l.bytesData);
  d.copyTo(DebugField::UnicodeState, l.unicodeState);
  d.copyTo(DebugField::UnicodeLength, l.unicodeLength);
  d.copyTo(DebugField::AsciiObjectSize, l.asciiObjectSize);
  d.copyTo(DebugField::CompactUnicodeSize, l.compactUnicodeSize);
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

} // namespace

llvm::Expected<Layout> layoutFromDebugOffsets(const DebugOffsets &d) {
  int minor = d.orderGuessed ? newestDebugOffsetsMinor() : d.version.minor;
  std::optional<Layout> base = builtinLayout(3, minor);
  if (!base)
    return invalid("no table for CPython " + d.version.toString());
  uint64_t obType = d.get(DebugField::ObType).value_or(0);
  if (obType < base->obType || obType > base->obType + 64)
    return invalid("ob_type at " + std::to_string(obType));
  Layout l = *base;
  l.version = d.version;
  l.freeThreaded = d.freeThreaded;
  overlayPublished(d, l);
  overlayGil(d, *base, l);
  shiftUnpublishedObjectFields(d, *base, l);
  if (d.freeThreaded && d.version.atLeast(3, 14))
    l.unicodeKindBit = 8;
  if (d.freeThreaded)
    l.managedDictBefore = 8;
  if (d.freeThreaded && d.get(DebugField::FrameTlbcIndex) && d.get(DebugField::CoTlbc)) {
    l.frameTlbcIndex = static_cast<uint32_t>(*d.get(DebugField::FrameTlbcIndex));
    l.coTlbc = static_cast<uint32_t>(*d.get(DebugField::CoTlbc));
  }
  computeCopySizes(l);
  return l;
}

std::string describeLayoutDifferences(const Layout &a, const Layout &b) {
  std::ostringstream out;
  auto cmp = [&](const char *name, std::optional<uint32_t> x,
                 std::optional<uint32_t> y) {
    if (x != y)
      out << name << ": " << (x ? std::to_string(*x) : "-") << " != "
          << (y ? std::to_string(*y) : "-") << "\n";
  };
  cmp("interpreters_head", a.runtimeInterpretersHead, b.runtimeInterpretersHead);
  cmp("interp.next", a.interpNext, b.interpNext);
  cmp("interp.threads_head", a.interpThreadsHead, b.interpThreadsHead);
  cmp("interp.modules", a.interpModules, b.interpModules);
  cmp("interp.ceval_gil", a.interpGilPointer, b.interpGilPointer);
  cmp("gil.last_holder", a.gilLastHolder, b.gilLastHolder);
  cmp("gil.locked", a.gilLocked, b.gilLocked);
  cmp("gc.collecting", a.gcCollecting, b.gcCollecting);
  cmp("tstate.next", a.tstateNext, b.tstateNext);
  cmp("tstate.interp", a.tstateInterp, b.tstateInterp);
  cmp("tstate.current_frame", a.tstateFrame, b.tstateFrame);
  cmp("tstate.thread_id", a.tstateThreadId, b.tstateThreadId);
  cmp("tstate.native_thread_id", a.tstateNativeThreadId, b.tstateNativeThreadId);
  cmp("frame.previous", a.frameBack, b.frameBack);
  cmp("frame.executable", a.frameCode, b.frameCode);
  cmp("frame.instr_ptr", a.frameInstrPtr, b.frameInstrPtr);
  cmp("frame.owner", a.frameOwner, b.frameOwner);
  cmp("co_filename", a.coFilename, b.coFilename);
  cmp("co_name", a.coName, b.coName);
  cmp("co_qualname", a.coQualname, b.coQualname);
  cmp("co_linetable", a.coLineTable, b.coLineTable);
  cmp("co_firstlineno", a.coFirstLineno, b.coFirstLineno);
  cmp("co_code_adaptive", a.coCodeAdaptive, b.coCodeAdaptive);
  cmp("ob_type", a.obType, b.obType);
  cmp("tp_name", a.tpName, b.tpName);
  cmp("tp_flags", a.tpFlags, b.tpFlags);
  cmp("dict.ma_keys", a.dictKeys, b.dictKeys);
  cmp("dict.ma_values", a.dictValues, b.dictValues);
  cmp("bytes.ob_size", a.bytesSize, b.bytesSize);
  cmp("bytes.ob_sval", a.bytesData, b.bytesData);
  cmp("unicode.state", a.unicodeState, b.unicodeState);
  cmp("unicode.length", a.unicodeLength, b.unicodeLength);
  cmp("asciiobject_size", a.asciiObjectSize, b.asciiObjectSize);
  return out.str();
}

} // namespace stackpeek::python
