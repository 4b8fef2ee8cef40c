// Asyncio: every asyncio Task of the interpreter, read during the pause.
//
// Domain facts (3.8-3.13; see DepthLayout.h for the struct offsets):
//  - Registry: sys.modules['asyncio.tasks'] has `_all_tasks` (3.8-3.11), or
//    `_scheduled_tasks` plus `_eager_tasks` (3.12+); with the C accelerator
//    these names are bound to the `_asyncio` module's own objects.
//    `_all_tasks`/`_scheduled_tasks` are weakref.WeakSets: a Python object
//    whose `data` attribute is a set of weakrefs (wr_object at +16 is the
//    task, or None once it died). `_eager_tasks` is a plain set of tasks.
//    Set tables are {key, hash} pairs; dummy (deleted) keys have hash -1.
//  - `_current_tasks` maps each loop to the task running now.
//  - C tasks are `_asyncio.Task` objects or subclasses: fut_loop,
//    fut_callback0, fut_callbacks (a list of (callback, context) tuples),
//    fut_state (0 pending, 1 cancelled, 2 finished), task_fut_waiter (the
//    future it waits on), task_coro, task_name (a str, or an int N meaning
//    "Task-N").
//  - Pure-Python tasks are instances of `asyncio.tasks._PyTask` (the class
//    the module binds to `Task` when `_asyncio` is missing) or subclasses;
//    they register in the same WeakSet/set (the module's `_register_task`
//    is the C one when `_asyncio` exists, else Python's, over the same
//    names). Their state is in instance attributes: `_loop`, `_coro`,
//    `_fut_waiter`, `_name` (str), `_callbacks` (list of (callback, context)
//    tuples) and `_state` ('PENDING', 'CANCELLED', 'FINISHED'; absent while
//    pending: the class default). Instance attributes live in __dict__
//    (≤3.10), a managed dict or pre-header values (3.11), a tagged
//    dict-or-values word (3.12) or inline values (3.13); instanceAttributes
//    reads every form.
//  - Coroutine chain: a coroutine's frame is gi_frame/cr_frame (≤3.10,
//    NULL once finished) or embedded at gi_iframe (3.11+, gone once
//    gi_frame_state >= FRAME_CLEARED). What it awaits is _PyGen_yf(): the top
//    of its value stack when suspended in YIELD_FROM/SEND (per-version test,
//    YieldFromModel). The chain continues through coroutines, generators and
//    async generators (same object head, so the same frame fields). A
//    coroutine in `async for` / `await agen.asend()` / `aclose()` awaits an
//    `async_generator_asend` / `async_generator_athrow` object whose first
//    field after the object head (ags_gen / agt_gen) is the async
//    generator; the chain steps through it.
//  - Who awaits whom: a task awaits the task that is its fut_waiter; a
//    gather() future (`_GatheringFuture`, attribute `_children`) makes the
//    task await every child; a TaskGroup child carries the callback
//    `TaskGroup._on_task_done`, a bound method whose TaskGroup's
//    `_parent_task` awaits it.
//  - Loop -> thread: BaseEventLoop._thread_id (threading ident) while running.
//  - 3.14+: C tasks are no longer in `_scheduled_tasks` (it keeps only
//    pure-Python ones). Each is on a circular list through its `task_node`
//    (llist_node {next, prev}): the list of the thread that created it, in
//    _PyThreadStateImpl, or the interpreter's for tasks of threads that
//    exited. Each thread state also has its running loop and task. The
//    `_asyncio` module publishes where these are in its .AsyncioDebug
//    section, 13 words: task {size, task_name, task_awaited_by,
//    task_is_task, task_awaited_by_is_set, task_coro, task_node},
//    interpreter {size, asyncio_tasks_head}, thread {size,
//    asyncio_running_loop, asyncio_running_task, asyncio_tasks_head}. In the
//    task, the future's state (an int) follows task_awaited_by and
//    task_fut_waiter precedes task_coro.
#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "python/depth/Depth.h"
#include "python/objects/Objects.h"
#include "python/layout/RemoteStruct.h"

