// Layout tables for CPython 2.7 and 3.6-3.13, and the `_Py_DebugOffsets`
// overlay for 3.13+. See Layout.h for where the numbers come from; every value
// below was checked with offsetof() against that version's installed headers.
#include "python/Layout.h"

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
                      l.tstateThreadId, l.tstateNativeThreadId});
  l.frameSize = end({l.frameBack, l.frameCode,
                     l.frameModel == FrameModel::FrameObject
                         ? std::optional<uint32_t>(l.frameLasti)
                         : std::optional<uint32_t>(l.frameInstrPtr),
                     l.frameIsEntry, l.frameOwner});
  l.codeSize = end({l.coFilename, l.coName, l.coQualname, l.coFirstLineno,
                    l.coLineTable, l.coFirstTraceable});
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
  l.frameOwner = 70, l.ownerCStack = 3;
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
  l.frameOwner = 70, l.ownerCStack = 3;
  l.coFirstLineno = 68, l.coCodeAdaptive = 200, l.coFirstTraceable = 184;
  l.htCachedKeys = 880;
  l.asciiObjectSize = 40, l.compactUnicodeSize = 56;
  l.dictValuesArray = 8;
  l.instanceDict = InstanceDictModel::Inline313;
  l.intModel = IntModel::LvTag;
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
  if (l)
    computeCopySizes(*l);
  return l;
}

// --- _Py_DebugOffsets (3.13+) ---------------------------------------------

namespace {

// Positions (in 8-byte words from the start of _Py_DebugOffsets) of the
// fields we use, for one minor version's struct. 3.14 inserted fields, so each
// minor version needs its own row; the cookie (word 0) and version (word 1)
// never move.
struct DebugOffsetsPositions {
  int minor;
  unsigned words; // total size of the struct, in words
  unsigned runtimeSize, interpretersHead;
  unsigned interpSize, interpNext, threadsHead, importsModules, cevalGil,
      gilRuntimeState, gilLocked, gilHolder;
  unsigned tstateSize, tstateNext, tstateInterp, currentFrame, threadId,
      nativeThreadId;
  unsigned frameSize, framePrevious, frameExecutable, frameInstrPtr,
      frameOwner;
  unsigned codeSize, coFilename, coName, coQualname, coLinetable,
      coFirstlineno, coCodeAdaptive;
  unsigned obType, tpName, tpFlags;
  unsigned dictKeys, dictValues;
  unsigned bytesSize, bytesSval;
  unsigned unicodeState, unicodeLength, asciiObjectSize;
  unsigned interpGc, gcSize, gcCollecting;
};

// From Include/internal/pycore_runtime.h of 3.13.0.
constexpr DebugOffsetsPositions kDebugOffsets313 = {
    13, 73,
    /*runtime*/ 3, 5,
    /*interp*/ 6, 8, 9, 11, 14, 15, 17, 18,
    /*tstate*/ 19, 21, 22, 23, 24, 25,
    /*frame*/ 28, 29, 30, 31, 33,
    /*code*/ 34, 35, 36, 37, 38, 39, 43,
    /*object, type*/ 45, 47, 49,
    /*dict*/ 57, 58,
    /*bytes*/ 65, 66,
    /*unicode*/ 68, 69, 70,
    /*interp.gc, gc*/ 10, 71, 72,
};

const DebugOffsetsPositions *debugOffsetsPositionsFor(int minor) {
  static constexpr std::array kAll = {kDebugOffsets313};
  for (const auto &p : kAll)
    if (p.minor == minor)
      return &p;
  return nullptr;
}

llvm::Error invalid(const std::string &why) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "invalid _Py_DebugOffsets: %s", why.c_str());
}

// Debug offsets are untrusted data too: offsets must be plausible and fit
// inside the struct sizes they claim, or we would read garbage confidently.
bool withinStruct(uint64_t offset, uint64_t size, uint64_t fieldLen = 8) {
  return size <= (1u << 20) && offset + fieldLen <= size;
}

} // namespace

