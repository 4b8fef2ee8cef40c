// CPython decoder tests on hand-built interpreter memory (FakeMemory).
//
// The fixtures lay out just the fields the decoder reads, at the offsets of
// the built-in layout tables, so the tests check the walking logic (threads,
// frames, shims, entries, GIL, incomplete frames), the hostile-memory
// guarantees (cycles, bounds, unreadable pointers, non-code objects), string
// decoding for every representation, the debug-offsets overlay, and the
// native/Python merge. Real interpreters are covered by the integration tests.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "memory/FakeMemory.h"
#include "python/layout/DebugOffsets.h"
#include "python/layout/Layout.h"
#include "python/objects/Objects.h"
#include "python/frames/CodeCache.h"
#include "python/frames/Capture.h"
#include "python/frames/Interpreter.h"
#include "python/frames/Merge.h"
#include "python/frames/Resolve.h"
#include "python/layout/VersionLayouts.h"

using namespace stackpeek;
using namespace stackpeek::python;

namespace {

// Hands out non-overlapping zeroed regions in a fake address space.
class FakeHeap {
public:
  explicit FakeHeap(FakeMemory &mem) : mem_(mem) {}
  uint64_t alloc(size_t size) {
    // Whole pages, like real mappings: readers may read past an object's
    // end within its page (readCString reads in 64-byte chunks).
    uint64_t addr = next_;
    size_t pages = (size + 0xfff) & ~size_t(0xfff);
    mem_.addRegion(addr, std::vector<uint8_t>(pages));
    next_ += pages;
    next_ += 0x1000; // unmapped guard page between regions
    return addr;
  }
  template <class T> void put(uint64_t addr, T v) { mem_.put(addr, v); }
  FakeMemory &mem() { return mem_; }

private:
  FakeMemory &mem_;
  uint64_t next_ = 0x10000;
};

// Builds CPython objects for one layout.
class FakePython {
public:
  FakePython(FakeHeap &heap, const Layout &l) : heap_(heap), l_(l) {
    strType_ = makeType("str", kTpFlagsUnicode);
    bytesType_ = makeType("bytes", kTpFlagsBytes);
    codeType_ = makeType("code", 0);
    dictType_ = makeType("dict", kTpFlagsDict);
  }

  uint64_t makeType(const std::string &name, uint64_t flags) {
    uint64_t nameAddr = heap_.alloc(name.size() + 1);
    heap_.mem().putBytes(nameAddr, name.c_str(), name.size() + 1);
    uint64_t t = heap_.alloc(1024);
    heap_.put(t + l_.tpName, nameAddr);
    heap_.put(t + l_.tpFlags, flags);
    return t;
  }

  // Compact str of `kind` bytes per code point.
  uint64_t str(const std::vector<uint32_t> &codePoints, unsigned kind,
               bool ascii) {
    uint64_t header = ascii ? l_.asciiObjectSize : l_.compactUnicodeSize;
    uint64_t s = heap_.alloc(header + codePoints.size() * kind + 8);
    heap_.put(s + l_.obType, strType_);
    heap_.put(s + l_.unicodeLength, int64_t(codePoints.size()));
    heap_.put(s + l_.unicodeState,
              uint32_t(kind << 2 | 1 << 5 | (ascii ? 1 << 6 : 0)));
    for (size_t i = 0; i < codePoints.size(); ++i)
      heap_.mem().putBytes(s + header + i * kind, &codePoints[i], kind);
    return s;
  }
  uint64_t str(const std::string &ascii) {
    return str(std::vector<uint32_t>(ascii.begin(), ascii.end()), 1, true);
  }
  uint64_t bytes(const std::vector<uint8_t> &data) {
    uint64_t b = heap_.alloc(l_.bytesData + data.size() + 1);
    heap_.put(b + l_.obType, bytesType_);
    heap_.put(b + l_.bytesSize, int64_t(data.size()));
    heap_.mem().putBytes(b + l_.bytesData, data.data(), data.size());
    return b;
  }
  uint64_t code(const std::string &name, const std::string &file,
                int firstLine, const std::vector<uint8_t> &table) {
    uint64_t c = heap_.alloc(l_.coCodeAdaptive.value_or(l_.codeSize) + 256);
    heap_.put(c + l_.obType, codeType_);
    heap_.put(c + l_.coName, str(name));
    if (l_.coQualname)
      heap_.put(c + *l_.coQualname, str("Outer." + name));
    heap_.put(c + l_.coFilename, str(file));
    heap_.put(c + l_.coFirstLineno, int32_t(firstLine));
    heap_.put(c + l_.coLineTable, bytes(table));
    return c;
  }
  uint64_t codeType() const { return codeType_; }
  uint64_t dictType() const { return dictType_; }

private:
  FakeHeap &heap_;
  const Layout &l_;
  uint64_t strType_ = 0, bytesType_ = 0, codeType_ = 0, dictType_ = 0;
};

// An interpreter with one interpreter state at a fixed place.
struct FakeRuntime {
  FakeMemory mem;
  FakeHeap heap{mem};
  Interpreter in;
  uint64_t interp = 0;