namespace stackpeek::python {

namespace {

// The .AsyncioDebug offsets stackpeek uses (3.14+).
struct AsyncioDebug {
  uint64_t taskName, taskAwaitedBy, taskCoro, taskNode;
  uint64_t interpTasksHead;
  uint64_t tstateRunningLoop, tstateRunningTask, tstateTasksHead;
};

class AsyncioReader {
public:
  AsyncioReader(const Interpreter &in, const DepthLayout &d, ReprReader &r)
      : l_(in.layout), d_(d), r_(r), mem_(r.memory()) {}

  void run(uint64_t interpAddr, const std::vector<uint64_t> &tstates,
           const std::optional<AsyncioDebug> &listed, CapturedAsyncio &out) {
    uint64_t tasksModule = moduleDict(interpAddr, "asyncio.tasks");
    if (!tasksModule)
      return; // asyncio not imported
    std::vector<uint64_t> tasks;
    if (listed)
      listedTasks(*listed, interpAddr, tstates, tasks, out);
    else if (d_.asyncioInThreadLists && moduleDict(interpAddr, "_asyncio"))
      out.errors.push_back("the _asyncio module's debug offsets were not found: its "
                           "tasks (asyncio's default) are not listed, pure-Python ones are");
    for (const char *weak : {"_all_tasks", "_scheduled_tasks"})
      if (uint64_t ws = lookup(tasksModule, weak))
        weakSetItems(ws, tasks, out);
    if (uint64_t eager = lookup(tasksModule, "_eager_tasks"))
      setItems(eager, tasks, out);
    currentTasks(lookup(tasksModule, "_current_tasks"));
    pyTaskType_ = lookup(tasksModule, "_PyTask");
    std::unordered_set<uint64_t> seen;
    for (uint64_t t : tasks) {
      if (out.tasks.size() >= kMaxTasks) {
        out.errors.push_back("more than " + std::to_string(kMaxTasks) + " tasks");
        break;
      }
      if (isTask(t) && seen.insert(t).second)
        out.tasks.push_back(task(t));
    }
    linkAwaiters(out);
    for (const CapturedTask &t : out.tasks)
      if (!out.loopThreadIdent.count(t.loop))
        out.loopThreadIdent[t.loop] = loopThread(t.loop);
  }

private:
  uint64_t ptr(uint64_t addr) { return valueOr(mem_.readValue<uint64_t>(addr), 0ul); }

  // 3.14+: the C tasks on every thread's list and the interpreter's, and
  // which task each thread's loop runs now.
  void listedTasks(const AsyncioDebug &a, uint64_t interpAddr,
                   const std::vector<uint64_t> &tstates, std::vector<uint64_t> &tasks,
                   CapturedAsyncio &out) {
    for (uint64_t ts : tstates) {
      taskList(ts + a.tstateTasksHead, a.taskNode, tasks, out);
      if (uint64_t loop = ptr(ts + a.tstateRunningLoop))
        if (uint64_t task = ptr(ts + a.tstateRunningTask))
          current_[loop] = task;
    }
    taskList(interpAddr + a.interpTasksHead, a.taskNode, tasks, out);
  }

  // The tasks on the circular list whose head is at `head`, bounded and
  // safe against a loop that does not come back to the head.
  void taskList(uint64_t head, uint64_t nodeOffset, std::vector<uint64_t> &tasks,
                CapturedAsyncio &out) {
    std::unordered_set<uint64_t> seen;
    for (uint64_t node = ptr(head); node && node != head; node = ptr(node)) {
      if (!seen.insert(node).second || seen.size() > kMaxTasks) {
        out.errors.push_back("task list at " + hexAddress(head) + " does not close");
        return;
      }
      tasks.push_back(node - nodeOffset);
    }
  }