llvm::Expected<Layout> layoutFromDebugOffsets(MemorySource &mem,
                                              uint64_t runtimeAddr) {
  uint64_t head[3];
  if (llvm::Error err = mem.readExact(runtimeAddr, head, sizeof head))
    return std::move(err);
  if (std::memcmp(head, kDebugOffsetsCookie, 8) != 0)
    return invalid("cookie mismatch");
  PythonVersion version = PythonVersion::fromHex(head[1]);
  if (version.major != 3 || version.minor < 13)
    return invalid("version " + version.toString() + " has no debug offsets");
  if (head[2] != 0)
    return invalid("free-threaded builds are not supported");
  const DebugOffsetsPositions *pos = debugOffsetsPositionsFor(version.minor);
  std::optional<Layout> base = builtinLayout(3, version.minor);
  if (!pos || !base)
    return invalid("no table for CPython " + version.toString());

  std::vector<uint64_t> w(pos->words);
  if (llvm::Error err = mem.readExact(runtimeAddr, w.data(), w.size() * 8))
    return std::move(err);

  Layout l = *base;
  l.version = version;
  struct Check { uint64_t offset, size; const char *name; uint64_t len = 8; };
  const Check checks[] = {
      {w[pos->interpretersHead], w[pos->runtimeSize], "interpreters_head"},
      {w[pos->interpNext], w[pos->interpSize], "interp.next"},
      {w[pos->threadsHead], w[pos->interpSize], "threads_head"},
      {w[pos->importsModules], w[pos->interpSize], "imports_modules"},
      {w[pos->cevalGil], w[pos->interpSize], "ceval_gil"},
      {w[pos->gilHolder], w[pos->interpSize], "gil holder"},
      {w[pos->gilLocked], w[pos->interpSize], "gil locked"},
      {w[pos->tstateNext], w[pos->tstateSize], "tstate.next"},
      {w[pos->tstateInterp], w[pos->tstateSize], "tstate.interp"},
      {w[pos->currentFrame], w[pos->tstateSize], "current_frame"},
      {w[pos->threadId], w[pos->tstateSize], "thread_id"},
      {w[pos->nativeThreadId], w[pos->tstateSize], "native_thread_id"},
      {w[pos->framePrevious], w[pos->frameSize], "frame.previous"},
      {w[pos->frameExecutable], w[pos->frameSize], "frame.executable"},
      {w[pos->frameInstrPtr], w[pos->frameSize], "frame.instr_ptr"},
      {w[pos->frameOwner], w[pos->frameSize], "frame.owner", 1},
      {w[pos->coFilename], w[pos->codeSize], "co_filename"},
      {w[pos->coName], w[pos->codeSize], "co_name"},
      {w[pos->coQualname], w[pos->codeSize], "co_qualname"},
      {w[pos->coLinetable], w[pos->codeSize], "co_linetable"},
      {w[pos->coFirstlineno], w[pos->codeSize], "co_firstlineno"},
      // co_code_adaptive is a flexible array: it may start at the very end.
      {w[pos->coCodeAdaptive], w[pos->codeSize], "co_code_adaptive", 0},
  };
  for (const Check &c : checks)
    if (!withinStruct(c.offset, c.size, c.len))
      return invalid(std::string(c.name) + " outside its struct");
  if (w[pos->gilHolder] < w[pos->gilRuntimeState] ||
      w[pos->gilLocked] < w[pos->gilRuntimeState])
    return invalid("GIL fields precede the GIL struct");
  if (!withinStruct(w[pos->gcCollecting], w[pos->gcSize], 4) ||
      !withinStruct(w[pos->interpGc], w[pos->interpSize], w[pos->gcSize]))
    return invalid("gc.collecting outside its struct");

  auto u32 = [](uint64_t v) { return static_cast<uint32_t>(v); };
  l.runtimeInterpretersHead = u32(w[pos->interpretersHead]);
  l.interpNext = u32(w[pos->interpNext]);
  l.interpThreadsHead = u32(w[pos->threadsHead]);
  l.interpModules = u32(w[pos->importsModules]);
  l.interpGilPointer = u32(w[pos->cevalGil]);
  l.gilLastHolder = u32(w[pos->gilHolder] - w[pos->gilRuntimeState]);
  l.gilLocked = u32(w[pos->gilLocked] - w[pos->gilRuntimeState]);
  // The waiters' futexes are not in the debug offsets: trust the built-in
  // [cond, switch_cond) only while the fields before it have not moved.
  if (l.gilLocked != base->gilLocked || l.gilLastHolder != base->gilLastHolder)
    l.gilLock = GilLockModel::Unknown;
  l.gcCollecting = u32(w[pos->interpGc] + w[pos->gcCollecting]);
  l.tstateNext = u32(w[pos->tstateNext]);
  l.tstateInterp = u32(w[pos->tstateInterp]);
  l.tstateFrame = u32(w[pos->currentFrame]);
  l.cframeCurrentFrame.reset();
  l.tstateThreadId = u32(w[pos->threadId]);
  l.tstateNativeThreadId = u32(w[pos->nativeThreadId]);
  l.frameBack = u32(w[pos->framePrevious]);
  l.frameCode = u32(w[pos->frameExecutable]);
  l.frameInstrPtr = u32(w[pos->frameInstrPtr]);
  l.frameOwner = u32(w[pos->frameOwner]);
  l.coFilename = u32(w[pos->coFilename]);
  l.coName = u32(w[pos->coName]);
  l.coQualname = u32(w[pos->coQualname]);
  l.coLineTable = u32(w[pos->coLinetable]);
  l.coFirstLineno = u32(w[pos->coFirstlineno]);
  l.coCodeAdaptive = u32(w[pos->coCodeAdaptive]);
  l.obType = u32(w[pos->obType]);
  l.tpName = u32(w[pos->tpName]);
  l.tpFlags = u32(w[pos->tpFlags]);
  l.dictKeys = u32(w[pos->dictKeys]);
  l.dictValues = u32(w[pos->dictValues]);
  l.bytesSize = u32(w[pos->bytesSize]);
  l.bytesData = u32(w[pos->bytesSval]);
  l.unicodeState = u32(w[pos->unicodeState]);
  l.unicodeLength = u32(w[pos->unicodeLength]);
  l.asciiObjectSize = u32(w[pos->asciiObjectSize]);
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
