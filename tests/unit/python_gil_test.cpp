// GIL and garbage-collector details on hand-built interpreter memory.
//
// capture() reads, per interpreter, where a GIL waiter's futexes are and
// whether the collector runs; classifyGil() turns that plus a stopped
// thread's system call into held / waiting / released. These tests lay out
// only those fields, at the offsets of the layout tables, for each way a
// version keeps them (static variables, _PyRuntime, the interpreter, a GIL
// pointer), plus unreadable memory, and check both renderers' wording.
// Real interpreters are covered by tests/integration/test_python_gil.py.
#include <gtest/gtest.h>

#include <sys/syscall.h>

#include <string>
#include <vector>

#include "memory/FakeMemory.h"
#include "python/layout/Layout.h"
#include "python/frames/Capture.h"
#include "python/frames/GilAnchor.h"
#include "python/frames/GilState.h"
#include "python/frames/Interpreter.h"
#include "python/layout/VersionLayouts.h"
#include "llvm/Support/JSON.h"
#include "render/Renderer.h"

using namespace stackpeek;
using namespace stackpeek::python;

namespace {

// One interpreter whose threads have no frames: enough for the GIL facts.
struct GilFixture {
  FakeMemory mem;
  Interpreter in;
  uint64_t interp = 0;
  uint64_t next = 0x100000;

  GilFixture(int major, int minor) {
    in.layout = *builtinLayout(major, minor);
    const Layout &l = in.layout;
    uint64_t runtime = alloc(l.runtimeInterpretersHead ? 4096 : 64);
    if (l.runtimeInterpretersHead) {
      in.runtimeAddr = runtime;
      in.interpHeadAddr = runtime + *l.runtimeInterpretersHead;
    } else {
      in.interpHeadAddr = runtime;
    }
    interp = alloc(l.interpSize + 64);
    mem.put(in.interpHeadAddr, interp);
  }
  uint64_t alloc(size_t size) {
    uint64_t addr = next;
    size_t bytes = (size + 0xfff) & ~size_t(0xfff);
    mem.addRegion(addr, std::vector<uint8_t>(bytes));
    next += bytes + 0x1000; // unmapped gap
    return addr;
  }
  uint64_t addThread() {
    const Layout &l = in.layout;
    uint64_t ts = alloc(l.tstateSize + 64);
    mem.put(ts + l.tstateInterp, interp);
    uint64_t head = 0;
    mem.read(interp + l.interpThreadsHead, &head, 8);
    mem.put(ts + l.tstateNext, head);
    mem.put(interp + l.interpThreadsHead, ts);
    return ts;
  }
  std::vector<CapturedThread> capture() {
    auto cap = python::capture(in, mem);
    EXPECT_TRUE(bool(cap));
    return cap ? cap->threads : std::vector<CapturedThread>{};
  }
};

const CapturedThread &byTstate(const std::vector<CapturedThread> &ts, uint64_t addr) {
  for (const CapturedThread &t : ts)
    if (t.tstateAddr == addr)
      return t;
  static CapturedThread none;
  ADD_FAILURE() << "no thread state " << addr;
  return none;
}

void expectRange(const ThreadStatus &s, uint64_t begin, uint64_t end) {
  ASSERT_EQ(s.gilWaitFutexes.size(), 1u);
  EXPECT_EQ(s.gilWaitFutexes[0].begin, begin);
  EXPECT_EQ(s.gilWaitFutexes[0].end, end);
}

} // namespace

