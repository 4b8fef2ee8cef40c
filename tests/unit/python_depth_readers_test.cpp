// Handled-exception and asyncio readers on hand-built CPython 3.11 object
// graphs in FakeMemory (tests/unit/PythonObjects311.h).
//
// Why: the integration tests compare with real interpreters, which only ever
// hold well-formed graphs. Target memory is untrusted and changes under us,
// so these pin what the readers promise on graphs no interpreter builds on
// purpose: __cause__/__context__ chains (and cycles in them), looping
// tracebacks and exc_info stacks, truncated and unmapped objects; asyncio
// tasks of both kinds (C `_asyncio.Task`, pure-Python `_PyTask` with its
// state in a managed __dict__), coroutine chains through async generators,
// await cycles between tasks and inside coroutine chains, unreadable
// coroutines and tasks, hostile task-set sizes. Every walk must end, bounded,
// with the problem reported where it happened.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "PythonObjects311.h"
#include "python/depth/Depth.h"

using namespace stackpeek;
using namespace stackpeek::python;

namespace {

// ---------------------------------------------------------------- exceptions

// The readers over a DepthObjects311 graph.
class Exceptions311 : public fixtures::DepthObjects311 {
public:
  std::vector<CapturedException> capture() {
    Interpreter in;
    in.layout = l;
    ReprReader r(mem, l, d);
    return captureHandledException(in, d, r, tstate);
  }
};

TEST(PythonDepthExceptions, CauseThenContextChain) {
  Exceptions311 o;
  uint64_t handled = o.exception("ValueError", "outer");
  uint64_t cause = o.exception("KeyError", "k");
  uint64_t context = o.exception("ValueError", "first");
  o.chain(handled, cause, 0);
  o.chain(cause, 0, context);
  o.mem.put(handled + *o.d.excTraceback, o.traceback(2));
  o.handle(handled);
  auto got = o.capture();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].type, "ValueError");
  EXPECT_EQ(got[0].message, "outer");
  EXPECT_EQ(got[0].chainedAs, "");
  EXPECT_EQ(got[0].traceback.size(), 2u);
  EXPECT_NE(got[0].traceback[0].frame.codeAddr, 0u);
  EXPECT_EQ(got[1].message, "'k'"); // KeyError shows repr(key)
  EXPECT_EQ(got[1].chainedAs, "cause");
  EXPECT_EQ(got[2].chainedAs, "context");
  for (const auto &e : got)
    EXPECT_FALSE(e.error) << *e.error;
}

TEST(PythonDepthExceptions, SuppressedContextEndsTheChain) {
  Exceptions311 o;
  uint64_t handled = o.exception("ValueError", "from None");
  o.chain(handled, 0, o.exception("ValueError", "hidden"), true);
  o.handle(handled);
  EXPECT_EQ(o.capture().size(), 1u);
}

TEST(PythonDepthExceptions, ChainCyclesStopAtTheFirstRepeat) {
  Exceptions311 o;
  uint64_t a = o.exception("ValueError", "a"), b = o.exception("ValueError", "b");
  o.chain(a, b, 0);
  o.chain(b, 0, a); // b.__context__ is a again
  o.handle(a);
  auto got = o.capture();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].message, "b");
  // An exception that is its own cause.
  Exceptions311 p;
  uint64_t self = p.exception("ValueError", "self");
  p.chain(self, self, self);
  p.handle(self);
  EXPECT_EQ(p.capture().size(), 1u);
}

TEST(PythonDepthExceptions, LongChainsAreCutAndSaySo) {
  Exceptions311 o;
  std::vector<uint64_t> excs;
  for (size_t i = 0; i < kMaxExceptionChain + 5; ++i)
    excs.push_back(o.exception("ValueError", "e" + std::to_string(i)));
  for (size_t i = 0; i + 1 < excs.size(); ++i)
    o.chain(excs[i], 0, excs[i + 1]);
  o.handle(excs[0]);
  auto got = o.capture();
  ASSERT_EQ(got.size(), kMaxExceptionChain);
  EXPECT_EQ(got.back().error, "exception chain truncated");
}

TEST(PythonDepthExceptions, LoopingAndLongTracebacks) {
  Exceptions311 o;
  uint64_t e = o.exception("ValueError", "x");
  uint64_t tb = o.traceback(3);
  uint64_t last = tb;
  for (int i = 0; i < 2; ++i)
    last = *o.mem.readValue<uint64_t>(last + o.d.tbNext);
  o.mem.put(last + o.d.tbNext, tb); // tb -> tb2 -> tb3 -> tb
  o.mem.put(e + *o.d.excTraceback, tb);
  o.handle(e);
  auto got = o.capture();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].traceback.size(), 3u);
  EXPECT_EQ(got[0].error, "traceback loops");

  Exceptions311 p;
  uint64_t f = p.exception("ValueError", "deep");
  p.mem.put(f + *p.d.excTraceback, p.traceback(kMaxTracebackEntries + 3));
  p.handle(f);
  auto deep = p.capture();
  ASSERT_EQ(deep.size(), 1u);
  EXPECT_EQ(deep[0].traceback.size(), kMaxTracebackEntries);
  EXPECT_EQ(deep[0].error, "traceback truncated");
}