  explicit FakeRuntime(int minor) : FakeRuntime(*builtinLayout(3, minor)) {
    in.layout.version.micro = 0;
  }
  // A runtime laid out as `layout` says (one read from a debug-offsets
  // table, say), written through the same offsets the decoder reads.
  explicit FakeRuntime(const Layout &layout) {
    in.layout = layout;
    const Layout &l = in.layout;
    in.runtimeAddr = heap.alloc(l.runtimeSize + 64);
    in.interpHeadAddr = in.runtimeAddr + l.runtimeInterpretersHead.value_or(0);
    interp = heap.alloc(l.interpSize + 64);
    heap.put(in.interpHeadAddr, interp);
  }
  // Adds a thread state (pushed at the head, like CPython) whose newest
  // frame is `frame`.
  uint64_t addThread(uint64_t frame, uint64_t nativeTid) {
    const Layout &l = in.layout;
    uint64_t ts = heap.alloc(l.tstateSize + 64);
    heap.put(ts + l.tstateInterp, interp);
    heap.put(ts + l.tstateThreadId, uint64_t(0x7f0000000000 + nativeTid));
    if (l.tstateNativeThreadId)
      heap.put(ts + *l.tstateNativeThreadId, nativeTid);
    if (l.cframeCurrentFrame) {
      uint64_t cframe = heap.alloc(64);
      heap.put(cframe + *l.cframeCurrentFrame, frame);
      heap.put(ts + l.tstateFrame, cframe);
    } else {
      heap.put(ts + l.tstateFrame, frame);
    }
    uint64_t oldHead = 0;
    mem.read(interp + l.interpThreadsHead, &oldHead, 8);
    heap.put(ts + l.tstateNext, oldHead);
    heap.put(interp + l.interpThreadsHead, ts);
    return ts;
  }
  // ≤3.10: a thread state whose thread_id is a struct pthread holding `tid`
  // at `tidOffset`; returns the struct pthread's address.
  uint64_t addPthreadThread(uint64_t frame, uint64_t tidOffset, int32_t tid) {
    uint64_t pthread = heap.alloc(0x1000);
    heap.put(pthread + tidOffset, tid);
    heap.put(addThread(frame, 0) + in.layout.tstateThreadId, pthread);
    return pthread;
  }
  // 3.11+ interpreter frame.
  uint64_t iframe(uint64_t code, int codeUnit, uint64_t previous,
                  uint8_t owner = 0, bool isEntry = false) {
    const Layout &l = in.layout;
    uint64_t f = heap.alloc(l.frameSize + 64);
    heap.put(f + l.frameCode, code);
    heap.put(f + l.frameBack, previous);
    heap.put(f + l.frameInstrPtr, code + *l.coCodeAdaptive + 2 * codeUnit);
    if (l.frameOwner)
      heap.put(f + *l.frameOwner, owner);
    if (l.frameIsEntry)
      heap.put(f + *l.frameIsEntry, uint8_t(isEntry));
    return f;
  }
  // ≤3.10 frame object.
  uint64_t frameObject(uint64_t code, int lasti, uint64_t back) {
    const Layout &l = in.layout;
    uint64_t f = heap.alloc(l.frameSize + 64);
    heap.put(f + l.frameCode, code);
    heap.put(f + l.frameBack, back);
    heap.put(f + l.frameLasti, int32_t(lasti));
    return f;
  }
};

// 3.11+ location table: one short-form entry (code 0..9) per code unit range.
std::vector<uint8_t> oneLineTable(int units, int lineDelta) {
  // Long form (14): line delta, end line delta 0, columns 4..9 (+1 encoded).
  std::vector<uint8_t> t = {uint8_t(0x80 | 14 << 3 | (units - 1)),
                            uint8_t(lineDelta << 1), 0, 5, 10};
  return t;
}

Frame nativeFrame(const std::string &fn) {
  Frame f;
  f.kind = Frame::Kind::Native;
  f.function = fn;
  return f;
}
Frame pyFrame(const std::string &fn, bool entry) {
  Frame f;
  f.kind = Frame::Kind::Python;
  f.function = fn;
  f.pythonEntry = entry;
  return f;
}
std::vector<std::string> names(const std::vector<Frame> &frames) {
  std::vector<std::string> out;
  for (const Frame &f : frames)
    out.push_back(f.function.value_or(f.error ? "!" + *f.error : "?"));
  return out;
}

} // namespace

// --- layouts -------------------------------------------------------------

TEST(PythonLayout, EverySupportedVersionHasATable) {
  EXPECT_TRUE(builtinLayout(2, 7));
  for (int minor = 6; minor <= 14; ++minor)
    EXPECT_TRUE(builtinLayout(3, minor)) << minor;
  EXPECT_FALSE(builtinLayout(3, 5));
}

TEST(PythonLayout, CopySizesCoverEveryFieldRead) {
  for (auto [maj, min] : {std::pair{2, 7}, {3, 6}, {3, 7}, {3, 8}, {3, 9},
                          {3, 10}, {3, 11}, {3, 12}, {3, 13}}) {
    Layout l = *builtinLayout(maj, min);
    EXPECT_GE(l.tstateSize, l.tstateThreadId + 8);
    EXPECT_GE(l.frameSize, l.frameBack + 8);
    EXPECT_GE(l.codeSize, l.coLineTable + 8);
    EXPECT_GE(l.interpSize, l.interpModules + 8);
  }
}

// The layout a target's table at `addr` gives, as Locate reads it.
llvm::Expected<Layout> layoutFromDebugOffsets(MemorySource &mem, uint64_t addr) {
  auto table = readDebugOffsets(mem, addr);
  if (!table)
    return table.takeError();
  return layoutFromDebugOffsets(*table);
}

// The DepthLayout Locate builds from `table` along with the Layout.
std::optional<DepthLayout> depthLayout(const DebugOffsets &table) {
  auto layouts = layoutsFromDebugOffsets(table);
  if (!layouts) {
    llvm::consumeError(layouts.takeError());
    return std::nullopt;
  }
  return layouts->depth;
}

// _Py_DebugOffsets of 3.13.0 as decoded from libpython3.13.so.1.0.
std::vector<uint64_t> debugOffsets313() {
  std::vector<uint64_t> w = {
      0, 0x030d00f0, 0,
      /*runtime*/ 283320, 608, 632,
      /*interp*/ 194968, 7272, 7264, 7344, 7400, 7656, 7640, 7648, 16, 7752,
      0, 7768, 7760,
      /*tstate*/ 304, 0, 8, 16, 72, 152, 160, 232, 32,
      /*iframe*/ 80, 8, 0, 56, 72, 70,
      /*code*/ 208, 112, 120, 128, 136, 68, 52, 96, 104, 200,
      /*pyobject*/ 16, 8,
      /*type*/ 416, 24, 88, 168,
      /*tuple*/ 32, 24, 16,
      /*list*/ 40, 24, 16,
      /*dict*/ 48, 32, 40,
      /*float*/ 24, 16,
      /*long*/ 32, 16, 24,
      /*bytes*/ 40, 16, 32,
      /*unicode*/ 64, 32, 16, 40,
      /*gc*/ 240, 200};
  std::memcpy(&w[0], kDebugOffsetsCookie, 8);
  return w;
}

TEST(PythonLayout, DebugOffsets313MatchBuiltinTable) {
  FakeMemory mem;
  std::vector<uint64_t> w = debugOffsets313();
  ASSERT_EQ(w.size(), 73u);
  mem.putBytes(0x5000, w.data(), w.size() * 8);
  auto layout = layoutFromDebugOffsets(mem, 0x5000);
  ASSERT_TRUE(bool(layout)) << llvm::toString(layout.takeError());
  EXPECT_EQ(layout->version.toString(), "3.13.0");
  EXPECT_EQ(describeLayoutDifferences(*builtinLayout(3, 13), *layout), "");
}

TEST(PythonLayout, DebugOffsetsAreValidated) {
  FakeMemory mem;
  std::vector<uint64_t> w = debugOffsets313();
  w[0] = 0; // cookie
  mem.putBytes(0x5000, w.data(), w.size() * 8);
  auto noCookie = layoutFromDebugOffsets(mem, 0x5000);
  EXPECT_FALSE(bool(noCookie));
  llvm::consumeError(noCookie.takeError());

  w = debugOffsets313();
  w[9] = 1 << 30; // threads_head far outside the interpreter struct
  mem.putBytes(0x5000, w.data(), w.size() * 8);
  auto bad = layoutFromDebugOffsets(mem, 0x5000);
  EXPECT_FALSE(bool(bad));
  llvm::consumeError(bad.takeError());

  w = debugOffsets313();
  w[2] = 7; // neither a GIL nor a free-threaded build
  mem.putBytes(0x5000, w.data(), w.size() * 8);
  auto flag = layoutFromDebugOffsets(mem, 0x5000);
  EXPECT_FALSE(bool(flag));
  llvm::consumeError(flag.takeError());
}

