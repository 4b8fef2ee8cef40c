// resolve(): turning captured frame chains into stackpeek::Frames, after the
// target resumed.
//
// Code objects are immutable once created, so reading them after the pause
// gives the same names and tables the paused frames referred to (unless a
// code object was freed meanwhile: then its frame gets an error). Each code
// object is read once per resolve(), or once per recording when the caller
// passes a persistent CodeCache (CodeCache.h says how it stays valid).
//
// Domain facts (docs/cpython-structures.md §2.1, §3, §4, §6):
//  - function name: co_qualname (3.11+) else co_name; file: co_filename.
//  - ≤3.10: position = f_lasti (bytes; code units in 3.10). 3.11+: code unit
//    = (instruction pointer - (code + co_code_adaptive)) / 2.
//  - 3.11+ "incomplete" frames (not yet past their prologue, i.e. before
//    _co_firsttraceable, and not owned by a generator) are skipped, as
//    CPython itself does in tracebacks and sys._current_frames().
//  - 3.13 f_executable may be something other than a code object: check the
//    type name.
//  - OS thread id: native_thread_id (3.11+); before, thread_id is glibc's
//    pthread_t, the address of struct pthread, whose `tid` field sits at a
//    glibc-specific offset (0x2d0 on x86_64 glibc 2.28-2.36+); we validate
//    the offset against the target's known tids before trusting it.
//  - Both are the thread's id in the target's own pid namespace; `known`
//    (a TidMap) turns it into ours (process/TidMap.h).
#include "python/frames/Capture.h"
#include "python/frames/Interpreter.h"
#include "python/frames/Resolve.h"

#include <unordered_map>
#include <unordered_set>

#include "python/frames/CodeCache.h"
#include "python/frames/LineTable.h"
#include "python/objects/Objects.h"
#include "python/layout/RemoteStruct.h"