  uint64_t lookup(uint64_t dict, const std::string &key) {
    return valueOr(dictLookupString(mem_, l_, dict, key), 0ul);
  }

  uint64_t moduleDict(uint64_t interpAddr, const std::string &name) {
    uint64_t modules = ptr(interpAddr + l_.interpModules);
    uint64_t module = modules ? lookup(modules, name) : 0;
    return module ? ptr(module + l_.moduleDict) : 0;
  }

  // Live keys of a set object, at most kMaxTasks.
  void setItems(uint64_t set, std::vector<uint64_t> &out, CapturedAsyncio &res) {
    auto s = RemoteStruct::read(mem_, set, d_.setTable + 8);
    if (!s) {
      res.errors.push_back("unreadable task set: " + llvm::toString(s.takeError()));
      return;
    }
    uint64_t mask = s->pointer(d_.setMask), table = s->pointer(d_.setTable);
    if (mask >= 4 * kMaxTasks) {
      res.errors.push_back("implausible task set size");
      return;
    }
    std::vector<uint64_t> raw(2 * (mask + 1));
    if (!mem_.read(table, raw.data(), raw.size() * 8)) {
      res.errors.push_back("unreadable task set table at " + hexAddress(table));
      return;
    }
    for (uint64_t i = 0; i <= mask; ++i) {
      uint64_t key = raw[2 * i + d_.setEntryKey / 8];
      if (key && int64_t(raw[2 * i + d_.setEntryHash / 8]) != -1)
        out.push_back(key);
    }
  }

  void weakSetItems(uint64_t weakSet, std::vector<uint64_t> &out,
                    CapturedAsyncio &res) {
    uint64_t data = valueOr(instanceAttribute(mem_, l_, weakSet, "data"), 0ul);
    if (!data) {
      res.errors.push_back("WeakSet without data at " + hexAddress(weakSet));
      return;
    }
    std::vector<uint64_t> refs;
    setItems(data, refs, res);
    for (uint64_t ref : refs)
      if (uint64_t obj = ptr(ref + d_.weakrefObject))
        out.push_back(obj);
  }

  void currentTasks(uint64_t dict) {
    if (!dict)
      return;
    llvm::consumeError(forEachDictItem(mem_, l_, dict, [&](uint64_t k, uint64_t v) {
      current_[k] = v;
      return current_.size() < 4096;
    }));
  }

  enum class TaskKind { None, C, Python };

  // Which kind of task `obj` is: its type or a base is `_asyncio.Task`, or
  // is the class asyncio.tasks._PyTask (cached per type; bases bounded).
  TaskKind taskKind(uint64_t obj) {
    if (!obj)
      return TaskKind::None;
    uint64_t type = ptr(obj + l_.obType);
    if (auto it = taskKinds_.find(type); it != taskKinds_.end())
      return it->second;
    TaskKind kind = TaskKind::None;
    for (int i = 0; type && i < 32 && kind == TaskKind::None; ++i) {
      if (pyTaskType_ && type == pyTaskType_)
        kind = TaskKind::Python;
      auto n = mem_.readCString(ptr(type + l_.tpName), 128);
      if (n && *n == "_asyncio.Task")
        kind = TaskKind::C;
      if (!n)
        llvm::consumeError(n.takeError());
      type = ptr(type + d_.tpBase);
    }
    return taskKinds_[ptr(obj + l_.obType)] = kind;
  }

  bool isTask(uint64_t obj) { return taskKind(obj) != TaskKind::None; }

  // What both kinds of task record, as addresses (state: see stateName).
  struct TaskFields {
    uint64_t loop = 0, coro = 0, waiter = 0, name = 0;
    uint64_t callback0 = 0, callbacks = 0;
    std::string state;
  };

