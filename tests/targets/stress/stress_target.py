"""stress_target.py: the Python twin of stress_target.c.

Why: stackpeek also dumps Python processes (and will read the interpreter's
memory while it holds them).  This script runs the same self-checking
blocking workers with Python threads -- pipe messages with sequence numbers
and checksums, time.sleep, a condition variable (a futex underneath),
select.epoll on a pipe, accept on loopback with a connecting client, and a
spawned child reaped with os.waitpid -- and counts every anomaly (an
exception, a short read, a lost/duplicated/corrupt message, an early wake-up,
a wrong child status).  Stats go to the same 4 KiB mmap layout as the C
target (see test_safety_stress.py), readiness to --ready-fd.

Usage: python3 stress_target.py --stats PATH --ready-fd FD
"""

import argparse
import hashlib
import mmap
import os
import select
import socket
import struct
import sys
import threading
import time

MAGIC = 0x6b70737365727473
S_MAGIC, S_PID, S_WORKERS, S_READY, S_ANOMALIES = 0, 1, 2, 3, 4
S_OPS, S_ANOM, S_TEXT_BYTE = 8, 24, 512
WORKERS = ("pipe", "nanosleep", "futex", "epoll", "accept", "waitpid")

_lock = threading.Lock()
_mm = None


def _add(slot, n=1):
    with _lock:
        value = struct.unpack_from("<Q", _mm, slot * 8)[0] + n
        struct.pack_into("<Q", _mm, slot * 8, value)


def anomaly(worker, text):
    w = WORKERS.index(worker)
    _add(S_ANOM + w)
    _add(S_ANOMALIES)
    data = f"{worker}: {text}".encode()[:400] + b"\0"
    with _lock:
        _mm[S_TEXT_BYTE:S_TEXT_BYTE + len(data)] = data
    print(f"stress_target.py: anomaly: {worker}: {text}", file=sys.stderr, flush=True)


def op_done(worker):
    _add(S_OPS + WORKERS.index(worker))


def guarded(worker, fn):
    def run():
        while True:
            try:
                fn()
            except Exception as e:  # any exception reaching the program is an anomaly
                anomaly(worker, f"{type(e).__name__}: {e}")
    return run


def message(seq):
    payload = struct.pack("<Q", seq) + bytes(48)
    return payload + hashlib.blake2b(payload, digest_size=8).digest()


def pipe_worker():
    r, w = os.pipe()

    def writer():
        seq = 0
        while True:
            data = message(seq)
            n = os.write(w, data)
            if n != len(data):
                anomaly("pipe", f"short write {n}")
            seq += 1
            if seq % 64 == 0:
                time.sleep(0.001)

    threading.Thread(target=guarded("pipe", writer), name="py-pipe-writer", daemon=True).start()
    expected = 0
    while True:
        data = os.read(r, 64)
        if len(data) != 64:
            anomaly("pipe", f"short read {len(data)}")
            continue
        seq = struct.unpack_from("<Q", data)[0]
        if data != message(seq):
            anomaly("pipe", f"bad checksum in message {seq}")
        elif seq != expected:
            anomaly("pipe", f"message {seq} received, {expected} expected")
        expected = seq + 1
        op_done("pipe")


def sleep_worker():
    while True:
        start = time.monotonic()
        time.sleep(0.002)
        if time.monotonic() - start < 0.002:
            anomaly("nanosleep", "sleep returned early")
        op_done("nanosleep")


def futex_worker():
    cond = threading.Condition()
    state = {"n": 0}

    def notifier():
        while True:
            time.sleep(0.001)
            with cond:
                state["n"] += 1
                cond.notify()

    threading.Thread(target=guarded("futex", notifier), name="py-notify", daemon=True).start()
    while True:
        with cond:
            seen = state["n"]
            if not cond.wait_for(lambda: state["n"] != seen, timeout=30):
                anomaly("futex", "no notification within 30 s")
        op_done("futex")


def epoll_worker():
    r, w = os.pipe()
    ep = select.epoll()
    ep.register(r, select.EPOLLIN)

    def poster():
        while True:
            time.sleep(0.001)
            os.write(w, b"x")

    threading.Thread(target=guarded("epoll", poster), name="py-poster", daemon=True).start()
    while True:
        events = ep.poll(-1)
        if not events:
            anomaly("epoll", "epoll returned no event without a timeout")
            continue
        if not os.read(r, 4096):
            anomaly("epoll", "pipe closed")
        op_done("epoll")


def accept_worker():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    addr = srv.getsockname()

    def client():
        seq = 0
        while True:
            time.sleep(0.002)
            with socket.create_connection(addr) as c:
                c.sendall(struct.pack("<Q", seq))
                if c.recv(1) != b"":
                    anomaly("accept", "client expected EOF")
            seq += 1

    threading.Thread(target=guarded("accept", client), name="py-client", daemon=True).start()
    expected = 0
    while True:
        conn, _ = srv.accept()
        with conn:
            data = conn.recv(8, socket.MSG_WAITALL)
            if len(data) != 8:
                anomaly("accept", f"short read {len(data)}")
                continue
            seq = struct.unpack("<Q", data)[0]
            if seq != expected:
                anomaly("accept", f"connection {seq} received, {expected} expected")
            expected = seq + 1
        op_done("accept")


def waitpid_worker():
    i = 0
    while True:
        code = i & 0x7f
        pid = os.posix_spawn("/bin/sh", ["sh", "-c", f"exit {code}"], {})
        got, status = os.waitpid(pid, 0)
        if got != pid or not os.WIFEXITED(status) or os.WEXITSTATUS(status) != code:
            anomaly("waitpid", f"waitpid -> ({got}, {status:#x}), expected exit {code}")
        op_done("waitpid")
        i += 1


def main():
    global _mm
    ap = argparse.ArgumentParser()
    ap.add_argument("--stats", required=True)
    ap.add_argument("--ready-fd", type=int, required=True)
    args = ap.parse_args()
    fd = os.open(args.stats, os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, 4096)
    _mm = mmap.mmap(fd, 4096)
    os.close(fd)
    _mm[:] = bytes(4096)
    struct.pack_into("<Q", _mm, S_PID * 8, os.getpid())
    struct.pack_into("<Q", _mm, S_WORKERS * 8, len(WORKERS))
    struct.pack_into("<Q", _mm, S_MAGIC * 8, MAGIC)
    for name, fn in (("pipe", pipe_worker), ("nanosleep", sleep_worker), ("futex", futex_worker),
                     ("epoll", epoll_worker), ("accept", accept_worker),
                     ("waitpid", waitpid_worker)):
        threading.Thread(target=guarded(name, fn), name=f"py-{name}", daemon=True).start()
    deadline = time.monotonic() + 20
    while any(struct.unpack_from("<Q", _mm, (S_OPS + w) * 8)[0] == 0 for w in range(len(WORKERS))):
        if time.monotonic() > deadline:
            sys.exit("stress_target.py: workers did not start")
        time.sleep(0.001)
    struct.pack_into("<Q", _mm, S_READY * 8, 1)
    os.write(args.ready_fd, b"R")
    os.close(args.ready_fd)
    threading.Event().wait()


if __name__ == "__main__":
    main()