TEST(PythonLayout, DebugOffsetsChangesAreReported) {
  FakeMemory mem;
  std::vector<uint64_t> w = debugOffsets313();
  w[24] = 144; // thread_id moved
  mem.putBytes(0x5000, w.data(), w.size() * 8);
  auto layout = layoutFromDebugOffsets(mem, 0x5000);
  ASSERT_TRUE(bool(layout));
  EXPECT_EQ(layout->tstateThreadId, 144u);
  EXPECT_NE(describeLayoutDifferences(*builtinLayout(3, 13), *layout).find(
                "tstate.thread_id"),
            std::string::npos);
}

TEST(PythonLayout, DebugOffsetsGcAndGilWaiters) {
  FakeMemory mem;
  std::vector<uint64_t> w = debugOffsets313();
  mem.putBytes(0x5000, w.data(), w.size() * 8);
  auto layout = layoutFromDebugOffsets(mem, 0x5000);
  ASSERT_TRUE(bool(layout));
  EXPECT_EQ(layout->gcCollecting, 7600u); // interpreter_state.gc + gc.collecting
  EXPECT_EQ(layout->gilLock, GilLockModel::InterpreterGilPointer);

  w[17] += 8; // gil locked moved: the waiters' futex offsets are no longer known
  mem.putBytes(0x5000, w.data(), w.size() * 8);
  auto moved = layoutFromDebugOffsets(mem, 0x5000);
  ASSERT_TRUE(bool(moved));
  EXPECT_EQ(moved->gilLock, GilLockModel::Unknown);

  w = debugOffsets313();
  w[72] = 4096; // gc.collecting outside gc's struct
  mem.putBytes(0x5000, w.data(), w.size() * 8);
  auto bad = layoutFromDebugOffsets(mem, 0x5000);
  EXPECT_FALSE(bool(bad));
  llvm::consumeError(bad.takeError());
}

// A patch release that moves fields (py-spy#852: 3.14.5 moved
// imports.modules) changes only its table: the decoder must follow the
// table, not the built-in offsets of the minor version.
TEST(PythonLayout, DecoderFollowsAPerturbedDebugOffsetsTable) {
  FakeMemory tableMem;
  std::vector<uint64_t> w = debugOffsets313();
  w[23] = 96;  // thread_state.current_frame (72)
  w[24] = 184; // thread_state.thread_id (152)
  w[25] = 192; // thread_state.native_thread_id (160)
  w[29] = 24;  // interpreter_frame.previous (8)
  w[35] = 144; // code_object.filename (112)
  tableMem.putBytes(0x5000, w.data(), w.size() * 8);
  auto layout = layoutFromDebugOffsets(tableMem, 0x5000);
  ASSERT_TRUE(bool(layout)) << llvm::toString(layout.takeError());
  const Layout builtin = *builtinLayout(3, 13);
  ASSERT_NE(layout->tstateFrame, builtin.tstateFrame);
  ASSERT_NE(layout->coFilename, builtin.coFilename);

  FakeRuntime rt(*layout);
  FakePython py(rt.heap, rt.in.layout);
  uint64_t outer = py.code("main", "/app/main.py", 10, oneLineTable(8, 2));
  uint64_t inner = py.code("work", "/app/lib.py", 20, oneLineTable(8, 1));
  uint64_t f2 = rt.iframe(outer, 3, 0);
  uint64_t f1 = rt.iframe(inner, 2, f2);
  rt.addThread(f1, 4242);
  auto cap = capture(rt.in, rt.mem);
  ASSERT_TRUE(bool(cap)) << llvm::toString(cap.takeError());
  auto stacks = resolve(rt.in, *cap, rt.mem);
  ASSERT_EQ(stacks.size(), 1u);
  EXPECT_EQ(stacks[0].tid, 4242);
  ASSERT_EQ(stacks[0].frames.size(), 2u);
  EXPECT_EQ(stacks[0].frames[0].file, "/app/lib.py");
  EXPECT_EQ(stacks[0].frames[0].line, 21u);
  EXPECT_EQ(stacks[0].frames[1].file, "/app/main.py");
  EXPECT_EQ(stacks[0].frames[1].line, 12u);
}

// _Py_DebugOffsets of Debian's 3.15.2 (python3.15 3.15.2-1), as decoded
// from the executable's .PyRuntime section.
std::vector<uint64_t> debugOffsets315() {
  std::vector<uint64_t> w = {
      0, 0x030f02f0, 0,
      346568, 912, 936, 226240, 7272, 7264, 7336, 7352, 7400, 7592, 7576, 7584, 16, 7736,
      0, 7752, 7744, 7944, 0, 888, 0, 8, 16, 72, 80, 88, 96, 176, 184, 256, 32, 36, 40,
      136, 288, 0, 88, 8, 0, 56, 80, 74, 64, 0, 216, 112, 120, 128, 136, 68, 52, 96, 104,
      208, 0, 16, 8, 424, 24, 88, 168, 32, 288, 944, 888, 40, 32, 16, 40, 24, 16, 200,
      24, 40, 32, 48, 32, 40, 24, 16, 32, 16, 24, 40, 16, 32, 64, 32, 16, 40, 56, 176,
      112, 120, 1120, 104, 160, 24, 72, 67, 0, 8, 24, 344, 8028, 0, 4, 512};
  std::memcpy(&w[0], kDebugOffsetsCookie, 8);
  return w;
}

TEST(PythonLayout, DebugOffsets315) {
  FakeMemory mem;
  std::vector<uint64_t> w = debugOffsets315();
  ASSERT_EQ(w.size(), 111u);
  mem.putBytes(0x5000, w.data(), w.size() * 8);
  auto table = readDebugOffsets(mem, 0x5000);
  ASSERT_TRUE(bool(table)) << llvm::toString(table.takeError());
  EXPECT_FALSE(table->orderGuessed);
  EXPECT_EQ(table->get(DebugField::BaseFrame), 80u);
  EXPECT_EQ(table->get(DebugField::ThreadId), 176u);
  EXPECT_EQ(table->get(DebugField::HoldsGil), 36u);
  EXPECT_EQ(table->get(DebugField::GilRequested), 40u);
  EXPECT_EQ(table->get(DebugField::CompactUnicodeSize), 56u);
  EXPECT_EQ(table->get(DebugField::GiFrameState), 67u);
  auto layout = layoutFromDebugOffsets(*table);
  ASSERT_TRUE(bool(layout)) << llvm::toString(layout.takeError());
  EXPECT_EQ(layout->version.toString(), "3.15.2");
  EXPECT_EQ(layout->interpModules, 7592u);
  EXPECT_EQ(layout->htCachedKeys, 888u);
  EXPECT_EQ(layout->tstateHoldsGil, 36u);
  EXPECT_EQ(layout->frameOwner, 74u);
  std::optional<DepthLayout> depth = depthLayout(*table);
  ASSERT_TRUE(depth);
  EXPECT_EQ(depth->tstateExcInfo, 144u); // after current_exception
  EXPECT_EQ(depth->htQualname, 880u);
  EXPECT_EQ(depth->frameLocalsplus, 80u);
  EXPECT_EQ(depth->iframeStackpointer, 64u);
  EXPECT_EQ(depth->frameSuspendedYieldFrom, 2);
  EXPECT_EQ(depth->awaitedSlotFromTop, 2u);
}

