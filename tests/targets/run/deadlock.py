"""Target for the `stackpeek run` tests: two threads deadlock on two locks.

Why: a lock-order inversion is the classic hang that kills CI jobs without a
trace. Thread "first" takes lock A then wants B; thread "second" takes B then
wants A. Each takes its first lock, then both meet at a barrier, so both are
certain to hold one lock when they ask for the other: the deadlock is
deterministic, no sleep involved. The main thread then joins them forever.

Usage: deadlock.py [READY_FILE]
  READY_FILE, if given, is created (atomically, by rename) once both threads
  are about to block, so a test knows the hang has started. With
  STACKPEEK_TEST_PYTHON_READY_FD set, one byte is written to that fd instead.
Every thread sleeps in an untimed lock wait: the process uses no CPU at all.
"""
import os
import sys
import threading

lock_a = threading.Lock()
lock_b = threading.Lock()
both_hold_one = threading.Barrier(3)


def first():
    with lock_a:
        both_hold_one.wait()
        lock_b.acquire()  # DEADLOCK first


def second():
    with lock_b:
        both_hold_one.wait()
        lock_a.acquire()  # DEADLOCK second


def announce():
    fd = os.environ.get("STACKPEEK_TEST_READY_FD")
    if fd:
        os.write(int(fd), b"r")
    if len(sys.argv) > 1:
        tmp = sys.argv[1] + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(os.getpid()))
        os.rename(tmp, sys.argv[1])


def main():
    threads = [threading.Thread(target=first, name="first"),
               threading.Thread(target=second, name="second")]
    for t in threads:
        t.start()
    both_hold_one.wait()
    announce()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