namespace stackpeek::python {

namespace {

SourcePosition framePosition(const Layout &l, const CapturedFrame &f,
                             const CodeInfo &code) {
  switch (l.lineTable) {
  case LineTableFormat::LnotabUnsignedLines:
    return positionFromLnotab(code.lineTable, code.firstLineno, f.lasti, false);
  case LineTableFormat::LnotabSignedLines:
    return positionFromLnotab(code.lineTable, code.firstLineno, f.lasti, true);
  case LineTableFormat::Linetable310:
    return positionFromLinetable310(code.lineTable, code.firstLineno,
                                    f.lasti < 0 ? -1 : int64_t(f.lasti) * 2);
  case LineTableFormat::Locations311:
    break;
  }
  return {};
}

// Where the bytecode a frame executes starts: co_code_adaptive, or on a
// free-threaded build a thread's own copy, co_tlbc->entries[tlbc_index]
// (_PyCodeArray: Py_ssize_t size, then the entries; entry 0 is
// co_code_adaptive). nullopt when the copy cannot be read.
std::optional<uint64_t> bytecodeStart(const Layout &l, const CapturedFrame &f,
                                      const CodeInfo &code, MemorySource &mem) {
  uint64_t adaptive = f.codeAddr + l.coCodeAdaptive.value_or(0);
  if (f.tlbcIndex == 0 || !l.coTlbc)
    return adaptive;
  if (f.tlbcIndex < 0 || !code.tlbc)
    return std::nullopt;
  int64_t size = valueOr(mem.readValue<int64_t>(code.tlbc), int64_t(0));
  if (size <= f.tlbcIndex)
    return std::nullopt;
  uint64_t entry =
      valueOr(mem.readValue<uint64_t>(code.tlbc + 8 + 8 * uint64_t(f.tlbcIndex)), uint64_t(0));
  return entry ? std::optional<uint64_t>(entry) : std::nullopt;
}

// 3.11+: code-unit index of the instruction pointer (may be -1 before the
// first instruction).
int64_t codeUnitOf(uint64_t bytecode, const CapturedFrame &f) {
  int64_t delta = int64_t(f.instrPtr) - int64_t(bytecode);
  return delta >= 0 ? delta / 2 : -((-delta + 1) / 2);
}

// Decodes one captured frame; nullopt for a frame CPython itself would hide.
std::optional<Frame> decodeFrame(const Layout &l, const CapturedFrame &f,
                                 MemorySource &mem, CodeCache &codes) {
  Frame out;
  out.kind = Frame::Kind::Python;
  out.pythonEntry = f.entry;
  if (f.entryRecord)
    out.entryRecordAddress = f.entryRecord;
  if (f.error) {
    out.error = f.error;
    return out;
  }
  const CodeInfo &code = codes.get(l, mem, f.codeAddr);
  if (code.error) {
    out.error = code.error;
    return out;
  }
  out.function = code.function;
  out.file = code.file;
  out.locals = f.locals;
  SourcePosition pos;
  if (l.frameModel == FrameModel::InterpreterFrame) {
    std::optional<uint64_t> bytecode = bytecodeStart(l, f, code, mem);
    if (!bytecode) {
      out.error = "thread-local bytecode copy " + std::to_string(f.tlbcIndex) +
                  " unreadable";
      return out;
    }
    int64_t unit = codeUnitOf(*bytecode, f);
    if (f.owner != l.ownerGenerator && unit < code.firstTraceable)
      return std::nullopt; // incomplete frame (still in its prologue)
    if (unit > int64_t(1) << 28) {
      out.error = "instruction pointer outside its code object";
      return out;
    }
    pos = code.positionAt(unit, [&] {
      return positionFromLocationTable(code.lineTable, code.firstLineno, unit);
    });
  } else {
    pos = code.positionAt(f.lasti, [&] { return framePosition(l, f, code); });
  }
  out.line = pos.line;
  out.endLine = pos.endLine;
  out.column = pos.column;
  out.endColumn = pos.endColumn;
  return out;
}

// Offsets of `tid` inside glibc's struct pthread to try, best guess first.
constexpr uint64_t kDefaultPthreadTidOffset = 0x2d0;
constexpr uint64_t kMaxPthreadTidOffset = 0x800;

// Picks the struct pthread tid offset under which the most Python threads map
// to distinct known tids (ties favour glibc's usual 0x2d0).
uint64_t pthreadTidOffset(MemorySource &mem,
                          const std::vector<CapturedThread> &threads,
                          const TidMap &known) {
  if (known.empty())
    return kDefaultPthreadTidOffset;
  auto score = [&](uint64_t offset) {
    std::unordered_set<int32_t> hits;
    for (const CapturedThread &t : threads) {
      int32_t v = 0;
      if (t.threadIdent && mem.read(t.threadIdent + offset, &v, 4) &&
          known.knows(v))
        hits.insert(v);
    }
    return hits.size();
  };
  uint64_t best = kDefaultPthreadTidOffset;
  size_t bestScore = score(best);
  if (bestScore == threads.size())
    return best;
  for (uint64_t off = 0; off < kMaxPthreadTidOffset; off += 4) {
    size_t s = score(off);
    if (s > bestScore)
      best = off, bestScore = s;
  }
  return best;
}

// The thread state's id of its thread, in the target's own namespace; 0
// when unreadable.
int64_t ownTid(MemorySource &mem, const CapturedThread &t, uint64_t tidOffset) {
  if (t.nativeThreadId)
    return int64_t(*t.nativeThreadId);
  int32_t tid = 0;
  if (!t.threadIdent || !mem.read(t.threadIdent + tidOffset, &tid, 4))
    return 0;
  return tid;
}

// Our id of that thread; 0 if none. A tid read from struct pthread (2.7-3.10)
// sits at an offset found by guessing: it counts only if it names a known
// thread.
pid_t ourTid(const CapturedThread &t, int64_t own, const TidMap &known) {
  if (!t.nativeThreadId && !known.empty() && !known.knows(own))
    return 0;
  return known.ours(own).value_or(0);
}

// threading._active: {ident: Thread} → {ident: Thread.name}. Best effort:
// any failure just leaves names empty.
std::unordered_map<uint64_t, std::string>
threadNames(const Layout &l, MemorySource &mem, uint64_t interpAddr) {
  std::unordered_map<uint64_t, std::string> names;
  auto modules = mem.readValue<uint64_t>(interpAddr + l.interpModules);
  if (!modules) {
    llvm::consumeError(modules.takeError());
    return names;
  }
  auto threading = dictLookupString(mem, l, *modules, "threading");
  if (!threading || !*threading) {
    llvm::consumeError(threading.takeError());
    return names;
  }
  auto moduleDict = mem.readValue<uint64_t>(*threading + l.moduleDict);
  if (!moduleDict) {
    llvm::consumeError(moduleDict.takeError());
    return names;
  }
  auto active = dictLookupString(mem, l, *moduleDict, "_active");
  if (!active || !*active) {
    llvm::consumeError(active.takeError());
    return names;
  }
  // 2.7's Thread stores its name as self.__name, mangled to _Thread__name.
  const std::string attr =
      l.stringModel == StringModel::Py2 ? "_Thread__name" : "_name";
  llvm::Error err = forEachDictItem(mem, l, *active, [&](uint64_t k, uint64_t v) {
    auto ident = readUnsignedInt(mem, l, k);
    if (!ident) {
      llvm::consumeError(ident.takeError());
      return true;
    }
    auto nameObj = instanceAttribute(mem, l, v, attr);
    if (!nameObj || !*nameObj) {
      llvm::consumeError(nameObj.takeError());
      return true;
    }
    auto name = readString(mem, l, *nameObj);
    if (name)
      names[*ident] = *name;
    else
      llvm::consumeError(name.takeError());
    return true;
  });
  llvm::consumeError(std::move(err));
  return names;
}

} // namespace

std::vector<Frame> resolveFrames(const Interpreter &in,
                                 const std::vector<CapturedFrame> &frames,
                                 MemorySource &mem) {
  CodeCache codes;
  std::vector<Frame> out;
  out.reserve(frames.size());
  for (CapturedFrame f : frames) {
    f.owner = in.layout.ownerGenerator; // never skipped as incomplete
    std::optional<Frame> frame = decodeFrame(in.layout, f, mem, codes);
    out.push_back(frame ? std::move(*frame) : Frame{});
  }
  return out;
}

std::vector<PythonThreadStack> resolve(const Interpreter &in,
                                       const CapturedPython &captured,
                                       MemorySource &mem,
                                       const TidMap &known,
                                       bool wantNames,
                                       CodeCache *persistentCodes) {
  const Layout &l = in.layout;
  bool needPthreadTid = !l.tstateNativeThreadId;
  uint64_t tidOffset = needPthreadTid
                           ? pthreadTidOffset(mem, captured.threads, known)
                           : 0;
  CodeCache onePass;
  CodeCache &codes = persistentCodes ? *persistentCodes : onePass;
  std::unordered_map<uint64_t, std::unordered_map<uint64_t, std::string>> names;
  std::vector<PythonThreadStack> out;
  for (const CapturedThread &t : captured.threads) {
    PythonThreadStack s;
    s.threadIdent = t.threadIdent;
    s.ownTid = ownTid(mem, t, tidOffset);
    s.tid = ourTid(t, s.ownTid, known);
    s.holdsGil = t.holdsGil;
    s.status = t.status;
    s.errors = t.errors;
    if (s.tid == 0)
      s.errors.push_back("cannot map Python thread " +
                         std::to_string(t.threadIdent) + " to an OS thread");
    s.frames.reserve(t.frames.size());
    for (const CapturedFrame &f : t.frames)
      if (std::optional<Frame> frame = decodeFrame(l, f, mem, codes))
        s.frames.push_back(std::move(*frame));
    if (!wantNames) {
      out.push_back(std::move(s));
      continue;
    }
    if (!names.count(t.interpAddr))
      names[t.interpAddr] = threadNames(l, mem, t.interpAddr);
    auto &byIdent = names[t.interpAddr];
    if (auto it = byIdent.find(t.threadIdent); it != byIdent.end())
      s.name = it->second;
    out.push_back(std::move(s));
  }
  return out;
}

} // namespace stackpeek::python