TEST(PythonDepthExceptions, UnreadableAndTruncatedObjects) {
  Exceptions311 o;
  // exc_info pointing into unmapped memory: nothing is being handled.
  o.handle(0xdead0000);
  EXPECT_TRUE(o.capture().empty());
  // An exc_info stack whose items loop, all empty: bounded, nothing handled.
  uint64_t item = o.alloc(16);
  o.mem.put(item + 8, item);
  o.mem.put(o.tstate + o.d.tstateExcInfo, item);
  EXPECT_TRUE(o.capture().empty());

  // Unmapped traceback, args and cause: the exception is still reported.
  uint64_t e = o.exception("ValueError", "x");
  o.mem.put(e + *o.d.excTraceback, uint64_t(0xbad00000));
  o.mem.put(e + o.d.excArgs, uint64_t(0xbad10000));
  o.chain(e, 0xbad20000, 0);
  o.handle(e);
  auto got = o.capture();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type, "ValueError");
  EXPECT_EQ(got[0].message, "");
  EXPECT_TRUE(got[0].traceback.empty());
  EXPECT_EQ(got[0].error.value_or("").rfind("unreadable traceback", 0), 0u);

  // An exception object cut off by the end of its mapping before its chain
  // fields: its head is decoded, the chain ends there.
  uint64_t region = o.alloc(4096);
  uint64_t cut = region + 4096 - 40;
  o.mem.put(cut + o.l.obType, o.types.at("ValueError"));
  o.mem.put(cut + o.d.excArgs, o.tuple({}));
  o.handle(cut);
  auto truncated = o.capture();
  ASSERT_EQ(truncated.size(), 1u);
  EXPECT_EQ(truncated[0].type, "ValueError");
}

// ---------------------------------------------------------------- asyncio

class Asyncio311 : public fixtures::DepthObjects311 {
public:
  CapturedAsyncio capture(const std::vector<uint64_t> &tasks, uint64_t setOverride = 0) {
    Interpreter in;
    in.layout = l;
    CapturedPython captured;
    captured.threads.emplace_back();
    captured.threads.back().interpAddr = interpreter(tasks, setOverride);
    ReprReader r(mem, l, d);
    return captureAsyncio(in, d, r, captured);
  }
  static const CapturedTask *byName(const CapturedAsyncio &a, const std::string &name) {
    for (const CapturedTask &t : a.tasks)
      if (t.name == name)
        return &t;
    return nullptr;
  }
};

TEST(PythonDepthAsyncio, CAndPurePythonTasks) {
  Asyncio311 o;
  uint64_t inner = o.coroutine(o.code(), o.object("_asyncio.Future", 64));
  uint64_t c = o.cTask("c-task", o.coroutine(o.code(), inner));
  uint64_t py = o.pyTaskObject("py-task", o.coroutine(o.code(), 0), c);
  uint64_t done = o.pyTaskObject("py-done", o.coroutine(o.code(), 0), 0, "FINISHED");
  // A subclass of _PyTask is a task too.
  o.heapClass("MyTask", o.pyTask);
  uint64_t sub = o.instance("MyTask", {{"_loop", o.loop}, {"_coro", o.coroutine(o.code(), 0)},
                                       {"_name", o.str("sub")}});
  auto got = o.capture({c, py, done, sub, o.object("Widget", 32)});
  EXPECT_TRUE(got.errors.empty()) << got.errors.front();
  ASSERT_EQ(got.tasks.size(), 4u);
  const CapturedTask *ct = Asyncio311::byName(got, "c-task");
  const CapturedTask *pt = Asyncio311::byName(got, "py-task");
  ASSERT_TRUE(ct && pt);
  EXPECT_EQ(ct->stack.size(), 2u);
  EXPECT_EQ(ct->state, "pending");
  EXPECT_EQ(ct->awaitedBy, std::vector<uint64_t>{py});
  EXPECT_EQ(pt->loop, o.loop);
  EXPECT_EQ(pt->state, "pending"); // _state absent: the class default
  EXPECT_EQ(pt->stack.size(), 1u);
  EXPECT_EQ(pt->awaiting.value_or("").rfind("_asyncio.Task 0x", 0), 0u);
  EXPECT_EQ(Asyncio311::byName(got, "py-done")->state, "done");
  EXPECT_EQ(Asyncio311::byName(got, "sub")->stack.size(), 1u);
}

