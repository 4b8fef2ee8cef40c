# -*- coding: utf-8 -*-
"""Python target for `stackpeek dump --locals/--async` and handled exceptions.

Why it exists: to compare what stackpeek reads out of memory with what the
process itself sees. Each scenario parks threads in known states, records the
expected view in-process, writes it as JSON and signals readiness by writing
one byte to a pipe fd (no sleeps stand in for synchronisation):
  locals      a frame `holder` with locals of every supported type; the
              expected reprs are computed by `bounded_repr`, a reference of
              stackpeek's bounding rules built on Python's own repr (and
              checked against repr() itself where no bound applies).
  exceptions  threads inside except/finally blocks, with cause and context
              chains; expected: the chain, each entry's final line as
              traceback.format_exception_only prints it, and its frames.
  asyncio     (3.8+) 1,000 tasks in a gather tree three levels deep, a
              TaskGroup (3.11+), and a task awaiting work of a second event
              loop in another thread; expected: every task's name, state,
              coroutine chain (cr_await walk, through async generators) with
              each frame's locals, and awaiters.
  asyncio_pytask  the same with pure-Python tasks (asyncio.tasks._PyTask).
  asyncio_noaccel the same without the `_asyncio` module: Python tasks,
              futures, task registry and current-task dict.
  bench       64 threads at depth 30 with 5 locals per frame (benchmark).
Runs on CPython 2.7-3.13 (asyncio scenario: 3.8+).

Usage: depth_target.py SCENARIO ORACLE_JSON READY_FD
"""
from __future__ import print_function

import ctypes
import json
import os
import sys
import threading
import time
import traceback

PY2 = sys.version_info[0] == 2
FOREVER = 1000000
LIMITS = {"depth": 3, "items": 10, "chars": 100}  # = python::ReprLimits
HAS_QUALNAME = sys.version_info >= (3, 11)

_lock = threading.Lock()
_records = []
_expected = [0]
_all_in = threading.Event()


def native_tid():
    return int(os.readlink("/proc/thread-self").split("/")[-1])


def function_name(code):
    return code.co_qualname if HAS_QUALNAME else code.co_name


# ----------------------------------------------------------- bounded repr

if PY2:
    TEXT_TYPES = (str, unicode)  # noqa: F821
    INT_TYPES = (int, long)  # noqa: F821
else:
    TEXT_TYPES = (str, bytes)
    INT_TYPES = (int,)


def type_name(v):
    """tp_name as CPython stores it, read from the type object itself (the
    field after the PyVarObject head): no rule over __module__/__name__ tells
    a class statement's "Name" from a C heap type's "_module.Name" (3.12's
    _asyncio.Future, for one). The object head is larger on free-threaded
    builds: object.__basicsize__ is its size."""
    word = ctypes.sizeof(ctypes.c_void_p)
    name = ctypes.c_char_p.from_address(id(type(v)) + object.__basicsize__ + word).value
    return name.decode("utf-8") if not PY2 else name


def _more(shown, total):
    if total <= shown:
        return ""
    return (", " if shown else "") + "...(%d more)" % (total - shown)


def bounded_repr(v, depth=0, path=()):
    """repr(v) under stackpeek's ReprLimits (python/objects/Reprs.h)."""
    t = type(v)
    if v is None or t in (bool, float) or t in INT_TYPES:
        return repr(v)
    if t in TEXT_TYPES:
        n = LIMITS["chars"]
        r = repr(v[:n])
        if len(v) > n:
            r += "...(%d more chars)" % (len(v) - n)
        return r
    if isinstance(v, BaseException) and t.__flags__ & (1 << 9) == 0:
        return repr(v)
    if t in (list, tuple, dict, set, frozenset):
        return _container(v, depth, path)
    return "<%s object at %s>" % (type_name(v), hex(id(v)).rstrip("L"))