// A minor version newer than any known is read with the newest field order
// and said to be a guess; stacks are still decoded when that order holds.
TEST(PythonLayout, UnknownNewerMinorIsTriedWithTheNewestOrder) {
  FakeMemory mem;
  std::vector<uint64_t> w = debugOffsets315();
  w[1] = 0x031000a1; // 3.16.0a1
  mem.putBytes(0x5000, w.data(), w.size() * 8);
  auto table = readDebugOffsets(mem, 0x5000);
  ASSERT_TRUE(bool(table)) << llvm::toString(table.takeError());
  EXPECT_TRUE(table->orderGuessed);
  EXPECT_EQ(table->version.minor, 16);
  auto layout = layoutFromDebugOffsets(*table);
  ASSERT_TRUE(bool(layout)) << llvm::toString(layout.takeError());
  EXPECT_EQ(layout->version.minor, 16);
  EXPECT_EQ(layout->tstateThreadId, 176u);
  EXPECT_TRUE(depthLayout(*table));

  w[1] = 0x030c0000; // 3.12 has no table: the cookie cannot be trusted
  mem.putBytes(0x5000, w.data(), w.size() * 8);
  auto old = readDebugOffsets(mem, 0x5000);
  EXPECT_FALSE(bool(old));
  llvm::consumeError(old.takeError());
}

// A free-threaded build publishes its larger object header through
// ob_type; the object fields the table does not cover move with it.
TEST(PythonLayout, FreeThreadedTablesShiftUnpublishedObjectFields) {
  FakeMemory mem;
  std::vector<uint64_t> w = debugOffsets313();
  w[2] = 1;              // free-threaded
  w[44] = 32, w[45] = 24; // pyobject: size, ob_type
  mem.putBytes(0x5000, w.data(), w.size() * 8);
  auto table = readDebugOffsets(mem, 0x5000);
  ASSERT_TRUE(bool(table)) << llvm::toString(table.takeError());
  auto layout = layoutFromDebugOffsets(*table);
  ASSERT_TRUE(bool(layout)) << llvm::toString(layout.takeError());
  EXPECT_TRUE(layout->freeThreaded);
  EXPECT_EQ(layout->htCachedKeys, 896u);
  EXPECT_EQ(layout->managedDictBefore, 8u);
  std::optional<DepthLayout> depth = depthLayout(*table);
  ASSERT_TRUE(depth);
  EXPECT_EQ(depth->excArgs, 40u);
  EXPECT_EQ(depth->stackRefTagBits, 1u);
  EXPECT_EQ(depth->cellRef, 32u);
}

TEST(PythonLayout, VersionFormatting) {
  EXPECT_EQ(PythonVersion::fromHex(0x030b07f0).toString(), "3.11.7");
  EXPECT_EQ(PythonVersion::fromHex(0x030d00c3).toString(), "3.13.0rc3");
}

// --- strings -------------------------------------------------------------

TEST(PythonStrings, CompactKinds) {
  FakeMemory mem;
  FakeHeap heap(mem);
  for (int minor : {6, 11, 12, 13}) {
    Layout l = *builtinLayout(3, minor);
    FakePython py(heap, l);
    auto read = [&](uint64_t s) {
      auto v = readString(mem, l, s);
      return v ? *v : "ERR " + llvm::toString(v.takeError());
    };
    EXPECT_EQ(read(py.str("hello")), "hello");
    EXPECT_EQ(read(py.str({'h', 0xe9, 'l', 'l', 'o'}, 1, false)), "h\xc3\xa9llo");
    EXPECT_EQ(read(py.str({0x3a9, 'x'}, 2, false)), "\xce\xa9x");
    EXPECT_EQ(read(py.str({0x1f600}, 4, false)), "\xf0\x9f\x98\x80");
    // surrogateescape'd undecodable byte 0xff in a file name
    EXPECT_EQ(read(py.str({'a', 0xdcff}, 2, false)), "a\xff");
    EXPECT_EQ(read(py.str({0xd800}, 2, false)), "\xef\xbf\xbd");
  }
}

TEST(PythonStrings, LegacyStrUsesDataPointer) {
  FakeMemory mem;
  FakeHeap heap(mem);
  Layout l = *builtinLayout(3, 9);
  FakePython py(heap, l);
  uint64_t s = py.str("zz"); // then turn it into a non-compact object
  uint64_t data = heap.alloc(16);
  uint16_t chars[] = {'o', 0x142, 'k'};
  mem.putBytes(data, chars, sizeof chars);
  heap.put(s + l.unicodeLength, int64_t(3));
  heap.put(s + l.unicodeState, uint32_t(2 << 2)); // kind 2, not compact
  heap.put(s + l.compactUnicodeSize, data);
  auto v = readString(mem, l, s);
  ASSERT_TRUE(bool(v));
  EXPECT_EQ(*v, "o\xc5\x82k");
}

TEST(PythonStrings, Python27StrAndUnicode) {
  FakeMemory mem;
  FakeHeap heap(mem);
  Layout l = *builtinLayout(2, 7);
  FakePython py(heap, l);
  uint64_t strType = py.makeType("str", kTpFlagsBytes);
  uint64_t s = heap.alloc(64);
  heap.put(s + 8, strType);
  heap.put(s + 16, int64_t(3));
  mem.putBytes(s + 36, "abc", 4);
  auto v = readString(mem, l, s);
  ASSERT_TRUE(bool(v));
  EXPECT_EQ(*v, "abc");

  uint64_t uniType = py.makeType("unicode", kTpFlagsUnicode);
  uint64_t u = heap.alloc(64), buf = heap.alloc(16);
  uint32_t chars[] = {'n', 0xe9};
  mem.putBytes(buf, chars, sizeof chars);
  heap.put(u + 8, uniType);
  heap.put(u + 16, int64_t(2));
  heap.put(u + 24, buf);
  auto w = readString(mem, l, u);
  ASSERT_TRUE(bool(w));
  EXPECT_EQ(*w, "n\xc3\xa9");
}

