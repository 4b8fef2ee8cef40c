# -*- coding: utf-8 -*-
"""Python target for stackpeek's GIL and garbage-collector states; CPython 2.7-3.13.

Why it exists: "which thread holds the GIL, which wait for it, which runs
the collector" is only worth printing if it is right, so this target puts
threads into those states on purpose and writes down, from inside the
process, which thread is in which state.

Usage: gil_target.py SCENARIO ORACLE_JSON READY_FD

waiting: two threads spin in Python; once both have run, the main thread
    writes the oracle and the readiness byte, then calls libc pause() through
    ctypes.PyDLL, which keeps the GIL for the call: the main thread holds the
    GIL forever and the spinners wait for it forever. The readiness byte is
    written *before* pause() (nothing can run Python after it), so the test
    waits until /proc shows the main thread in pause (syscall 34).
gc: two threads block in os.read on a pipe nobody writes (GIL released);
    once /proc shows both in read(2), the main thread drops a reference cycle
    that keeps an object with __del__ alive and calls gc.collect(). The
    finalizer runs inside the collection, on the main thread; it checks that
    (with gc.callbacks on 3.3+: a collection started on this thread and has
    not stopped), writes the oracle and the readiness byte, then spins in
    Python holding the GIL, inside the collection, forever.
"""
from __future__ import print_function

import ctypes
import gc
import json
import os
import sys
import threading
import time

FOREVER = 1000000


def native_tid():
    return int(os.readlink("/proc/thread-self").split("/")[-1])


def thread_ident():
    try:
        return threading.get_ident()
    except AttributeError:  # 2.7
        import thread
        return thread.get_ident()


def version():
    return "%d.%d.%d" % sys.version_info[:3]


def without_gil():
    """A free-threaded build running without its GIL (3.13t+)."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return probe is not None and not probe()


def finish(path, ready_fd, oracle):
    oracle.update({"pid": os.getpid(), "version": version(), "settled": True,
                   "without_gil": without_gil()})
    with open(path + ".tmp", "w") as f:
        json.dump(oracle, f)
    os.rename(path + ".tmp", path)
    # libc write(2) through ctypes.PyDLL, not os.write: os.write lets the GIL
    # go for the call, and a dump right after the byte arrived could catch
    # this thread not holding it yet. From here on it holds the GIL.
    ctypes.PyDLL(None).write(ready_fd, b"x", 1)


def syscall_of(tid):
    """The system call number a thread of ours sleeps in, or None."""
    try:
        with open("/proc/self/task/%d/syscall" % tid) as f:
            first = f.read().split()[0]
    except (IOError, OSError, IndexError):
        return None
    return int(first) if first.lstrip("-").isdigit() else None


def wait_for(predicate, what, timeout=60):
    """Polls a condition of this process (bounded); never a fixed sleep."""
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.001)


# --- waiting ---------------------------------------------------------------

def spin(started, tids, index):
    tids[index] = native_tid()
    started[index].set()
    x = 0
    while True:
        x += 1  # SPINS: needs the GIL for every bytecode


def scenario_waiting(path, ready_fd):
    started = [threading.Event(), threading.Event()]
    tids = [0, 0]
    for i in range(2):
        t = threading.Thread(target=spin, args=(started, tids, i), name="spinner-%d" % i)
        t.daemon = True
        t.start()
    for e in started:
        e.wait(FOREVER)
    finish(path, ready_fd, {"holder": native_tid(), "waiters": tids})
    libc = ctypes.PyDLL(None)  # PyDLL: the GIL is kept during the call
    libc.pause()  # HOLDS THE GIL


# --- gc --------------------------------------------------------------------

_collections = {}  # thread ident -> collections started and not stopped


def on_gc(phase, info):
    me = thread_ident()
    _collections[me] = _collections.get(me, 0) + (1 if phase == "start" else -1)


_finalizer_args = []  # (path, ready_fd, blocked): Finalized has no slots


class Finalized(object):
    # No instance variables: 2.7 does not track such objects, so they are not
    # uncollectable garbage (2.7 never runs __del__ of garbage) but freed when
    # the collector clears the cycle holding them; 3.4+ runs __del__ of
    # unreachable objects itself (PEP 442). Either way: inside gc.collect().
    __slots__ = ()

    def __del__(self):
        path, ready_fd, blocked = _finalizer_args[0]
        me = thread_ident()
        callbacks = hasattr(gc, "callbacks")
        finish(path, ready_fd, {
            "collector": native_tid(),
            "blocked": blocked,
            # 3.3+: the collector's own callbacks say it runs on this thread.
            "verified_by_callbacks": callbacks and _collections.get(me, 0) > 0,
            "has_callbacks": callbacks,
        })
        x = 0
        while True:
            x += 1  # FINALIZER SPINS, inside gc.collect()


class Node(object):
    pass


def block_in_read(fd, tids, index):
    tids[index] = native_tid()
    os.read(fd, 1)  # BLOCKS, GIL released


def scenario_gc(path, ready_fd):
    gc.disable()  # only our gc.collect() collects
    if hasattr(gc, "callbacks"):
        gc.callbacks.append(on_gc)
    r, _w = os.pipe()
    tids = [0, 0]
    for i in range(2):
        t = threading.Thread(target=block_in_read, args=(r, tids, i), name="reader-%d" % i)
        t.daemon = True
        t.start()
    wait_for(lambda: all(tid and syscall_of(tid) == 0 for tid in tids),
             "the readers to block in read(2)")
    # A cycle (no finalizer of its own, so collectable on 2.7 too) that holds
    # the only reference to an object with __del__: clearing the cycle runs it.
    a, b = Node(), Node()
    a.other, b.other = b, a
    _finalizer_args.append((path, ready_fd, list(tids)))
    a.payload = Finalized()
    del a, b
    gc.collect()
    raise RuntimeError("the finalizer returned")


if __name__ == "__main__":
    scenario, oracle_path, fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"waiting": scenario_waiting, "gc": scenario_gc}[scenario](oracle_path, fd)