TEST(PythonDepthAsyncio, ChainDescendsIntoAsyncGenerators) {
  Asyncio311 o;
  uint64_t sleeping = o.coroutine(o.code(), o.object("_asyncio.Future", 64));
  uint64_t agen = o.coroutine(o.code(), sleeping, "async_generator");
  uint64_t asend = o.object("async_generator_asend", 48);
  o.mem.put(asend + 16, agen); // ags_gen
  uint64_t consumer = o.coroutine(o.code(), asend);
  auto got = o.capture({o.cTask("consumer", consumer)});
  ASSERT_EQ(got.tasks.size(), 1u);
  // consumer -> (asend) -> agen -> sleeping
  EXPECT_EQ(got.tasks[0].stack.size(), 3u);
  EXPECT_FALSE(got.tasks[0].error);
  // An asend whose generator is unmapped ends the chain there.
  uint64_t broken = o.object("async_generator_asend", 48);
  o.mem.put(broken + 16, uint64_t(0xdead0000));
  auto cut = o.capture({o.cTask("broken", o.coroutine(o.code(), broken))});
  ASSERT_EQ(cut.tasks.size(), 1u);
  EXPECT_EQ(cut.tasks[0].stack.size(), 1u);
}

TEST(PythonDepthAsyncio, AwaitCyclesEnd) {
  Asyncio311 o;
  // Two tasks each waiting on the other: both listed, each awaited by the other.
  uint64_t a = o.cTask("a", o.coroutine(o.code(), 0));
  uint64_t b = o.cTask("b", o.coroutine(o.code(), 0), a);
  o.mem.put(a + o.d.taskFutWaiter, b);
  // A coroutine chain that loops back (through an async generator's asend).
  uint64_t c1 = o.coroutine(o.code(), o.none); // awaits; the target is set below
  uint64_t asend = o.object("async_generator_asend", 48);
  uint64_t agen = o.coroutine(o.code(), c1, "async_generator");
  o.mem.put(asend + 16, agen);
  o.mem.put(c1 + *o.d.genIframe + o.d.frameLocalsplus, asend);
  uint64_t loops = o.cTask("loops", c1);
  auto got = o.capture({a, b, loops});
  ASSERT_EQ(got.tasks.size(), 3u);
  EXPECT_EQ(Asyncio311::byName(got, "a")->awaitedBy, std::vector<uint64_t>{b});
  EXPECT_EQ(Asyncio311::byName(got, "b")->awaitedBy, std::vector<uint64_t>{a});
  const CapturedTask *l = Asyncio311::byName(got, "loops");
  EXPECT_EQ(l->stack.size(), 2u);
  EXPECT_EQ(l->error, "coroutine await chain loops");
}

TEST(PythonDepthAsyncio, LongChainsAreBounded) {
  Asyncio311 o;
  uint64_t coro = 0;
  for (size_t i = 0; i < kMaxAwaitChain + 10; ++i)
    coro = o.coroutine(o.code(), coro);
  auto got = o.capture({o.cTask("deep", coro)});
  ASSERT_EQ(got.tasks.size(), 1u);
  EXPECT_EQ(got.tasks[0].stack.size(), kMaxAwaitChain);
  EXPECT_EQ(got.tasks[0].error, "coroutine await chain truncated");
}

TEST(PythonDepthAsyncio, UnreadableTasksAndCoroutines) {
  Asyncio311 o;
  // A task whose coroutine is unmapped: listed, with an empty stack.
  uint64_t lost = o.cTask("lost", 0xdead0000);
  // A C task cut off by the end of its mapping.
  uint64_t region = o.alloc(4096);
  uint64_t cut = region + 4096 - 24;
  o.mem.put(cut + o.l.obType, o.types.at("_asyncio.Task"));
  // A pure-Python task whose __dict__ is unmapped.
  uint64_t py = o.pyTaskObject("py", 0);
  o.mem.put(py - 24, uint64_t(0xbad00000));
  // Weakrefs to unmapped objects and to None are skipped.
  auto got = o.capture({lost, cut, py, 0xdead1000, o.none});
  ASSERT_EQ(got.tasks.size(), 3u);
  const CapturedTask *l = Asyncio311::byName(got, "lost");
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->stack.empty());
  size_t unreadable = 0;
  for (const CapturedTask &t : got.tasks)
    unreadable += t.error && t.error->rfind("unreadable task", 0) == 0;
  EXPECT_EQ(unreadable, 2u);
}

TEST(PythonDepthAsyncio, HostileTaskSets) {
  Asyncio311 o;
  uint64_t huge = o.set({});
  o.mem.put(huge + o.d.setMask, uint64_t(1) << 40);
  size_t before = o.mem.readCount();
  auto got = o.capture({}, huge);
  EXPECT_TRUE(got.tasks.empty());
  ASSERT_FALSE(got.errors.empty());
  EXPECT_LT(o.mem.readCount() - before, 1000u);
  uint64_t unmapped = o.set({});
  o.mem.put(unmapped + o.d.setTable, uint64_t(0xbad00000));
  auto none = o.capture({}, unmapped);
  EXPECT_TRUE(none.tasks.empty());
  EXPECT_FALSE(none.errors.empty());
}

} // namespace
