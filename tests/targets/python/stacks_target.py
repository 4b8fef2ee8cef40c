# -*- coding: utf-8 -*-
"""Python target for stackpeek's integration tests; runs on CPython 2.7-3.13.

Why it exists: to compare stackpeek's view of a Python process with the
process's own view. Every thread parks in a known place (a line marked
"# BLOCKS"); an oracle thread waits until all of them are at rest, records
their stacks in-process (sys._current_frames: file, function -- co_qualname on
3.11+ -- line, and on 3.11+ the column span from co_positions() at f_lasti,
which is what the interpreter itself reports), writes them as JSON, and then
signals readiness by writing one byte to a pipe fd. No sleeps are used for
synchronisation with the test; the oracle polls its own process until every
parked thread's stack is unchanged across consecutive snapshots and its OS
thread is asleep.

Usage: stacks_target.py SCENARIO ORACLE_JSON READY_FD
Scenarios: blocking, deep, many, busy, churn, blink, dlopen (see `scenario_*`).
"""
from __future__ import print_function

import dis
import json
import os
import platform
import socket
import sys
import threading
import time

try:
    import queue
except ImportError:  # 2.7
    import Queue as queue

PY3 = sys.version_info[0] >= 3
HAS_POSITIONS = sys.version_info >= (3, 11)
HAS_QUALNAME = sys.version_info >= (3, 11)
FOREVER = 1000000
HERE = os.path.dirname(os.path.abspath(__file__))
NON_ASCII_MODULE = os.path.join(HERE, u"\u00f1and\u00fa_m\u00f3dulo.py")
CORO_MODULE = os.path.join(HERE, "coro_mod.py")
EXEC_SOURCE = ("def execd(arrive):\n"
               "    arrive()\n"
               "    time.sleep(1000000)  # BLOCKS\n"
               "execd(arrive)\n")

_lock = threading.Lock()
_arrived = {}      # ident -> {"tid", "name", "exact"}
_all_arrived = threading.Event()
_expected = [0]
_marked = set()    # (filename, line) of "# BLOCKS" lines
_extra = {}        # scenario facts copied into the oracle


def native_tid():
    return int(os.readlink("/proc/thread-self").split("/")[-1])


def arrive(exact=True):
    """Registers the calling thread as parked (or about to park)."""
    me = threading.current_thread()
    with _lock:
        _arrived[threading_ident()] = {"tid": native_tid(), "name": me.name,
                                       "exact": exact}
        if len(_arrived) >= _expected[0]:
            _all_arrived.set()


def threading_ident():
    return threading.current_thread().ident if PY3 else _thread_ident()


def _thread_ident():
    import thread
    return thread.get_ident()


def mark_lines(filename, text):
    for number, line in enumerate(text.splitlines(), 1):
        if "# BLOCKS" in line:
            _marked.add((filename, number))


def source_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


# ------------------------------------------------------------------ oracle


def function_name(code):
    return code.co_qualname if HAS_QUALNAME else code.co_name


def opname_at(code, lasti):
    if lasti < 0:
        return ""
    op = code.co_code[lasti]
    return dis.opname[op if PY3 else ord(op)]


