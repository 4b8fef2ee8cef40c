"""The asyncio scenario of depth_target.py (3.8+; kept in its own module so
that 2.7 can still parse depth_target.py).

Loop A (main thread) runs: `main`; `top` gathering 10 `mid` tasks that each
gather 99 `leaf` tasks (1,000 tasks three levels deep with top); on 3.11+ a
TaskGroup parent with 3 children; `cross-waiter`, awaiting (through
wrap_future) a task that run_coroutine_threadsafe started on loop B in a
second thread; `agen-consumer`, inside `async for` over an async generator
that is itself inside `async for` over another, which awaits; `agen-closer`,
awaiting `aclose()` of an async generator that awaits in its `finally`; and
`locals-holder`, suspended with arguments, locals of several types, a
closure cell and a local not assigned yet; and `oracle`. Once every leaf has
started and loop B's task runs, `oracle` records each task in-process: name,
state, the coroutine chain (walking cr_await / gi_yieldfrom / ag_await, as
stackpeek does from memory; an async_generator_asend/athrow awaitable stands
for its generator, found with gc.get_referents since Python exposes no
attribute for it) with each frame's locals (by depth_target's reference of
the repr bounds), and who awaits it (task._fut_waiter,
_GatheringFuture._children, TaskGroup._tasks). A helper thread waits until
both loop threads sleep, writes the oracle and signals readiness.

With pure_python, asyncio.Task is replaced by asyncio.tasks._PyTask before
any loop exists (loop.create_task, gather, TaskGroup, run_coroutine_threadsafe
and asyncio.run all build `tasks.Task`), so every task is a plain Python
object whose state lives in its instance attributes.
"""
import asyncio
import gc
import sys
import threading

FOREVER = 1000000
MIDS, LEAVES_PER_MID = 10, 99
TASKGROUP = sys.version_info >= (3, 11)

_started = {"leaves": 0, "agen": 0, "holder": 0}
AGEN_TASKS = 2
_remote_running = threading.Event()


async def leaf():
    _started["leaves"] += 1
    await asyncio.sleep(FOREVER)


async def mid(i):
    label = "mid-%d" % i
    loop = asyncio.get_running_loop()
    await asyncio.gather(*[loop.create_task(leaf(), name="leaf-%d-%d" % (i, j))
                           for j in range(LEAVES_PER_MID)])


async def top():
    loop = asyncio.get_running_loop()
    await asyncio.gather(*[loop.create_task(mid(i), name="mid-%d" % i) for i in range(MIDS)])


async def group_parent():
    async with asyncio.TaskGroup() as tg:
        for i in range(3):
            tg.create_task(leaf(), name="tg-child-%d" % i)


async def inner_ticks():
    yield 1
    _started["agen"] += 1
    await asyncio.sleep(FOREVER)
    yield 2


async def outer_ticks():
    async for tick in inner_ticks():
        yield tick


async def agen_consumer():
    async for _ in outer_ticks():
        pass


async def closing_ticks():
    try:
        yield 1
    finally:
        _started["agen"] += 1
        await asyncio.sleep(FOREVER)


async def agen_closer():
    ticks = closing_ticks()
    await ticks.__anext__()
    await ticks.aclose()


async def locals_holder(order, *rest, retries=3, **options):
    total = sum(order["items"].values())
    note = u"retry \u00e9 #%d" % retries
    big = list(range(1000))
    nested = {"a": [1, (2, [3, [4]])], None: frozenset([5])}
    captured = b"cell\x00"
    closure = lambda: captured  # noqa: E731
    _started["holder"] += 1
    await asyncio.sleep(FOREVER)
    late = 1  # never reached: shown as <unset>
    return late, closure


async def remote_work():
    _remote_running.set()
    await asyncio.sleep(FOREVER)


async def cross_waiter(loop_b):
    cf = asyncio.run_coroutine_threadsafe(remote_work(), loop_b)
    await asyncio.wrap_future(cf)


FRAME_AND_AWAITED = {"coroutine": ("cr_frame", "cr_await"),
                     "generator": ("gi_frame", "gi_yieldfrom"),
                     "async_generator": ("ag_frame", "ag_await")}


def async_generator_of(awaitable):
    """The generator an async_generator_asend/athrow object steps."""
    gens = [r for r in gc.get_referents(awaitable) if type(r).__name__ == "async_generator"]
    return gens[0] if gens else None