def _container(v, depth, path):
    t = type(v)
    markers = {list: "[...]", tuple: "(...)", dict: "{...}",
               set: "set(...)", frozenset: "frozenset(...)"}
    if t in (set, frozenset) and not v:
        return repr(v)
    if depth >= LIMITS["depth"] or id(v) in path:
        return markers[t]
    path = path + (id(v),)
    n = LIMITS["items"]
    if t is dict:
        items = list(v.items())[:n]
        body = ", ".join("%s: %s" % (bounded_repr(k, depth + 1, path),
                                     bounded_repr(x, depth + 1, path)) for k, x in items)
        return "{" + body + _more(len(items), len(v)) + "}"
    items = list(v)[:n]
    body = ", ".join(bounded_repr(x, depth + 1, path) for x in items) + _more(len(items), len(v))
    if t is list:
        return "[" + body + "]"
    if t is tuple:
        return "(" + body + ("," if len(v) == 1 else "") + ")"
    name = t.__name__
    if PY2:
        return "%s([%s])" % (name, body)
    return ("{%s}" if t is set else "frozenset({%s})") % body


def expected_locals(frame):
    code = frame.f_code
    names = list(code.co_varnames[:code.co_nlocals]) + list(code.co_cellvars) + \
        list(code.co_freevars)
    values = frame.f_locals
    out = {}
    for name in names:
        if name in values:
            v = values[name]
            out[name] = {"repr": bounded_repr(v), "type": type_name(v)}
        else:
            out[name] = {"repr": "<unset>", "type": None}
    return out


def check_reference():
    """bounded_repr must equal repr() wherever no bound applies."""
    samples = [None, True, 0, -7, 2 ** 70, 1.0, 1e16, 1e-05, float("inf"), "it's",
               'say "hi"', u"h\u00e9llo", b"\x00\xff", (1,), (), [1, [2, (3,)]],
               {1: "a", (2, 3): None}, set([1, 2]), frozenset([3]), set(), ValueError("x")]
    for s in samples:
        assert bounded_repr(s) == repr(s), (bounded_repr(s), repr(s))


# ----------------------------------------------------------- scenarios


class Custom(object):
    pass


def record(kind, data):
    with _lock:
        data["tid"] = native_tid()
        data["kind"] = kind
        _records.append(data)
        if len(_records) >= _expected[0]:
            _all_in.set()


def block_forever():
    ev = threading.Event()
    while True:
        ev.wait(FOREVER)


def holder(arg1, arg2="default", *args, **kwargs):
    none = None
    yes, no = True, False
    small, neg, big, huge_neg = 42, -7, 2 ** 70, -(2 ** 100)
    floats = [1.0, 1e16, 1e-05, 0.1, -2.5e-300, float("inf"), float("-inf"), 1e22,
              123456789.123, 1e15]
    nan = float("nan")
    ascii_s = "plain ascii"
    quotes = "it's"
    both = "it's \"both\""
    latin1 = u"h\u00e9llo w\u00f6rld"
    ucs2 = u"\u65e5\u672c\u8a9e \u200b\u2028"
    ucs4 = u"emoji \U0001f600 and \U000e0041"
    controls = u"tab\there\nnewline\x00nul\x7f\\"
    long_text = u"x" * 150 + u"\u00e9" * 10
    raw = b"bytes\x00\xff'"
    tup1, tup0 = (1,), ()
    nested = [1, [2, [3, [4, [5]]]]]
    big_list = list(range(10000))
    selfref = [1, 2]
    selfref.append(selfref)
    keys = {1: "one", (2, 3): None, 4.5: b"x", None: [1], "s": {"inner": True}}
    a_set = set([1, 2, 3])
    a_frozenset = frozenset(["f"])
    empty_set = set()
    custom = Custom()
    exc = ValueError("boom", 2)
    captured = "cell value"
    closure = lambda: (captured, arg1)  # noqa: E731
    squares = [x * x for x in range(3)]  # 3.12+: an inlined, hidden local
    frame = sys._getframe()
    expect = expected_locals(frame)
    del frame
    expect["frame"] = {"repr": "<unset>", "type": None}
    expect["expect"] = None  # assigned after the snapshot: not compared
    record("locals", {"function": function_name(holder.__code__), "locals": expect})
    block_forever()
    late = 1  # never reached: shown as <unset>
    return late, closure, squares


def locals_thread():
    holder(u"argument \u00e9", 2, 3, key="word")


def scenario_locals():
    check_reference()
    _expected[0] = 1
    start(locals_thread)


class AppError(Exception):
    pass