def describe(frame):
    code = frame.f_code
    d = {"file": code.co_filename, "function": function_name(code),
         "line": frame.f_lineno, "lasti": frame.f_lasti,
         "opname": opname_at(code, frame.f_lasti)}
    if not PY3 and isinstance(d["file"], bytes):
        d["file"] = d["file"].decode("utf-8")
    if HAS_POSITIONS and frame.f_lasti >= 0:
        line, end_line, col, end_col = list(code.co_positions())[frame.f_lasti // 2]
        d.update(line=line, end_line=end_line, column=col, end_column=end_col)
    return d


def snapshot():
    frames = sys._current_frames()
    stacks = {}
    for ident in list(_arrived):
        stack, f = [], frames.get(ident)
        while f is not None:
            stack.append(describe(f))
            f = f.f_back
        stacks[ident] = stack
    return stacks


def thread_state(tid):
    try:
        with open("/proc/self/task/%d/stat" % tid) as f:
            data = f.read()
    except (IOError, OSError):
        return None
    return data[data.rindex(")") + 2]


def at_rest(info, stack):
    """Parked: asleep in the kernel, innermost frame inside a call, and the
    innermost frame of our own code on a "# BLOCKS" line."""
    if not stack or thread_state(info["tid"]) != "S":
        return False
    # 3.11 runs specialised builtin calls inside PRECALL, so match any *CALL*.
    if "CALL" not in stack[0]["opname"]:
        return False
    for frame in stack:
        if any(frame["file"] == f for f, _ in _marked):
            return (frame["file"], frame["line"]) in _marked
    return False


def settle(deadline=60.0):
    """Waits until every exact thread is at rest and its stack stable."""
    _all_arrived.wait(deadline)
    end = time.time() + deadline
    previous = None
    while time.time() < end:
        stacks = snapshot()
        exact = dict((i, s) for i, s in stacks.items() if _arrived[i]["exact"])
        if all(at_rest(_arrived[i], s) for i, s in exact.items()):
            if exact == previous:
                return stacks, True
            previous = exact
        else:
            previous = None
        time.sleep(0.02)  # let parked threads move on; not a test-side sleep
    return snapshot(), False


def free_threaded():
    try:
        import sysconfig
        return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    except ImportError:
        return False


def gil_enabled():
    """False only on a free-threaded build running without its GIL."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


def oracle_main(path, ready_fd, scenario):
    stacks, settled = settle()
    threads = []
    for ident, stack in stacks.items():
        info = _arrived[ident]
        threads.append({"ident": ident, "tid": info["tid"], "name": info["name"],
                        "exact": info["exact"], "frames": stack})
    doc = {"pid": os.getpid(), "scenario": scenario, "settled": settled,
           "version": platform.python_version(),
           "oracle_tid": native_tid(), "threads": threads,
           "free_threaded": free_threaded(), "gil_enabled": gil_enabled()}
    doc.update(_extra)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    os.write(ready_fd, b"x")
    time.sleep(FOREVER)


# ------------------------------------------------------------------ parked threads


def sleeper():
    arrive()
    time.sleep(FOREVER)  # BLOCKS


def lock_waiter(lock):
    arrive()
    lock.acquire()  # BLOCKS


def queue_waiter(q):
    arrive()
    q.get()  # BLOCKS


def acceptor(server):
    arrive()
    server.accept()  # BLOCKS


def in_except():
    try:
        raise ValueError("parked in an except block")
    except ValueError:
        arrive()
        time.sleep(FOREVER)  # BLOCKS


class Worker(object):
    def method(self):
        def nested():
            park = lambda: time.sleep(FOREVER)  # BLOCKS
            arrive()
            park()
        nested()


def sort_key(item):
    arrive()
    time.sleep(FOREVER)  # BLOCKS
    return item


def sorted_caller():
    return sorted([3, 1, 2], key=sort_key)


def map_callee(item):
    arrive()
    time.sleep(FOREVER)  # BLOCKS
    return item


def map_caller():
    return list(map(map_callee, [1, 2]))


def generator():
    arrive()
    time.sleep(FOREVER)  # BLOCKS
    yield 1


def generator_runner():
    for _ in generator():
        pass


def exec_runner():
    namespace = {"time": time, "arrive": arrive}
    exec(compile(EXEC_SOURCE, "<string>", "exec"), namespace)


def load_file(path):
    namespace = {"time": time, "arrive": arrive}
    text = source_text(path)
    if not PY3:  # no non-ASCII identifiers before 3.0
        text = text.replace(u"funci\u00f3n_\u00f1", u"funcion_n").encode("utf-8")
        path = path.encode("utf-8")
    exec(compile(text, path, "exec"), namespace)
    return namespace


def recurse(depth):
    if depth > 1:
        return recurse(depth - 1)
    arrive()
    time.sleep(FOREVER)  # BLOCKS


def start(target, *args):
    t = threading.Thread(target=target, args=args)
    t.daemon = True
    t.start()
    return t


def blocking_threads():
    never = threading.Lock()
    never.acquire()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    starts = [(sleeper,), (lock_waiter, never), (queue_waiter, queue.Queue()),
              (acceptor, server), (in_except,), (Worker().method,),
              (sorted_caller,), (map_caller,), (generator_runner,), (exec_runner,)]
    mark_lines("<string>", EXEC_SOURCE)
    text = source_text(NON_ASCII_MODULE)
    mark_lines(NON_ASCII_MODULE, text)
    starts.append((load_file(NON_ASCII_MODULE)["entry"],))
    if sys.version_info >= (3, 5):
        mark_lines(CORO_MODULE, source_text(CORO_MODULE))
        starts.append((load_file(CORO_MODULE)["run_coroutine"],))
    return starts


def scenario_blocking():
    return blocking_threads()


def scenario_deep():
    sys.setrecursionlimit(5000)
    return [(recurse, 500)]


def scenario_many():
    return [(sleeper,)] * 50


def spin():
    x = 0
    while True:
        x += 1


def churn_a(depth):
    if depth > 0:
        return churn_b(depth - 1)
    return 0


def churn_b(depth):
    return churn_a(depth)


def churn_loop():
    arrive(exact=False)
    n = 0
    while True:
        n = (n * 7 + 3) % 61
        churn_a(n)


def blink_a(depth):
    if depth > 0:
        return blink_b(depth - 1)
    time.sleep(0.0002)  # asleep most of the time, awake for a moment in between
    return 0


def blink_b(depth):
    return blink_a(depth)


def blink_loop():
    arrive(exact=False)
    n = 0
    while True:
        n = (n * 7 + 3) % 61
        blink_a(n)


def load_second_libpython():
    """Maps an uninitialised second copy of libpython (as ctypes/llvmlite
    users end up doing), so the locator must validate which copy is live.
    Returns the copy's path, or None for a statically linked interpreter."""
    import ctypes
    import shutil
    import tempfile
    with open("/proc/self/maps") as f:
        paths = [line.split()[-1] for line in f if "libpython" in line]
    if not paths:
        return None
    copy_dir = tempfile.mkdtemp(prefix="stackpeek-dlopen-")
    copy = os.path.join(copy_dir, os.path.basename(paths[0]))
    shutil.copy(paths[0], copy)
    ctypes.CDLL(copy, mode=getattr(ctypes, "RTLD_LOCAL", 0))
    return copy


def scenario_dlopen():
    _extra["second_libpython"] = load_second_libpython()
    return [(sleeper,)] * 2


def scenario_busy():
    return [(sleeper,)] * 4


def scenario_churn():
    return [(sleeper,), (churn_loop,)]


def scenario_blink():
    return [(sleeper,), (blink_loop,)]


SCENARIOS = {"blocking": scenario_blocking, "deep": scenario_deep,
             "many": scenario_many, "busy": scenario_busy, "churn": scenario_churn,
             "blink": scenario_blink,
             "dlopen": scenario_dlopen}

# ------------------------------------------------------------------ module level

scenario, oracle_path, ready_fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
mark_lines(os.path.abspath(__file__), source_text(os.path.abspath(__file__)))
mark_lines(__file__, source_text(os.path.abspath(__file__)))
threads = SCENARIOS[scenario]()
_expected[0] = len(threads) + 1  # + the main thread
for entry in threads:
    start(*entry)
start(oracle_main, oracle_path, ready_fd, scenario)
main_lock = threading.Lock()
main_lock.acquire()
if scenario == "busy":
    arrive(exact=False)
    spin()
arrive()
main_lock.acquire()  # BLOCKS