  CapturedTask task(uint64_t addr) {
    CapturedTask t;
    t.addr = addr;
    llvm::Expected<TaskFields> f = taskKind(addr) == TaskKind::Python
                                       ? pythonTaskFields(addr)
                                       : cTaskFields(addr);
    if (!f) {
      t.error = "unreadable task: " + llvm::toString(f.takeError());
      return t;
    }
    t.loop = f->loop;
    t.name = taskName(f->name);
    auto cur = current_.find(t.loop);
    t.state = cur != current_.end() && cur->second == addr ? "running" : f->state;
    coroutineChain(f->coro, t);
    waiters_[addr] = f->waiter;
    if (f->waiter)
      t.awaiting = r_.typeOf(f->waiter).name + " " + hexAddress(f->waiter);
    callbacks_[addr] = {f->callback0, f->callbacks};
    return t;
  }

  llvm::Expected<TaskFields> cTaskFields(uint64_t addr) {
    auto s = RemoteStruct::read(mem_, addr, d_.taskName + 8);
    if (!s)
      return s.takeError();
    TaskFields f;
    f.loop = s->pointer(d_.futLoop), f.coro = s->pointer(d_.taskCoro);
    f.waiter = s->pointer(d_.taskFutWaiter), f.name = s->pointer(d_.taskName);
    f.callback0 = s->pointer(d_.futCallback0);
    f.callbacks = s->pointer(d_.futCallbacks);
    int32_t state = s->get<int32_t>(d_.futState).value_or(-1);
    f.state = state == 0   ? "pending"
              : state == 1 ? "cancelled"
              : state == 2 ? "done"
                           : "unknown";
    return f;
  }

  llvm::Expected<TaskFields> pythonTaskFields(uint64_t addr) {
    auto a = instanceAttributes(mem_, l_, addr,
                                {"_loop", "_coro", "_fut_waiter", "_name",
                                 "_callbacks", "_state"});
    if (!a)
      return a.takeError();
    TaskFields f;
    f.loop = (*a)[0], f.coro = (*a)[1], f.waiter = (*a)[2], f.name = (*a)[3];
    f.callbacks = (*a)[4];
    if (!f.loop && !f.coro)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "Python task without _loop and _coro");
    f.state = pythonTaskState((*a)[5]);
    return f;
  }

  // Future._state: absent from the instance while pending (class default).
  std::string pythonTaskState(uint64_t state) {
    if (!state)
      return "pending";
    std::string s = r_.str(state);
    return s == "PENDING"     ? "pending"
           : s == "CANCELLED" ? "cancelled"
           : s == "FINISHED"  ? "done"
                              : "unknown";
  }

  std::string taskName(uint64_t name) {
    if (!name)
      return "";
    ReprReader::Kind k = r_.typeOf(name).kind;
    if (k == ReprReader::Kind::Int)
      return "Task-" + r_.repr(name).repr;
    return r_.str(name);
  }

  // The frame of a coroutine/generator, as a captured frame; false if it has
  // none (finished). `iframe` is set to its interpreter frame (3.11+).
  bool coroutineFrame(uint64_t coro, CapturedFrame &f, uint64_t &frameAddr) {
    if (d_.genFrame) {
      frameAddr = ptr(coro + *d_.genFrame);
      if (!frameAddr)
        return false;
      auto fr = RemoteStruct::read(mem_, frameAddr, l_.frameSize);
      if (!fr) {
        llvm::consumeError(fr.takeError());
        return false;
      }
      f.codeAddr = fr->pointer(l_.frameCode);
      f.lasti = fr->get<int32_t>(l_.frameLasti).value_or(-1);
    } else {
      int8_t state = valueOr(mem_.readValue<int8_t>(coro + *d_.genFrameState), int8_t(4));
      if (state >= d_.frameCleared)
        return false;
      frameAddr = coro + *d_.genIframe;
      auto fr = RemoteStruct::read(mem_, frameAddr, l_.frameSize);
      if (!fr) {
        llvm::consumeError(fr.takeError());
        return false;
      }
      f.codeAddr = fr->pointer(l_.frameCode) & ~l_.executableTagBits;
      f.instrPtr = fr->pointer(l_.frameInstrPtr);
      if (l_.frameTlbcIndex) // the bytecode copy of the thread that ran it last
        f.tlbcIndex = fr->get<int32_t>(*l_.frameTlbcIndex).value_or(0);
    }
    f.frameAddr = frameAddr;
    f.owner = l_.ownerGenerator;
    return f.codeAddr != 0;
  }

