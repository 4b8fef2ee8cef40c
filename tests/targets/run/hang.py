"""Python target for the `stackpeek run` tests: one process, several behaviours.

Why: the run tests need Python commands that hang, spin, make slow progress,
record the signals they get, or exit in a chosen way -- each behaviour
deterministic and announced, so tests synchronise on readiness, not sleeps.

Usage: hang.py MODE [ARG]
  hang            block forever in python_child_hangs_here() (a lock wait)
  busy SECONDS    spin on the CPU for SECONDS, then exit 0
  nap SECONDS     for SECONDS: sleep 20 ms, bump a counter; then print the
                  count and exit 0 (slow progress with very little CPU)
  signals         record SIGINT/SIGTERM/SIGHUP/SIGQUIT (announcing each with
                  a byte 's'); on SIGUSR2 (the test's end marker, sent
                  directly) print what arrived, one per line, and exit 0
  output          write fixed bytes (not all UTF-8, no trailing newline) to
                  stdout and stderr, then exit with status ARG
Readiness: if STACKPEEK_TEST_READY_FD is set, one byte 'p' is written to it
once the behaviour has started (for `signals`: once the handlers are in).
"""
import os
import signal
import sys
import threading
import time


def announce(byte=b"p"):
    fd = os.environ.get("STACKPEEK_TEST_READY_FD")
    if fd:
        os.write(int(fd), byte)


def python_child_hangs_here():
    never = threading.Lock()
    never.acquire()
    announce()
    never.acquire()  # HANGS


def busy(seconds):
    announce()
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1


def nap(seconds):
    announce()
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        time.sleep(0.02)
        count += 1
    print(count)


def record_signals():
    got = []
    done = threading.Event()

    def handler(signum, frame):
        got.append(signal.Signals(signum).name)
        announce(b"s")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, handler)
    signal.signal(signal.SIGUSR2, lambda s, f: done.set())
    announce()
    while not done.wait(0.05):
        pass
    sys.stdout.write("".join(name + "\n" for name in got))


def output(status):
    sys.stdout.buffer.write(b"out \xff\xfe line1\nline2 \x00 no newline")
    sys.stdout.flush()
    sys.stderr.buffer.write(b"err \xc3\xa9\r\n\x1b[31m raw")
    sys.stderr.flush()
    sys.exit(status)


def main():
    mode = sys.argv[1]
    arg = float(sys.argv[2]) if len(sys.argv) > 2 else 0
    if mode == "hang":
        python_child_hangs_here()
    elif mode == "busy":
        busy(arg)
    elif mode == "nap":
        nap(arg)
    elif mode == "signals":
        record_signals()
    elif mode == "output":
        output(int(arg))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