TEST(PythonStrings, RejectsNonStringsAndHugeLengths) {
  FakeMemory mem;
  FakeHeap heap(mem);
  Layout l = *builtinLayout(3, 11);
  FakePython py(heap, l);
  uint64_t s = py.str("x");
  heap.put(s + l.unicodeLength, int64_t(1) << 40);
  auto huge = readString(mem, l, s);
  EXPECT_FALSE(bool(huge));
  llvm::consumeError(huge.takeError());
  uint64_t notStr = py.bytes({1, 2});
  auto wrong = readString(mem, l, notStr);
  EXPECT_FALSE(bool(wrong));
  llvm::consumeError(wrong.takeError());
  auto null = readString(mem, l, 0);
  EXPECT_FALSE(bool(null));
  llvm::consumeError(null.takeError());
}

// --- capture + resolve -----------------------------------------------------

TEST(PythonStacks, Walks311ChainWithEntriesAndGil) {
  FakeRuntime rt(11);
  FakePython py(rt.heap, rt.in.layout);
  uint64_t outer = py.code("main", "/app/main.py", 10, oneLineTable(8, 2));
  uint64_t inner = py.code("work", "/app/lib.py", 20, oneLineTable(8, 1));
  uint64_t f2 = rt.iframe(outer, 3, 0, 0, /*isEntry=*/true);
  uint64_t f1 = rt.iframe(inner, 2, f2, 0, false);
  uint64_t ts = rt.addThread(f1, 4242);
  rt.heap.put(rt.in.runtimeAddr + *rt.in.layout.runtimeTstateCurrent, ts);

  auto cap = capture(rt.in, rt.mem);
  ASSERT_TRUE(bool(cap));
  ASSERT_EQ(cap->threads.size(), 1u);
  auto stacks = resolve(rt.in, *cap, rt.mem);
  ASSERT_EQ(stacks.size(), 1u);
  const PythonThreadStack &s = stacks[0];
  EXPECT_EQ(s.tid, 4242);
  EXPECT_TRUE(s.holdsGil);
  ASSERT_EQ(s.frames.size(), 2u);
  EXPECT_EQ(s.frames[0].function, "Outer.work"); // qualname on 3.11+
  EXPECT_EQ(s.frames[0].file, "/app/lib.py");
  EXPECT_EQ(s.frames[0].line, 21u);
  EXPECT_EQ(s.frames[0].column, 4u);
  EXPECT_EQ(s.frames[0].endColumn, 9u);
  EXPECT_FALSE(s.frames[0].pythonEntry);
  EXPECT_EQ(s.frames[1].line, 12u);
  EXPECT_TRUE(s.frames[1].pythonEntry);
}

TEST(PythonStacks, ShimFramesAreDroppedAndMarkEntries312) {
  FakeRuntime rt(12);
  FakePython py(rt.heap, rt.in.layout);
  uint64_t code = py.code("f", "/f.py", 1, oneLineTable(8, 0));
  uint64_t shimCode = py.code("<interpreter trampoline>", "<shim>", 1, {});
  uint64_t shim2 = rt.iframe(shimCode, 0, 0, /*owner=*/3);
  uint64_t a = rt.iframe(code, 1, shim2);
  uint64_t shim1 = rt.iframe(shimCode, 0, a, 3);
  uint64_t b = rt.iframe(code, 1, shim1);
  uint64_t c = rt.iframe(code, 1, b);
  rt.addThread(c, 7);
  auto cap = capture(rt.in, rt.mem);
  ASSERT_TRUE(bool(cap));
  auto stacks = resolve(rt.in, *cap, rt.mem);
  ASSERT_EQ(stacks[0].frames.size(), 3u);
  EXPECT_FALSE(stacks[0].frames[0].pythonEntry); // c
  EXPECT_TRUE(stacks[0].frames[1].pythonEntry);  // b (above shim1)
  EXPECT_TRUE(stacks[0].frames[2].pythonEntry);  // a (above shim2)
  EXPECT_FALSE(stacks[0].holdsGil);
}

TEST(PythonStacks, IncompleteFramesAreSkipped) {
  FakeRuntime rt(11);
  FakePython py(rt.heap, rt.in.layout);
  uint64_t code = py.code("f", "/f.py", 1, oneLineTable(8, 0));
  rt.heap.put(code + *rt.in.layout.coFirstTraceable, int32_t(2));
  uint64_t done = rt.iframe(code, 3, 0);
  uint64_t starting = rt.iframe(code, 0, done); // still in its prologue
  rt.addThread(starting, 1);
  auto cap = capture(rt.in, rt.mem);
  ASSERT_TRUE(bool(cap));
  auto stacks = resolve(rt.in, *cap, rt.mem);
  ASSERT_EQ(stacks[0].frames.size(), 1u);
  EXPECT_EQ(stacks[0].frames[0].line, 1u);
}

TEST(PythonStacks, FrameObjectChain39) {
  FakeRuntime rt(9);
  FakePython py(rt.heap, rt.in.layout);
  // lnotab: +4 bytes -> +1 line, +6 bytes -> +2 lines
  uint64_t code = py.code("f", "/f.py", 5, {4, 1, 6, 2});
  uint64_t outer = rt.frameObject(code, 12, 0);
  uint64_t inner = rt.frameObject(code, 4, outer);
  rt.addThread(inner, 0);
  auto cap = capture(rt.in, rt.mem);
  ASSERT_TRUE(bool(cap));
  auto stacks = resolve(rt.in, *cap, rt.mem);
  ASSERT_EQ(stacks[0].frames.size(), 2u);
  EXPECT_EQ(stacks[0].frames[0].function, "f"); // no qualname before 3.11
  EXPECT_EQ(stacks[0].frames[0].line, 6u);
  EXPECT_EQ(stacks[0].frames[1].line, 8u);
  EXPECT_TRUE(stacks[0].frames[0].pythonEntry);
  EXPECT_FALSE(stacks[0].frames[0].column);
}

TEST(PythonStacks, PthreadTidOffsetIsValidatedAgainstKnownTids) {
  FakeRuntime rt(9);
  FakePython py(rt.heap, rt.in.layout);
  uint64_t code = py.code("f", "/f.py", 1, {});
  // Two threads whose struct pthread holds the tid at an unusual offset.
  uint64_t pthreadA = rt.addPthreadThread(rt.frameObject(code, 0, 0), 0x120, 501);
  rt.heap.put(pthreadA + 0x2d0, int32_t(999)); // stale value at the default
  rt.addPthreadThread(rt.frameObject(code, 0, 0), 0x120, 502);
  auto cap = capture(rt.in, rt.mem);
  ASSERT_TRUE(bool(cap));
  auto stacks = resolve(rt.in, *cap, rt.mem, {500, 501, 502});
  ASSERT_EQ(stacks.size(), 2u);
  EXPECT_EQ(stacks[0].tid, 502); // newest thread first
  EXPECT_EQ(stacks[1].tid, 501);
}