TEST(PythonGil, TablesSayWhereEachVersionKeepsTheLockAndTheFlag) {
  EXPECT_EQ(builtinLayout(2, 7)->gilLock, GilLockModel::StaticSemaphore);
  EXPECT_EQ(builtinLayout(3, 6)->gilLock, GilLockModel::StaticCondMutex);
  EXPECT_EQ(builtinLayout(2, 7)->gcModel, GcModel::StaticCollecting);
  EXPECT_EQ(builtinLayout(3, 6)->gcModel, GcModel::StaticCollecting);
  // offsetof(_PyRuntimeState, ceval.gil) and gc.collecting, from the headers.
  const std::vector<std::pair<int, uint32_t>> runtimeGil = {
      {7, 1264}, {8, 1152}, {9, 352}, {10, 352}, {11, 360}};
  for (auto [minor, offset] : runtimeGil) {
    Layout l = *builtinLayout(3, minor);
    EXPECT_EQ(l.gilLock, GilLockModel::RuntimeGilStruct) << minor;
    EXPECT_EQ(l.runtimeGil, offset) << minor;
  }
  EXPECT_EQ(builtinLayout(3, 7)->gcModel, GcModel::RuntimeCollecting);
  EXPECT_EQ(builtinLayout(3, 8)->gcModel, GcModel::RuntimeCollecting);
  EXPECT_EQ(builtinLayout(3, 8)->gcCollecting, 544u);
  EXPECT_EQ(builtinLayout(3, 9)->gcModel, GcModel::InterpreterCollecting);
  EXPECT_EQ(builtinLayout(3, 12)->gilLock, GilLockModel::InterpreterGilPointer);
  EXPECT_EQ(builtinLayout(3, 13)->gcCollecting, 7600u);
  for (int minor = 9; minor <= 13; ++minor) {
    Layout l = *builtinLayout(3, minor);
    EXPECT_LE(*l.gcCollecting + 4, l.interpSize) << "interp copy too short";
  }
}

TEST(PythonGil, RuntimeGilStruct311AndInterpreterGc) {
  GilFixture fx(3, 11);
  const Layout &l = fx.in.layout;
  uint64_t a = fx.addThread(), b = fx.addThread();
  fx.mem.put(fx.in.runtimeAddr + *l.runtimeTstateCurrent, a);
  fx.mem.put(fx.interp + *l.gcCollecting, int32_t(1));
  auto threads = fx.capture();
  ASSERT_EQ(threads.size(), 2u);
  uint64_t gil = fx.in.runtimeAddr + 360;
  for (const CapturedThread &t : threads)
    expectRange(t.status, gil + 32, gil + 120);
  EXPECT_TRUE(byTstate(threads, a).holdsGil);
  EXPECT_EQ(byTstate(threads, a).status.collectingGarbage, true);
  EXPECT_EQ(byTstate(threads, b).status.collectingGarbage, false);
}

TEST(PythonGil, InterpreterGilPointer312) {
  GilFixture fx(3, 12);
  const Layout &l = fx.in.layout;
  uint64_t a = fx.addThread(), b = fx.addThread();
  uint64_t gil = fx.alloc(256);
  fx.mem.put(fx.interp + *l.interpGilPointer, gil);
  fx.mem.put(gil + l.gilLocked, int32_t(1));
  fx.mem.put(gil + l.gilLastHolder, b);
  auto threads = fx.capture();
  expectRange(byTstate(threads, a).status, gil + 32, gil + 120);
  EXPECT_TRUE(byTstate(threads, b).holdsGil);
  // Not collecting: known false on every thread, the holder included.
  EXPECT_EQ(byTstate(threads, a).status.collectingGarbage, false);
  EXPECT_EQ(byTstate(threads, b).status.collectingGarbage, false);
}

TEST(PythonGil, RuntimeGcFlag38) {
  GilFixture fx(3, 8);
  uint64_t a = fx.addThread();
  fx.mem.put(fx.in.runtimeAddr + *fx.in.layout.runtimeTstateCurrent, a);
  fx.mem.put(fx.in.runtimeAddr + 544, int32_t(1));
  auto threads = fx.capture();
  EXPECT_EQ(byTstate(threads, a).status.collectingGarbage, true);
  expectRange(threads[0].status, fx.in.runtimeAddr + 1152 + 32,
              fx.in.runtimeAddr + 1152 + 120);
}