  // _PyGen_yf: what the suspended coroutine whose frame is at `frame` awaits.
  uint64_t awaited(uint64_t coro, uint64_t frame, const CapturedFrame &f) {
    switch (d_.yieldFrom) {
    case YieldFromModel::None:
      return 0;
    case YieldFromModel::StacktopPtr: {
      uint64_t top = ptr(frame + *d_.frameStacktopPtr);
      if (!top || f.lasti < 0 || !nextOpIs(f.codeAddr, f.lasti + 2))
        return 0;
      return ptr(top - 8);
    }
    case YieldFromModel::StackDepth310: {
      int32_t depth = valueOr(mem_.readValue<int32_t>(frame + *d_.frameStackdepth), 0);
      if (depth <= 0 || f.lasti < 0 || !nextOpIs(f.codeAddr, (f.lasti + 1) * 2))
        return 0;
      return ptr(ptr(frame + *d_.frameValuestack) + uint64_t(depth - 1) * 8);
    }
    case YieldFromModel::ResumeOparg: {
      int8_t state = valueOr(mem_.readValue<int8_t>(coro + *d_.genFrameState), int8_t(4));
      if (state == d_.frameCreated)
        return 0;
      uint8_t next[2];
      if (!mem_.read(f.instrPtr + 2, next, 2) || next[1] < 2 ||
          std::find(d_.resumeOpcodes.begin(), d_.resumeOpcodes.end(), next[0]) ==
              d_.resumeOpcodes.end())
        return 0;
      return stackSlot(frame, 1);
    }
    case YieldFromModel::FrameState313: {
      int8_t state = valueOr(mem_.readValue<int8_t>(coro + *d_.genFrameState), int8_t(4));
      return state == d_.frameSuspendedYieldFrom ? stackSlot(frame, d_.awaitedSlotFromTop) : 0;
    }
    }
    return 0;
  }

  // The object `fromTop` slots below the top of the frame's value stack
  // (1: the top); 0 when there is none.
  uint64_t stackSlot(uint64_t iframe, uint32_t fromTop) {
    uint64_t base = iframe + d_.frameLocalsplus, top;
    if (d_.iframeStackpointer) {
      top = ptr(iframe + *d_.iframeStackpointer);
    } else {
      int32_t depth = valueOr(mem_.readValue<int32_t>(iframe + *d_.iframeStacktop), 0);
      top = base + uint64_t(std::max(depth, 0)) * 8;
    }
    if (top < base + 8 * uint64_t(fromTop) || top - base > (8u << 20))
      return 0;
    return untagStackRef(d_, ptr(top - 8 * uint64_t(fromTop))).object;
  }

  // ≤3.10: the opcode at byte `offset` of the code's co_code is YIELD_FROM.
  bool nextOpIs(uint64_t code, int64_t offset) {
    uint64_t bytes = ptr(code + *d_.coCode);
    int64_t size = valueOr(mem_.readValue<int64_t>(bytes + l_.bytesSize), int64_t(0));
    if (!bytes || offset < 0 || offset >= size)
      return false;
    uint8_t op = valueOr(mem_.readValue<uint8_t>(bytes + l_.bytesData + offset), uint8_t(0));
    return op == d_.yieldFromOpcode;
  }

  bool isCoroutine(uint64_t obj) {
    const std::string &n = r_.typeOf(obj).name;
    return n == "coroutine" || n == "generator" || n == "async_generator";
  }