def exception_info():
    """sys.exc_info()'s chain as traceback.py walks it, most recent first."""
    value, tb = sys.exc_info()[1:]
    chain, seen = [], set()
    while value is not None and id(value) not in seen and len(chain) < 16:
        seen.add(id(value))
        if tb is None:
            tb = getattr(value, "__traceback__", None)
        entries = []
        while tb is not None:
            code = tb.tb_frame.f_code
            entries.append({"file": code.co_filename, "function": function_name(code),
                            "line": tb.tb_lineno})
            tb = tb.tb_next
        last = traceback.format_exception_only(type(value), value)[-1].rstrip("\n")
        item = {"final_line": last, "traceback": entries}
        chain.append(item)
        cause = getattr(value, "__cause__", None)
        context = getattr(value, "__context__", None)
        if cause is not None:
            value, item["next_relation"] = cause, "cause"
        elif context is not None and not getattr(value, "__suppress_context__", False):
            value, item["next_relation"] = context, "context"
        else:
            break
    return chain


def raise_deep(n, exc):
    if n == 0:
        raise exc
    raise_deep(n - 1, exc)


def in_plain_except():
    try:
        raise_deep(3, ValueError("plain message"))
    except ValueError:
        record("exception", {"chain": exception_info()})
        block_forever()


def in_context_chain():
    try:
        {}["missing"]
    except KeyError:
        try:
            raise TypeError(u"second \u00e9" if not PY2 else "second")
        except TypeError:
            record("exception", {"chain": exception_info()})
            block_forever()


def in_cause_chain():
    try:
        try:
            int("not a number")
        except ValueError as low:
            if PY2:
                raise AppError("wrapped")
            exec("raise AppError('wrapped') from low")
    except AppError:
        try:
            raise RuntimeError("outermost", 42)
        except RuntimeError:
            record("exception", {"chain": exception_info()})
            block_forever()


def in_finally():
    try:
        raise AppError()
    finally:
        record("exception", {"chain": exception_info()})
        block_forever()


def in_module_error():
    import json as json_module
    try:
        json_module.loads("{")
    except ValueError:
        record("exception", {"chain": exception_info()})
        block_forever()


def no_exception():
    record("exception", {"chain": exception_info()})
    block_forever()


def scenario_exceptions():
    targets = [in_plain_except, in_context_chain, in_cause_chain, in_finally,
               in_module_error, no_exception]
    _expected[0] = len(targets)
    for t in targets:
        start(t)


def bench_frame(depth, a, b):
    c, d, e = a + 1, "s%d" % depth, [depth, b]
    if depth == 0:
        record("bench", {})
        block_forever()
    bench_frame(depth - 1, c, d)
    return e


def scenario_bench():
    threads = int(os.environ.get("DEPTH_BENCH_THREADS", "64"))
    _expected[0] = threads
    for _ in range(threads):
        start(bench_frame, 29, 1, "x")


def start(fn, *args):
    t = threading.Thread(target=fn, args=args)
    t.daemon = True
    t.start()
    return t


# ----------------------------------------------------------- settling


def thread_state(tid):
    try:
        with open("/proc/self/task/%d/stat" % tid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (IOError, OSError):
        return None


def settle(tids, deadline=60.0):
    end = time.time() + deadline
    while time.time() < end:
        if all(thread_state(t) == "S" for t in tids):
            return True
        time.sleep(0.01)
    return False


def finish(path, ready_fd, extra=None, tids=None):
    oracle = {"pid": os.getpid(), "version": "%d.%d.%d" % sys.version_info[:3],
              "records": _records}
    oracle.update(extra or {})
    tids = tids if tids is not None else [r["tid"] for r in _records]
    oracle["settled"] = settle(tids)
    with open(path, "w") as f:
        json.dump(oracle, f, indent=1)
    os.write(ready_fd, b"x")


def main():
    scenario, path, ready_fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if scenario.startswith("asyncio"):
        if scenario == "asyncio_noaccel":
            sys.modules["_asyncio"] = None  # asyncio falls back to its Python classes
        import depth_asyncio
        depth_asyncio.run(path, ready_fd, finish, native_tid, function_name, expected_locals,
                          pure_python=scenario != "asyncio")
        return
    {"locals": scenario_locals, "exceptions": scenario_exceptions,
     "bench": scenario_bench}[scenario]()
    _all_in.wait(60)
    finish(path, ready_fd)
    block_forever()


if __name__ == "__main__":
    main()