TEST(PythonGil, StaticCondMutexAndFlag36) {
  GilFixture fx(3, 6);
  uint64_t statics = fx.alloc(4096);
  fx.in.currentTstateAddr = statics;
  fx.in.gilCondAddr = statics + 0x100;
  fx.in.gilMutexAddr = statics + 0x40;
  fx.in.gcCollectingAddr = statics + 0x800;
  uint64_t a = fx.addThread();
  fx.mem.put(statics, a);
  fx.mem.put(statics + 0x800, int32_t(1));
  auto threads = fx.capture();
  const ThreadStatus &s = byTstate(threads, a).status;
  ASSERT_EQ(s.gilWaitFutexes.size(), 2u);
  EXPECT_EQ(s.gilWaitFutexes[0].begin, statics + 0x100);
  EXPECT_EQ(s.gilWaitFutexes[0].end, statics + 0x100 + 48);
  EXPECT_EQ(s.gilWaitFutexes[1].begin, statics + 0x40);
  EXPECT_EQ(s.gilWaitFutexes[1].end, statics + 0x40 + 40);
  EXPECT_EQ(s.collectingGarbage, true);
}

TEST(PythonGil, StaticSemaphore27) {
  GilFixture fx(2, 7);
  uint64_t statics = fx.alloc(4096), sem = fx.alloc(32);
  fx.in.gilLockPointerAddr = statics;
  fx.mem.put(statics, sem);
  fx.addThread();
  auto threads = fx.capture();
  expectRange(threads[0].status, sem, sem + 32);
  EXPECT_EQ(threads[0].status.collectingGarbage, std::nullopt); // no symbol
}

TEST(PythonGil, UnreadableOrMissingMeansUnknown) {
  GilFixture fx(2, 7);
  fx.in.gilLockPointerAddr = 0xdead0000; // unmapped
  fx.in.gcCollectingAddr = 0xdead1000;
  fx.addThread();
  auto threads = fx.capture();
  EXPECT_TRUE(threads[0].status.gilWaitFutexes.empty());
  EXPECT_EQ(threads[0].status.collectingGarbage, std::nullopt);

  GilFixture g(3, 12); // no GIL pointer yet
  g.addThread();
  EXPECT_TRUE(g.capture()[0].status.gilWaitFutexes.empty());
}

TEST(PythonGil, ClassifyFromTheSyscall) {
  ThreadStatus s;
  s.gilWaitFutexes = {{0x1020, 0x1078}};
  auto stop = [](long nr, uint64_t arg) {
    return std::optional<SyscallStop>(SyscallStop{nr, arg});
  };
  EXPECT_EQ(classifyGil(true, s, stop(SYS_futex, 0x1020), {}), GilState::Held);
  EXPECT_EQ(classifyGil(false, s, stop(SYS_futex, 0x1020), {}), GilState::Waiting);
  EXPECT_EQ(classifyGil(false, s, stop(SYS_futex, 0x1050), {}), GilState::Waiting);
  // switch_cond (the dropping thread) and unrelated futexes: not waiting.
  EXPECT_EQ(classifyGil(false, s, stop(SYS_futex, 0x1078), {}), GilState::Released);
  EXPECT_EQ(classifyGil(false, s, stop(SYS_futex, 0x9000), {}), GilState::Released);
  EXPECT_EQ(classifyGil(false, s, stop(SYS_read, 0x1020), {}), GilState::Released);
  EXPECT_EQ(classifyGil(false, s, stop(-1, 0), {}), GilState::Released);
  // No registers, or no known lock: only "not held".
  EXPECT_EQ(classifyGil(false, s, std::nullopt, {}), GilState::NotHeld);
  EXPECT_EQ(classifyGil(false, ThreadStatus{}, stop(SYS_futex, 0x1020), {}),
            GilState::NotHeld);
}

TEST(PythonGil, TakeGilFrameIsProofOfWaiting) {
  auto native = [](const std::string &fn) {
    Frame f;
    f.function = fn;
    return std::vector<Frame>{f};
  };
  ThreadStatus none;
  EXPECT_EQ(classifyGil(false, none, std::nullopt, native("take_gil")),
            GilState::Waiting);
  EXPECT_EQ(classifyGil(false, none, std::nullopt, native("take_gil.lto_priv.0")),
            GilState::Waiting);
  EXPECT_EQ(classifyGil(false, none, std::nullopt, native("take_gilded")),
            GilState::NotHeld);
  Frame py;
  py.kind = Frame::Kind::Python;
  py.function = "take_gil";
  EXPECT_EQ(classifyGil(false, none, std::nullopt, {py}), GilState::NotHeld);
}

