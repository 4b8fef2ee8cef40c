"""CPU-bound target for `stackpeek record`: its CPU time splits 3:1 between
heavy() and light(), by construction, so a correct profiler must report
about 75% / 25%.

Each round spends a random slice of thread CPU time (1-5 ms, seeded) in
heavy() and a third of that in light(), measured with time.thread_time(),
so the split holds whatever the machine's speed. Random slices keep the
work from having a period that a fixed sampling rate could alias with.

Usage: cpu_split.py READY_FD SECONDS [--threads-sleeping N] [--child]
  READY_FD   a pipe fd to write one byte to once the loop runs (-1: none)
  SECONDS    how long to run before exiting (0: forever)
  --threads-sleeping N   also start N threads that only sleep
  --child    start a child process running the same loop (for --subprocesses);
             the child exits as soon as its parent is gone, so a test that
             kills the parent never leaves the child spinning
"""
import os
import random
import subprocess
import sys
import threading
import time


def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def heavy(seconds):
    spin(seconds)


def light(seconds):
    spin(seconds)


def sleeper():
    while True:
        time.sleep(3600)


def main():
    ready_fd = int(sys.argv[1])
    duration = float(sys.argv[2])
    args = sys.argv[3:]
    if "--threads-sleeping" in args:
        for i in range(int(args[args.index("--threads-sleeping") + 1])):
            threading.Thread(target=sleeper, name="sleeper-%d" % i, daemon=True).start()
    child = None
    if "--child" in args:
        child = subprocess.Popen([sys.executable, __file__, "-1", str(duration),
                                  "--parent", str(os.getpid())])
    parent = int(args[args.index("--parent") + 1]) if "--parent" in args else None
    rng = random.Random(1234)
    if ready_fd >= 0:
        os.write(ready_fd, b"x")
        os.close(ready_fd)
    end = time.time() + duration if duration > 0 else None
    while end is None or time.time() < end:
        if parent is not None and os.getppid() != parent:
            return  # orphaned: the parent was killed
        slice_ = rng.uniform(0.001, 0.005)
        heavy(slice_)
        light(slice_ / 3)
    if child:
        child.wait()


main()
