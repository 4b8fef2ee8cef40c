"""Benchmark target: N Python threads blocked at a known depth, plus a ticker.

Why: a dump benchmark needs a target whose stacks are fixed (so every tool
has the same work to do) and an independent witness of how long the target
really stood still.  Each of THREADS threads recurses DEPTH Python frames
deep in bench_level() and then blocks forever in a C-level lock acquire (no
extra Python frame, no GIL held).  A ticker thread sleeps 1 ms at a time and
records the largest gap between two consecutive wakeups: while the process
is ptrace-stopped it cannot tick, so the first tick after a resume measures
the pause, whatever the dumping tool itself claims.

The ticker publishes in STATS_PATH with the layout of the native targets'
stats file (tests/targets/target_common.h), so tests/integration/harness.py's
Stats reader works unchanged: 8 little-endian uint64 words, mapped shared:
  [0] magic  [1] ticks  [2] largest gap since the last reset (ns)
  [3] reset request (a reader bumps it)  [4] reset acknowledged  [5] unused
  [6] pid
Readiness: one byte is written to READY_FD once every blocked thread sleeps
(checked in /proc, not assumed), and the ticker has ticked.

Usage: blocked.py READY_FD STATS_PATH THREADS DEPTH
Runs on CPython 3.7+.  Never exits on its own: the benchmark kills it.
"""
import mmap
import os
import struct
import sys
import threading
import time

MAGIC = 0x7374617473706B31
S_MAGIC, S_TICKS, S_MAX_GAP, S_RESET_REQ, S_RESET_ACK, S_SPURIOUS, S_PID = range(7)

_gate = threading.Lock()
_gate.acquire()  # never released: blocked threads wait on it forever
_tids_lock = threading.Lock()
_tids = []


def bench_level(n):
    if n > 1:
        return bench_level(n - 1)
    with _tids_lock:
        _tids.append(threading.get_native_id())
    _gate.acquire()  # blocks forever, GIL released, no Python frame added


def blocked_thread(depth):
    # Frames from the thread's bootstrap are not counted: DEPTH bench_level
    # frames sit on top of them.
    bench_level(depth)


def open_stats(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, 4096)
    mm = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    os.close(fd)
    struct.pack_into("<Q", mm, S_PID * 8, os.getpid())
    struct.pack_into("<Q", mm, S_MAGIC * 8, MAGIC)
    return mm


def ticker(mm):
    get = lambda slot: struct.unpack_from("<Q", mm, slot * 8)[0]  # noqa: E731
    put = lambda slot, v: struct.pack_into("<Q", mm, slot * 8, v)  # noqa: E731
    seen_reset = 0
    ticks = 0
    last = time.monotonic_ns()
    while True:
        time.sleep(0.001)
        now = time.monotonic_ns()
        gap = now - last
        last = now
        req = get(S_RESET_REQ)
        if req != seen_reset:
            seen_reset = req
            put(S_MAX_GAP, 0)
            put(S_RESET_ACK, req)
        elif gap > get(S_MAX_GAP):
            put(S_MAX_GAP, gap)
        ticks += 1
        put(S_TICKS, ticks)


def state(tid):
    try:
        with open("/proc/self/task/%d/stat" % tid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:data.rindex(b")") + 3]


def main():
    ready_fd, stats_path = int(sys.argv[1]), sys.argv[2]
    nthreads, depth = int(sys.argv[3]), int(sys.argv[4])
    if depth > sys.getrecursionlimit() - 50:
        sys.setrecursionlimit(depth + 100)
    mm = open_stats(stats_path)
    threading.Thread(target=ticker, args=(mm,), name="ticker", daemon=True).start()
    for i in range(nthreads):
        threading.Thread(target=blocked_thread, args=(depth,), name="blocked-%d" % i,
                         daemon=True).start()
    deadline = time.monotonic() + 60
    while True:
        with _tids_lock:
            tids = list(_tids)
        if len(tids) == nthreads and all(state(t) == b"S" for t in tids) \
                and struct.unpack_from("<Q", mm, S_TICKS * 8)[0] > 2:
            break
        if time.monotonic() > deadline:
            sys.exit("blocked.py: threads did not block within 60 s")
        time.sleep(0.001)
    os.write(ready_fd, b"x")
    os.close(ready_fd)
    _gate.acquire()  # the main thread blocks too (outside bench_level)


main()