  // An async generator's asend/athrow awaitable stands for the generator
  // (ags_gen / agt_gen, the first field after the object head).
  uint64_t throughAwaitable(uint64_t obj) {
    const std::string &n = r_.typeOf(obj).name;
    if (n == "async_generator_asend" || n == "async_generator_athrow")
      return ptr(obj + d_.asyncGenAwaitableGen);
    return obj;
  }

  void coroutineChain(uint64_t coro, CapturedTask &t) {
    std::vector<uint64_t> seen;
    while (coro && t.stack.size() < kMaxAwaitChain) {
      coro = throughAwaitable(coro);
      if (!coro || !isCoroutine(coro))
        return;
      if (std::find(seen.begin(), seen.end(), coro) != seen.end()) {
        t.error = "coroutine await chain loops";
        return;
      }
      seen.push_back(coro);
      CapturedFrame f;
      uint64_t frame = 0;
      if (!coroutineFrame(coro, f, frame))
        return;
      t.stack.push_back(f);
      coro = awaited(coro, frame, f);
    }
    if (coro && isCoroutine(throughAwaitable(coro)))
      t.error = "coroutine await chain truncated";
  }

  // Tasks the future `fut` stands for: itself if a task, a gather's children.
  void awaitedTasks(uint64_t fut, std::vector<uint64_t> &out) {
    if (isTask(fut)) {
      out.push_back(fut);
      return;
    }
    if (r_.typeOf(fut).name != "_GatheringFuture")
      return;
    uint64_t children = valueOr(instanceAttribute(mem_, l_, fut, "_children"), 0ul);
    if (!children || r_.typeOf(children).kind != ReprReader::Kind::List)
      return;
    int64_t n = valueOr(mem_.readValue<int64_t>(children + d_.varSize), int64_t(0));
    if (n <= 0 || size_t(n) > kMaxTasks)
      return;
    std::vector<uint64_t> items(n);
    if (mem_.read(ptr(children + d_.listItems), items.data(), n * 8))
      for (uint64_t c : items)
        if (isTask(c))
          out.push_back(c);
  }

  // TaskGroup children: a done-callback bound to a TaskGroup names the
  // parent task (TaskGroup._parent_task).
  uint64_t taskGroupParent(uint64_t callback) {
    if (!callback || r_.typeOf(callback).name != "method")
      return 0;
    uint64_t self = ptr(callback + d_.methodSelf);
    if (!self || r_.typeOf(self).name != "TaskGroup")
      return 0;
    return valueOr(instanceAttribute(mem_, l_, self, "_parent_task"), 0ul);
  }

  std::vector<uint64_t> callbackObjects(uint64_t task) {
    auto [first, list] = callbacks_[task];
    std::vector<uint64_t> out;
    if (first)
      out.push_back(first);
    if (!list || r_.typeOf(list).kind != ReprReader::Kind::List)
      return out;
    int64_t n = valueOr(mem_.readValue<int64_t>(list + d_.varSize), int64_t(0));
    if (n <= 0 || n > 64)
      return out;
    std::vector<uint64_t> items(n);
    if (!mem_.read(ptr(list + d_.listItems), items.data(), n * 8))
      return out;
    for (uint64_t pair : items) // (callback, context) tuples
      if (pair && r_.typeOf(pair).kind == ReprReader::Kind::Tuple)
        out.push_back(ptr(pair + d_.tupleItems));
    return out;
  }

  void linkAwaiters(CapturedAsyncio &out) {
    std::unordered_map<uint64_t, CapturedTask *> byAddr;
    for (CapturedTask &t : out.tasks)
      byAddr[t.addr] = &t;
    auto link = [&](uint64_t parent, uint64_t child) {
      auto it = byAddr.find(child);
      if (it == byAddr.end() || !parent)
        return;
      auto &by = it->second->awaitedBy;
      if (std::find(by.begin(), by.end(), parent) == by.end())
        by.push_back(parent);
    };
    for (CapturedTask &t : out.tasks) {
      std::vector<uint64_t> children;
      if (uint64_t w = waiters_[t.addr])
        awaitedTasks(w, children);
      for (uint64_t c : children)
        link(t.addr, c);
      for (uint64_t cb : callbackObjects(t.addr))
        link(taskGroupParent(cb), t.addr);
    }
  }