def coroutine_chain(coro, function_name, expected_locals):
    out = []
    while coro is not None and len(out) < 256:
        kind = type(coro).__name__
        if kind in ("async_generator_asend", "async_generator_athrow"):
            coro = async_generator_of(coro)
            continue
        if kind not in FRAME_AND_AWAITED:
            break
        frame_attr, awaited_attr = FRAME_AND_AWAITED[kind]
        frame = getattr(coro, frame_attr)
        if frame is None:
            break
        out.append({"file": frame.f_code.co_filename,
                    "function": function_name(frame.f_code), "line": frame.f_lineno,
                    "locals": expected_locals(frame)})
        coro = getattr(coro, awaited_attr)
    return out


def awaited_by(tasks):
    """task id -> ids of the tasks awaiting it, by stackpeek's rules."""
    out = {}
    ids = set(id(t) for t in tasks)

    def link(parent, child):
        if id(child) in ids and parent is not None:
            out.setdefault(hex(id(child)), set()).add(hex(id(parent)))

    for t in tasks:
        w = t._fut_waiter
        if isinstance(w, asyncio.Task):
            link(t, w)
        for c in getattr(w, "_children", None) or []:
            link(t, c)
    for t in tasks:
        for cb in t._callbacks or []:
            fn = cb[0] if isinstance(cb, tuple) else cb
            owner = getattr(fn, "__self__", None)
            if type(owner).__name__ == "TaskGroup":
                link(owner._parent_task, t)
    return dict((k, sorted(v)) for k, v in out.items())


def describe(tasks, loop_threads, function_name, expected_locals):
    by = awaited_by(tasks)
    out = []
    for t in tasks:
        out.append({"id": hex(id(t)), "name": t.get_name(), "loop": hex(id(t.get_loop())),
                    "thread": loop_threads[id(t.get_loop())],
                    "state": "pending" if not t.done() else "done",
                    "stack": coroutine_chain(t.get_coro(), function_name, expected_locals),
                    "awaited_by": by.get(hex(id(t)), [])})
    return out


def use_pure_python_tasks():
    asyncio.tasks.Task = asyncio.tasks._PyTask
    asyncio.Task = asyncio.tasks._PyTask
    # 3.14's C current_task() reads the thread state, which pure-Python
    # tasks do not set: TaskGroup and timeout() must see theirs.
    for name in ("current_task", "all_tasks", "_enter_task", "_leave_task",
                 "_swap_current_task", "_register_task", "_unregister_task"):
        py = getattr(asyncio.tasks, "_py_" + name, None)
        if py is not None:
            setattr(asyncio.tasks, name, py)
            if hasattr(asyncio, name):
                setattr(asyncio, name, py)


def run(path, ready_fd, finish, native_tid, function_name, expected_locals,
        pure_python=False):
    if pure_python:
        use_pure_python_tasks()
    loop_b = asyncio.new_event_loop()
    b_tid = []

    def run_b():
        b_tid.append(native_tid())
        asyncio.set_event_loop(loop_b)
        loop_b.run_forever()

    threading.Thread(target=run_b, daemon=True).start()
    expected_leaves = MIDS * LEAVES_PER_MID + (3 if TASKGROUP else 0)

    async def oracle():
        while (_started["leaves"] < expected_leaves or _started["agen"] < AGEN_TASKS
               or not _started["holder"] or not _remote_running.is_set()):
            await asyncio.sleep(0.01)
        loop_a = asyncio.get_running_loop()
        threads = {id(loop_a): native_tid(), id(loop_b): b_tid[0]}
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks(loop_a) if t is not me]
        tasks += list(asyncio.all_tasks(loop_b))
        extra = {"tasks": describe(tasks, threads, function_name, expected_locals),
                 "loop_threads": [threads[id(loop_a)], threads[id(loop_b)]],
                 "task_classes": sorted(set("%s.%s" % (type(t).__module__, type(t).__name__)
                                            for t in tasks + [me])),
                 "pure_python": all(type(t) is asyncio.tasks._PyTask for t in tasks + [me])}
        threading.Thread(target=finish, args=(path, ready_fd, extra, extra["loop_threads"]),
                         daemon=True).start()
        await asyncio.sleep(FOREVER)

    async def main():
        loop = asyncio.get_running_loop()
        loop.create_task(top(), name="top")
        if TASKGROUP:
            loop.create_task(group_parent(), name="tg-parent")
        loop.create_task(cross_waiter(loop_b), name="cross-waiter")
        loop.create_task(agen_consumer(), name="agen-consumer")
        loop.create_task(agen_closer(), name="agen-closer")
        loop.create_task(locals_holder({"id": 1017, "items": {"book": 12.5, "pen": 1.25}},
                                       "extra", 2.5, retries=7, key=None),
                         name="locals-holder")
        loop.create_task(oracle(), name="oracle")
        await asyncio.sleep(FOREVER)

    asyncio.run(main())