TEST(PythonGil, RenderersShowTheState) {
  Process p;
  p.pid = 1;
  Thread waiting, collecting, unknown;
  waiting.tid = 2, waiting.gil = GilState::Waiting, waiting.collectingGarbage = false;
  collecting.tid = 3, collecting.gil = GilState::Held, collecting.collectingGarbage = true;
  unknown.tid = 4, unknown.gil = GilState::NotHeld;
  for (Thread *t : {&waiting, &collecting, &unknown})
    t->state = "sleeping";
  p.threads = {waiting, collecting, unknown};
  std::string text, json;
  llvm::raw_string_ostream textOut(text), jsonOut(json);
  makeTextRenderer({})->render(p, textOut);
  auto jr = makeJsonRenderer({});
  jr->begin(jsonOut);
  jr->render(p, jsonOut);
  jr->end(jsonOut);
  textOut.flush(), jsonOut.flush();
  EXPECT_NE(text.find("Thread 2 \"\" (sleeping, waiting for the GIL)"),
            std::string::npos) << text;
  EXPECT_NE(text.find("(sleeping, holds the GIL, collecting garbage)"),
            std::string::npos) << text;
  EXPECT_NE(text.find("Thread 4 \"\" (sleeping)"), std::string::npos) << text;

  auto doc = llvm::json::parse(json);
  ASSERT_TRUE(bool(doc)) << llvm::toString(doc.takeError());
  const llvm::json::Array *threads = doc->getAsObject()->getArray("threads");
  ASSERT_TRUE(threads && threads->size() == 3);
  auto field = [&](size_t i, const char *name) {
    return *(*threads)[i].getAsObject()->get(name);
  };
  EXPECT_EQ(field(0, "gil"), llvm::json::Value("waiting"));
  EXPECT_EQ(field(0, "holds_gil"), llvm::json::Value(false));
  EXPECT_EQ(field(0, "gc"), llvm::json::Value(false));
  EXPECT_EQ(field(1, "gil"), llvm::json::Value("held"));
  EXPECT_EQ(field(1, "holds_gil"), llvm::json::Value(true));
  EXPECT_EQ(field(1, "gc"), llvm::json::Value(true));
  // NotHeld: not holding it is known, waiting is not.
  EXPECT_EQ(field(2, "gil"), llvm::json::Value(nullptr));
  EXPECT_EQ(field(2, "holds_gil"), llvm::json::Value(false));
  EXPECT_EQ(field(2, "gc"), llvm::json::Value(nullptr));
}

// --- the hand-over record the sampler anchors on (GilAnchor.cpp) --------------

TEST(PythonGilHandover, ReadFromTheRuntimeOnThreeSevenToThreeEleven) {
  for (int minor : {7, 8, 9, 10, 11}) {
    GilFixture fx(3, minor);
    uint64_t gil = fx.in.runtimeAddr + *fx.in.layout.runtimeGil;
    EXPECT_EQ(sharedGilAddress(fx.in, fx.mem), gil) << minor;
    uint64_t a = fx.addThread();
    fx.mem.put(gil, uint64_t(5000));        // interval: 5 ms, the default
    fx.mem.put(gil + 8, a);                 // last_holder
    fx.mem.put(gil + 16, int32_t(1));       // locked
    fx.mem.put(gil + 24, uint64_t(12345));  // switch_number
    auto h = readGilHandover(fx.in.layout, fx.mem, gil);
    ASSERT_TRUE(h) << minor;
    EXPECT_EQ(h->lastHolder, a);
    EXPECT_TRUE(h->locked);
    EXPECT_EQ(h->switches, 12345u);
    fx.mem.put(gil + 16, int32_t(0));
    EXPECT_FALSE(readGilHandover(fx.in.layout, fx.mem, gil)->locked);
    // Not initialised yet, or not a GIL record at all: not trusted.
    fx.mem.put(gil + 16, int32_t(-1));
    EXPECT_FALSE(readGilHandover(fx.in.layout, fx.mem, gil)) << minor;
    fx.mem.put(gil + 16, int32_t(0));
    fx.mem.put(gil, uint64_t(0));
    EXPECT_FALSE(readGilHandover(fx.in.layout, fx.mem, gil)) << minor;
    fx.mem.put(gil, uint64_t(0x7f0012345678));
    EXPECT_FALSE(readGilHandover(fx.in.layout, fx.mem, gil)) << minor;
  }
}