  uint64_t loopThread(uint64_t loop) {
    uint64_t id = valueOr(instanceAttribute(mem_, l_, loop, "_thread_id"), 0ul);
    if (!id || r_.typeOf(id).kind != ReprReader::Kind::Int)
      return 0;
    return valueOr(readUnsignedInt(mem_, l_, id), 0ul);
  }

  const Layout &l_;
  const DepthLayout &d_;
  ReprReader &r_;
  MemorySource &mem_;
  std::unordered_map<uint64_t, uint64_t> current_, waiters_;
  std::unordered_map<uint64_t, std::pair<uint64_t, uint64_t>> callbacks_;
  std::unordered_map<uint64_t, TaskKind> taskKinds_;
  uint64_t pyTaskType_ = 0;
};

} // namespace

// Reads and checks the _asyncio module's table (3.14+); nullopt with the
// reason in `errors` when it is missing or implausible.
std::optional<AsyncioDebug> readAsyncioDebug(const Interpreter &in, MemorySource &mem,
                                             std::vector<std::string> &errors) {
  uint64_t w[13];
  if (!in.asyncioDebugAddr || !mem.read(in.asyncioDebugAddr, w, sizeof w))
    return std::nullopt; // AsyncioReader says so if _asyncio was imported

  AsyncioDebug a{w[1], w[2], w[5], w[6], w[8], w[10], w[11], w[12]};
  uint64_t taskSize = w[0], interpSize = w[7], tstateSize = w[9];
  bool ok = taskSize < 4096 && a.taskName + 8 <= taskSize && a.taskCoro + 8 <= taskSize &&
            a.taskNode + 16 <= taskSize && a.taskAwaitedBy + 12 <= taskSize &&
            a.taskCoro >= 8 && interpSize < (1u << 22) && a.interpTasksHead + 16 <= interpSize &&
            tstateSize < (1u << 16) && a.tstateTasksHead + 16 <= tstateSize &&
            a.tstateRunningLoop + 8 <= tstateSize && a.tstateRunningTask + 8 <= tstateSize;
  if (!ok) {
    errors.push_back("the _asyncio module's debug offsets are implausible; C tasks not listed");
    return std::nullopt;
  }
  return a;
}

CapturedAsyncio captureAsyncio(const Interpreter &interp, const DepthLayout &base,
                               ReprReader &reprs,
                               const CapturedPython &captured) {
  CapturedAsyncio out;
  if (!base.hasAsyncio && !base.asyncioInThreadLists) {
    out.errors.push_back("asyncio tasks are supported on CPython 3.8+");
    return out;
  }
  DepthLayout d = base;
  std::optional<AsyncioDebug> listed;
  if (base.asyncioInThreadLists) {
    listed = readAsyncioDebug(interp, reprs.memory(), out.errors);
    if (listed) {
      d.taskName = uint32_t(listed->taskName), d.taskCoro = uint32_t(listed->taskCoro);
      d.taskFutWaiter = d.taskCoro - 8;
      d.futState = uint32_t(listed->taskAwaitedBy + 8);
    }
  }
  std::vector<uint64_t> interps;
  for (const CapturedThread &t : captured.threads)
    if (std::find(interps.begin(), interps.end(), t.interpAddr) == interps.end())
      interps.push_back(t.interpAddr);
  for (uint64_t in : interps) {
    std::vector<uint64_t> tstates;
    for (const CapturedThread &t : captured.threads)
      if (t.interpAddr == in)
        tstates.push_back(t.tstateAddr);
    AsyncioReader reader(interp, d, reprs);
    reader.run(in, tstates, listed, out);
    if (out.tasks.size() >= kMaxTasks)
      break;
  }
  return out;
}

} // namespace stackpeek::python