// In a pid namespace (a container) thread states hold the process's own
// ids: 1 for its first thread. resolve() and capture() give ours. Here the
// process calls its threads 1 and 42, and we call them 21153 and 21194.
namespace {
TidMap containerTids() {
  TidMap map;
  map.add(21153, 1);
  map.add(21194, 42);
  return map;
}

void expectResolvedToOurIds(FakeRuntime &rt) {
  auto cap = capture(rt.in, rt.mem);
  ASSERT_TRUE(bool(cap));
  auto stacks = resolve(rt.in, *cap, rt.mem, containerTids());
  ASSERT_EQ(stacks.size(), 2u);
  EXPECT_EQ(stacks[0].tid, 21194); // newest thread first
  EXPECT_EQ(stacks[0].ownTid, 42);
  EXPECT_EQ(stacks[1].tid, 21153);
  EXPECT_TRUE(stacks[1].errors.empty());
}
} // namespace

TEST(PythonStacks, ThreadIdsOfAPidNamespaceAreMappedToOurs) {
  FakeRuntime rt(11);
  FakePython py(rt.heap, rt.in.layout);
  uint64_t code = py.code("f", "/f.py", 1, oneLineTable(8, 0));
  uint64_t first = rt.addThread(rt.iframe(code, 1, 0, 0, true), 1);
  uint64_t second = rt.addThread(rt.iframe(code, 1, 0, 0, true), 42);
  expectResolvedToOurIds(rt);

  // The sampler chooses threads by our ids, and its hints keep ours.
  TidMap map = containerTids();
  ThreadStateHints hints;
  CaptureLimits limits;
  limits.onlyTids = {21153};
  limits.hints = &hints;
  limits.tidMap = &map;
  for (int pass = 0; pass < 2; ++pass) { // a walk, then the hints
    auto chosen = capture(rt.in, rt.mem, limits);
    ASSERT_TRUE(bool(chosen));
    ASSERT_EQ(chosen->threads.size(), 1u) << "pass " << pass;
    EXPECT_EQ(chosen->threads[0].osTid, 21153);
    EXPECT_EQ(chosen->threads[0].nativeThreadId, 1u);
  }
  EXPECT_EQ(hints.tstateByTid.count(1), 0u);
  EXPECT_EQ(threadStateTid(rt.in.layout, rt.mem, first, 0x2d0, &map), pid_t(21153));
  // A thread state whose id no thread of ours has matches nothing.
  TidMap other;
  other.add(21153, 1);
  EXPECT_EQ(threadStateTid(rt.in.layout, rt.mem, second, 0x2d0, &other), std::nullopt);
}

TEST(PythonStacks, PthreadTidOfAPidNamespaceIsValidatedAndMapped) {
  FakeRuntime rt(9);
  FakePython py(rt.heap, rt.in.layout);
  uint64_t code = py.code("f", "/f.py", 1, {});
  rt.addPthreadThread(rt.frameObject(code, 0, 0), 0x120, 1);
  rt.addPthreadThread(rt.frameObject(code, 0, 0), 0x120, 42);
  expectResolvedToOurIds(rt);
}

// --- hostile memory ----------------------------------------------------------

TEST(PythonHostile, FrameCycleIsCutAndReported) {
  FakeRuntime rt(11);
  FakePython py(rt.heap, rt.in.layout);
  uint64_t code = py.code("loop", "/l.py", 1, oneLineTable(8, 0));
  uint64_t a = rt.iframe(code, 1, 0);
  uint64_t b = rt.iframe(code, 1, a);
  rt.heap.put(a + rt.in.layout.frameBack, b); // a -> b -> a
  rt.addThread(b, 1);
  auto cap = capture(rt.in, rt.mem);
  ASSERT_TRUE(bool(cap));
  ASSERT_EQ(cap->threads.size(), 1u);
  EXPECT_EQ(cap->threads[0].frames.size(), 2u);
  ASSERT_EQ(cap->threads[0].errors.size(), 1u);
  EXPECT_NE(cap->threads[0].errors[0].find("loops"), std::string::npos);
}

TEST(PythonHostile, ThreadCycleAndForeignInterpreterAreCut) {
  FakeRuntime rt(10);
  uint64_t t1 = rt.addThread(0, 0);
  uint64_t t2 = rt.addThread(0, 0);
  rt.heap.put(t1 + rt.in.layout.tstateNext, t2); // t2 -> t1 -> t2
  auto cap = capture(rt.in, rt.mem);
  ASSERT_TRUE(bool(cap));
  EXPECT_EQ(cap->threads.size(), 2u);
  ASSERT_EQ(cap->errors.size(), 1u);

  rt.heap.put(t1 + rt.in.layout.tstateNext, uint64_t(0));
  rt.heap.put(t1 + rt.in.layout.tstateInterp, uint64_t(0xdead0000));
  auto cut = capture(rt.in, rt.mem);
  ASSERT_TRUE(bool(cut));
  EXPECT_EQ(cut->threads.size(), 1u);
  EXPECT_EQ(cut->errors.size(), 1u);
}

TEST(PythonHostile, LongChainIsBounded) {
  FakeRuntime rt(13);
  FakePython py(rt.heap, rt.in.layout);
  uint64_t code = py.code("deep", "/d.py", 1, oneLineTable(8, 0));
  uint64_t f = 0;
  for (int i = 0; i < 50; ++i)
    f = rt.iframe(code, 1, f);
  rt.addThread(f, 1);
  CaptureLimits limits;
  limits.maxFramesPerThread = 20;
  auto cap = capture(rt.in, rt.mem, limits);
  ASSERT_TRUE(bool(cap));
  EXPECT_EQ(cap->threads[0].frames.size(), 20u);
  EXPECT_EQ(cap->threads[0].errors.size(), 1u);
}

TEST(PythonHostile, BadFramesBecomeErrorFramesAndTheRestContinues) {
  FakeRuntime rt(13);
  FakePython py(rt.heap, rt.in.layout);
  uint64_t good = py.code("good", "/g.py", 1, oneLineTable(8, 0));
  uint64_t notCode = py.bytes({1, 2, 3}); // f_executable that is not code
  uint64_t base = rt.iframe(good, 1, 0);
  uint64_t mid = rt.iframe(notCode, 1, base);
  uint64_t garbage = rt.iframe(0x123456789, 1, mid); // unmapped code pointer
  rt.addThread(garbage, 1);
  uint64_t dangling = rt.iframe(good, 1, 0xdeadbeef000); // unmapped previous
  rt.addThread(dangling, 2);

  auto cap = capture(rt.in, rt.mem);
  ASSERT_TRUE(bool(cap));
  auto stacks = resolve(rt.in, *cap, rt.mem);
  ASSERT_EQ(stacks.size(), 2u);
  // Newest thread first: the one with the dangling `previous`.
  ASSERT_EQ(stacks[0].frames.size(), 2u);
  EXPECT_EQ(stacks[0].frames[0].function, "Outer.good");
  EXPECT_TRUE(stacks[0].frames[1].error);
  ASSERT_EQ(stacks[1].frames.size(), 3u);
  EXPECT_TRUE(stacks[1].frames[0].error);
  EXPECT_TRUE(stacks[1].frames[1].error);
  EXPECT_EQ(stacks[1].frames[2].function, "Outer.good");
  EXPECT_EQ(stacks[1].frames[2].line, 1u);
}