TEST(PythonGilHandover, ThreeTwelveFollowsThePointerOfTheOnlyInterpreter) {
  GilFixture fx(3, 12);
  const Layout &l = fx.in.layout;
  EXPECT_EQ(sharedGilAddress(fx.in, fx.mem), 0u); // no GIL yet
  uint64_t gil = fx.alloc(256);
  fx.mem.put(fx.interp + *l.interpGilPointer, gil);
  EXPECT_EQ(sharedGilAddress(fx.in, fx.mem), gil);
  fx.mem.put(gil + l.gilInterval, uint64_t(5000));
  fx.mem.put(gil + l.gilSwitchNumber, uint64_t(7));
  EXPECT_EQ(readGilHandover(l, fx.mem, gil)->switches, 7u);
  // A second interpreter may own a GIL of its own: no single lock to watch.
  uint64_t second = fx.alloc(l.interpSize + 64);
  fx.mem.put(fx.interp + l.interpNext, second);
  EXPECT_EQ(sharedGilAddress(fx.in, fx.mem), 0u);
}

TEST(PythonGilHandover, NoRecordBeforeThreeSevenOrWhenUnreadable) {
  GilFixture py27(2, 7), py36(3, 6);
  EXPECT_EQ(sharedGilAddress(py27.in, py27.mem), 0u);
  EXPECT_EQ(sharedGilAddress(py36.in, py36.mem), 0u);
  GilFixture fx(3, 11);
  EXPECT_FALSE(readGilHandover(fx.in.layout, fx.mem, 0));
  EXPECT_FALSE(readGilHandover(fx.in.layout, fx.mem, 0xdead0000));
  // Debug offsets that moved the GIL's fields: the lock layout is unknown.
  fx.in.layout.gilLock = GilLockModel::Unknown;
  EXPECT_EQ(sharedGilAddress(fx.in, fx.mem), 0u);
}

TEST(PythonGilHandover, ThreadStateTidFromNativeIdOrPthread) {
  GilFixture fx(3, 11);
  const Layout &l = fx.in.layout;
  uint64_t a = fx.addThread();
  fx.mem.put(a + *l.tstateNativeThreadId, uint64_t(4242));
  EXPECT_EQ(threadStateTid(l, fx.mem, a, 0x2d0), pid_t(4242));
  EXPECT_EQ(threadStateTid(l, fx.mem, 0xdead0000, 0x2d0), std::nullopt);

  GilFixture old(3, 9); // thread_id is a pthread_t: the tid is inside it
  uint64_t b = old.addThread(), pthread = old.alloc(0x400);
  old.mem.put(b + old.in.layout.tstateThreadId, pthread);
  old.mem.put(pthread + 0x2d0, int32_t(777));
  EXPECT_EQ(threadStateTid(old.in.layout, old.mem, b, 0x2d0), pid_t(777));
}

// 3.15's own flag says waiting with or without registers, between two
// timed waits too; holding still wins, and "not requested" proves nothing.
TEST(PythonGil, GilRequestedFlagIsProofOfWaiting) {
  ThreadStatus s;
  s.gilRequested = true;
  EXPECT_EQ(classifyGil(false, s, std::nullopt, {}), GilState::Waiting);
  EXPECT_EQ(classifyGil(false, s, SyscallStop{-1, 0}, {}), GilState::Waiting);
  EXPECT_EQ(classifyGil(true, s, std::nullopt, {}), GilState::Held);
  s.gilRequested = false;
  EXPECT_EQ(classifyGil(false, s, std::nullopt, {}), GilState::NotHeld);
}
