"""Benchmark target: CPU-bound Python threads (and optionally many sleepers).

Why: the cost a sampling profiler imposes is the CPU its target loses.  Each
of BUSY threads recurses DEPTH Python frames deep (bench_level) and then
spins in pure Python forever, so its CPU time (se.sum_exec_runtime in
/proc/PID/task/TID/sched) is the target's throughput; SLEEPING more threads
only sleep, as a server's idle workers do.  The busy threads' native ids are
written to TIDS_PATH (one per line) before one byte goes to READY_FD.

Usage: busy.py READY_FD TIDS_PATH BUSY SLEEPING DEPTH
Runs on CPython 3.8+.  Never exits on its own: the benchmark kills it.
"""
import os
import sys
import threading
import time

_lock = threading.Lock()
_tids = []


def spin():
    x = 0
    while True:
        for i in range(1000):
            x += i
        x = 0


def bench_level(n):
    if n > 1:
        return bench_level(n - 1)
    with _lock:
        _tids.append(threading.get_native_id())
    spin()


def sleeper():
    while True:
        time.sleep(3600)


def main():
    ready_fd, tids_path = int(sys.argv[1]), sys.argv[2]
    busy, sleeping, depth = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    if depth > sys.getrecursionlimit() - 50:
        sys.setrecursionlimit(depth + 100)
    for i in range(sleeping):
        threading.Thread(target=sleeper, name="sleeper-%d" % i, daemon=True).start()
    for i in range(busy):
        threading.Thread(target=bench_level, args=(depth,), name="busy-%d" % i, daemon=True).start()
    while True:
        with _lock:
            if len(_tids) == busy:
                break
        time.sleep(0.001)
    with open(tids_path, "w") as f:
        f.write("".join("%d\n" % t for t in _tids))
    os.write(ready_fd, b"x")
    os.close(ready_fd)
    threading.Event().wait()


main()