// Random words everywhere the walker can reach, many of them pointers back
// into the same regions (so chains loop and cross). Whatever comes out must
// respect the capture limits and name its problems; that it ends at all,
// without a crash, is checked by running it (and by ASan in CI).
TEST(PythonHostile, RandomBytesStayWithinBounds) {
  const CaptureLimits limits;
  size_t captures = 0, threadsSeen = 0;
  for (uint32_t seed = 1; seed < 200; ++seed) {
    FakeRuntime rt(11 + seed % 3);
    uint32_t x = seed;
    auto rnd = [&] { return x = x * 1664525u + 1013904223u; };
    std::vector<uint64_t> regions;
    for (int i = 0; i < 8; ++i)
      regions.push_back(rt.heap.alloc(512));
    for (uint64_t r : regions)
      for (int off = 0; off < 512; off += 8) {
        uint64_t v = (rnd() % 3 == 0) ? regions[rnd() % regions.size()] + (rnd() % 64) * 8
                                      : (uint64_t(rnd()) << 32 | rnd());
        rt.heap.put(r + off, v);
      }
    rt.heap.put(rt.interp + rt.in.layout.interpThreadsHead, regions[0]);
    rt.heap.put(rt.interp + rt.in.layout.interpNext, regions[1]);
    // One well-formed thread state in front, whose frame chain starts in
    // the random words: the frame walk and the decoder get them too.
    rt.addThread(regions[2 + rnd() % 6] + (rnd() % 64) * 8, 100 + seed);
    auto cap = capture(rt.in, rt.mem);
    if (!cap) {
      EXPECT_FALSE(llvm::toString(cap.takeError()).empty()) << "seed " << seed;
      continue;
    }
    ++captures;
    EXPECT_LE(cap->threads.size(), limits.maxThreads) << "seed " << seed;
    for (const CapturedThread &t : cap->threads)
      EXPECT_LE(t.frames.size(), limits.maxFramesPerThread) << "seed " << seed;
    for (const PythonThreadStack &s : resolve(rt.in, *cap, rt.mem)) {
      ++threadsSeen;
      EXPECT_LE(s.frames.size(), limits.maxFramesPerThread) << "seed " << seed;
      for (const Frame &f : s.frames)
        EXPECT_TRUE(f.error || f.function) << "seed " << seed << ": a frame with neither";
    }
  }
  // The random heap must reach the walk, or the test shows nothing.
  EXPECT_GT(captures, 0u);
  EXPECT_GT(threadsSeen, 0u);
}

// --- merge ---------------------------------------------------------------

TEST(PythonMerge, OneFramePerEvalCallBefore311) {
  std::vector<Frame> native = {nativeFrame("nanosleep"),
                               nativeFrame("time_sleep"),
                               nativeFrame("_PyEval_EvalFrameDefault"),
                               nativeFrame("_PyFunction_Vectorcall"),
                               nativeFrame("_PyEval_EvalFrameDefault"),
                               nativeFrame("PyEval_EvalFrameEx"), // 3.6-3.10 wrapper
                               nativeFrame("main")};
  std::vector<Frame> python = {pyFrame("inner", true), pyFrame("outer", true)};
  MergedStack m = mergeNativeAndPython(native, python);
  EXPECT_FALSE(m.warning);
  EXPECT_EQ(names(m.frames),
            (std::vector<std::string>{"nanosleep", "time_sleep", "inner",
                                      "_PyFunction_Vectorcall", "outer",
                                      "PyEval_EvalFrameEx", "main"}));
}

TEST(PythonMerge, BlocksPerActivation311) {
  std::vector<Frame> native = {nativeFrame("sleep"),
                               nativeFrame("_PyEval_EvalFrameDefault.cold"),
                               nativeFrame("sorted"),
                               nativeFrame("_PyEval_EvalFrameDefault"),
                               nativeFrame("Py_RunMain")};
  std::vector<Frame> python = {pyFrame("key", false), pyFrame("keyfn", true),
                               pyFrame("b", false), pyFrame("<module>", true)};
  MergedStack m = mergeNativeAndPython(native, python);
  EXPECT_FALSE(m.warning);
  EXPECT_EQ(names(m.frames),
            (std::vector<std::string>{"sleep", "key", "keyfn", "sorted", "b",
                                      "<module>", "Py_RunMain"}));
}

TEST(PythonMerge, OneExtraEvalFrameIsTolerated) {
  std::vector<Frame> native = {nativeFrame("_PyEval_EvalFrameDefault"),
                               nativeFrame("_PyEval_EvalFrameDefault"),
                               nativeFrame("main")};
  MergedStack m = mergeNativeAndPython(native, {pyFrame("only", true)});
  EXPECT_FALSE(m.warning);
  EXPECT_EQ(names(m.frames), (std::vector<std::string>{"only", "main"}));
}

// A stripped interpreter (Debian's 3.15) names no eval frame: each
// activation goes where its entry record lies on the native stack.
TEST(PythonMerge, EntryRecordsPlaceActivationsWithoutSymbols) {
  auto at = [](Frame f, uint64_t sp) {
    f.stackPointer = sp;
    return f;
  };
  Frame unnamed;
  std::vector<Frame> native = {at(nativeFrame("clock_nanosleep"), 0x1000), at(unnamed, 0x1100),
                               at(unnamed, 0x1200), at(unnamed, 0x1300),
                               at(nativeFrame("main"), 0x1400), at(nativeFrame("_start"), 0x1500)};
  Frame key = pyFrame("key", true), module = pyFrame("<module>", true);
  key.entryRecordAddress = 0x1180;    // inside native[1]'s frame
  module.entryRecordAddress = 0x1350; // inside native[3]'s frame
  MergedStack m = mergeNativeAndPython(native, {pyFrame("inner", false), key,
                                                pyFrame("b", false), module});
  EXPECT_FALSE(m.warning);
  EXPECT_EQ(names(m.frames), (std::vector<std::string>{"clock_nanosleep", "inner", "key", "?",
                                                       "b", "<module>", "main", "_start"}));

  // A record that lands on a named frame that is not the eval loop is not
  // trusted: the name count decides, and here cannot.
  module.entryRecordAddress = 0x1450; // inside main
  MergedStack odd = mergeNativeAndPython(native, {key, module});
  EXPECT_TRUE(odd.warning);
}

TEST(PythonMerge, MismatchIsReportedNotGuessed) {
  std::vector<Frame> native = {nativeFrame("main")};
  MergedStack m = mergeNativeAndPython(native, {pyFrame("a", true),
                                                pyFrame("b", true)});
  ASSERT_TRUE(m.warning);
  EXPECT_EQ(names(m.frames), (std::vector<std::string>{"main", "a", "b"}));
  EXPECT_EQ(mergeNativeAndPython(native, {}).frames.size(), 1u);
}

// --- the sampler's persistent code-object cache -------------------------------

TEST(PythonCodeCache, ReusesUnchangedCodeAndRereadsReplacedCode) {
  FakeRuntime rt(11);
  FakePython py(rt.heap, rt.in.layout);
  const Layout &l = rt.in.layout;
  uint64_t code = py.code("work", "/app/lib.py", 20, oneLineTable(8, 1));
  rt.addThread(rt.iframe(code, 2, 0, 0, true), 4242);
  auto cap = capture(rt.in, rt.mem);
  ASSERT_TRUE(bool(cap));

  CodeCache cache(/*persistent=*/true);
  auto first = resolve(rt.in, *cap, rt.mem, {}, false, &cache);
  ASSERT_EQ(first.at(0).frames.size(), 1u);
  EXPECT_EQ(first[0].frames[0].function, "Outer.work");

  // A later pass with an unchanged code object costs one read (the
  // validation), not the strings and the line table again.
  cache.newPass();
  size_t before = rt.mem.readCount();
  auto second = resolve(rt.in, *cap, rt.mem, {}, false, &cache);
  EXPECT_EQ(rt.mem.readCount() - before, 1u);
  EXPECT_EQ(second.at(0).frames.at(0).function, "Outer.work");
  // Validated in this pass already: asking again costs nothing.
  EXPECT_TRUE(cache.unchanged(l, rt.mem, code));
  EXPECT_EQ(rt.mem.readCount() - before, 1u);

  // The reference count moves with every call: still the same code.
  rt.heap.put(code, uint64_t(12345));
  cache.newPass();
  before = rt.mem.readCount();
  EXPECT_TRUE(cache.unchanged(l, rt.mem, code));
  resolve(rt.in, *cap, rt.mem, {}, false, &cache);
  EXPECT_EQ(rt.mem.readCount() - before, 1u);

  // Freed and replaced by another code object at the same address: the
  // cache must notice and decode the new one.
  rt.heap.put(code + *l.coQualname, py.str("Other.place"));
  cache.newPass();
  EXPECT_FALSE(cache.unchanged(l, rt.mem, code));
  auto third = resolve(rt.in, *cap, rt.mem, {}, false, &cache);
  EXPECT_EQ(third.at(0).frames.at(0).function, "Other.place");
  EXPECT_FALSE(cache.unchanged(l, rt.mem, code + 8)); // never decoded

  // Within one pass, one validation per code object, however many frames.
  EXPECT_EQ(cache.size(), 1u);
}

// --- the sampler's thread-state hints ----------------------------------------

TEST(PythonCaptureHints, ReadsOnlyChosenThreadsAndWalksAgainOnAnyDoubt) {
  FakeRuntime rt(11);
  FakePython py(rt.heap, rt.in.layout);
  const Layout &l = rt.in.layout;
  uint64_t code = py.code("work", "/app/lib.py", 20, oneLineTable(8, 1));
  std::vector<uint64_t> states;
  for (int i = 0; i < 50; ++i)
    states.push_back(rt.addThread(rt.iframe(code, 2, 0, 0, true), 1000 + i));

  ThreadStateHints hints;
  CaptureLimits limits;
  limits.onlyTids = {1007};
  limits.hints = &hints;
  size_t before = rt.mem.readCount();
  auto walked = capture(rt.in, rt.mem, limits);
  size_t walkReads = rt.mem.readCount() - before;
  ASSERT_TRUE(bool(walked));
  ASSERT_EQ(walked->threads.size(), 1u);
  EXPECT_TRUE(hints.valid);
  EXPECT_EQ(hints.tstateByTid.size(), 50u);

  // Next capture: the one chosen thread state, not the 50.
  before = rt.mem.readCount();
  auto quick = capture(rt.in, rt.mem, limits);
  size_t quickReads = rt.mem.readCount() - before;
  ASSERT_TRUE(bool(quick));
  ASSERT_EQ(quick->threads.size(), 1u);
  EXPECT_EQ(quick->threads[0].nativeThreadId, 1007u);
  EXPECT_EQ(quick->threads[0].frames.size(), 1u);
  EXPECT_LT(quickReads * 5, walkReads);

  // The thread state now names another thread (freed and reused): the hint
  // is not trusted, the list is walked, and the thread is found elsewhere.
  rt.heap.put(states[7] + *l.tstateNativeThreadId, uint64_t(5555));
  uint64_t moved = rt.addThread(rt.iframe(code, 2, 0, 0, true), 1007);
  auto rewalked = capture(rt.in, rt.mem, limits);
  ASSERT_TRUE(bool(rewalked));
  ASSERT_EQ(rewalked->threads.size(), 1u);
  EXPECT_EQ(rewalked->threads[0].tstateAddr, moved);
  EXPECT_EQ(hints.tstateByTid.at(1007), moved);

  // A thread state that looks right but is no longer linked (freed: malloc
  // reused its first words, where `next` lives) is not trusted either.
  uint64_t savedNext = 0;
  rt.mem.read(moved + l.tstateNext, &savedNext, 8);
  rt.heap.put(moved + l.tstateNext, uint64_t(0xdead0000));
  auto unlinked = capture(rt.in, rt.mem, limits);
  ASSERT_TRUE(bool(unlinked));
  // It walked instead, was cut short by the bad link (an error says so),
  // and a cut walk does not vouch for the hints.
  EXPECT_FALSE(unlinked->errors.empty());
  EXPECT_FALSE(hints.valid);
  rt.heap.put(moved + l.tstateNext, savedNext);
  capture(rt.in, rt.mem, limits);
  EXPECT_TRUE(hints.valid);

  // A chosen thread with no thread state (a native thread) does not force
  // a walk on every capture once a walk has not found it.
  limits.onlyTids = {1007, 4242};
  capture(rt.in, rt.mem, limits);
  EXPECT_TRUE(hints.withoutPython.count(4242));
  before = rt.mem.readCount();
  auto mixed = capture(rt.in, rt.mem, limits);
  ASSERT_TRUE(bool(mixed));
  EXPECT_EQ(mixed->threads.size(), 1u);
  EXPECT_LT((rt.mem.readCount() - before) * 5, walkReads);
}
