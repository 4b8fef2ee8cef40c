"""Stress: thousands of consecutive dumps must leave a busy target unharmed.

Why: a ptrace pause that is almost right (a lost signal, a syscall that
returns EINTR to code that did not ask for it, a thread left in tracing stop)
shows up only now and then.  stress_target (tests/targets/stress/) keeps a
dozen threads in different blocking system calls and checks every result
itself; here we dump it STACKPEEK_STRESS_DUMPS times in a row (default 1000,
about 1.5 minutes on 2 cores; scripts/stress runs 10,000) and require:
every dump exits 0 with every worker thread in it, no thread of the target is
in tracing stop once stackpeek has exited, the target reports zero anomalies,
and every worker keeps making progress.  The Python twin of the target
(stress_target.py, Debian's python3) gets the same treatment with fewer
dumps; once stackpeek decodes Python stacks its frames are checked too.

This file also holds the stress-target helpers that test_safety_faults.py
imports (StressStats, start_stress_target, assert_no_leftovers).

When STACKPEEK_RELIABILITY_OUT names a file, each test appends one JSON line
with its figures; scripts/reliability-report collects them.
"""

import json
import mmap
import os
import struct
import sys
import time

import pytest

import harness

STRESS_MAGIC = 0x6b70737365727473
S_MAGIC, S_PID, S_WORKERS, S_READY, S_ANOMALIES, S_GENERATION = 0, 1, 2, 3, 4, 5
S_OPS, S_ANOM, S_TEXT_BYTE = 8, 24, 512
WORKERS = ("pipe", "nanosleep", "futex", "epoll", "accept", "waitpid", "churn")
DEFAULT_DUMPS = 1000


class StressStats:
    """Reader of the 4 KiB stats file the stress targets (C and Python) share."""

    def __init__(self, path):
        self.path = str(path)
        with open(self.path, "r+b") as f:
            self._mm = mmap.mmap(f.fileno(), 4096)
        if self._get(S_MAGIC) != STRESS_MAGIC:
            raise RuntimeError(f"{path} is not a stress stats file")

    def _get(self, slot):
        return struct.unpack_from("<Q", self._mm, slot * 8)[0]

    def workers(self):
        return self._get(S_WORKERS)

    def ops(self):
        return {WORKERS[w]: self._get(S_OPS + w) for w in range(self.workers())}

    def anomalies(self):
        return self._get(S_ANOMALIES)

    def generation(self):
        return self._get(S_GENERATION)

    def last_anomaly(self):
        raw = self._mm[S_TEXT_BYTE:4096]
        return raw.split(b"\0", 1)[0].decode(errors="replace")

    def per_worker_anomalies(self):
        return {WORKERS[w]: self._get(S_ANOM + w) for w in range(self.workers())}

    def assert_clean(self, context=""):
        n = self.anomalies()
        assert n == 0, (f"the target reported {n} anomalies {context}: "
                        f"{self.per_worker_anomalies()}; last: {self.last_anomaly()!r}")

    def wait_progress(self, timeout=30):
        """Every worker completes at least two more operations."""
        before = self.ops()
        harness.wait_until(lambda: all(v >= before[k] + 2 for k, v in self.ops().items()),
                           timeout, f"every stress worker to make progress (from {before})")

    def close(self):
        self._mm.close()


def start_stress_target(workdir, *extra, python=False):
    """Starts the C (or Python) stress target; returns a harness.Target with .stats."""
    workdir = str(workdir)
    stats_path = os.path.join(workdir, f"stress-stats-{harness.mark()}.bin")
    if python:
        script = os.path.join(os.environ["STACKPEEK_TARGETS_SRC_DIR"], "stress", "stress_target.py")
        python3 = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        argv = [python3, script, "--stats", stats_path, "--ready-fd", "{ready_fd}"]
    else:
        argv = [harness.target_path("stress_target"), "--stats", stats_path,
                "--ready-fd", "{ready_fd}", *extra]
    t = harness.start_target(argv, ready_timeout=30)
    t.stats = StressStats(stats_path)
    return t


def child_states():
    """State letter of every live child of this test process."""
    me = os.getpid()
    states = {}
    for tid in harness.task_ids(me):
        try:
            with open(f"/proc/{me}/task/{tid}/children") as f:
                kids = [int(p) for p in f.read().split()]
        except FileNotFoundError:
            continue
        for kid in kids:
            s = harness.proc_state(kid)
            if s is not None:
                states[kid] = s
    return states


def assert_no_leftovers(target_pid=None, execing=False):
    """No child of ours is a zombie or stopped; the target (if alive) is not stopped.

    An `execing` target that runs exec from a thread other than its main one
    shows its old leader as a zombie until the exec completes, so for it only
    a stopped state counts (the caller checks that it has not died)."""
    bad = {pid: s for pid, s in child_states().items()
           if s in ("tT" if execing and pid == target_pid else "ZtTX")}
    assert not bad, f"zombie or stopped children left behind: {bad}"
    if target_pid is not None:
        states = harness.thread_states(target_pid)
        stopped = {tid: s for tid, s in states.items() if s in "tT"}
        assert not stopped, f"threads of {target_pid} left stopped: {stopped}"


def record_figures(**figures):
    out = os.environ.get("STACKPEEK_RELIABILITY_OUT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(figures) + "\n")


def dump_count(default=DEFAULT_DUMPS):
    return int(os.environ.get("STACKPEEK_STRESS_DUMPS", default))


def dump_many(target, n, expect_threads, label):
    """n consecutive JSON dumps; checks each one and the target after each."""
    pauses = []
    start = time.monotonic()
    for i in range(n):
        res = harness.run_stackpeek(["dump", "--format", "json", target.pid], timeout=120)
        assert res.returncode == 0, (f"{label}: dump {i} exited {res.returncode}\n"
                                     f"stderr:\n{res.stderr}")
        # stackpeek has exited: its detach is complete, so no thread may be in
        # tracing stop now (checked at once, not polled).
        stopped = {t: s for t, s in harness.thread_states(target.pid).items() if s in "tT"}
        assert not stopped, f"{label}: after dump {i} threads are still stopped: {stopped}"
        doc = json.loads(res.stdout)
        names = {t["name"] for t in doc["threads"]}
        missing = expect_threads - names
        assert not missing, f"{label}: dump {i} lacks threads {missing} (has {sorted(names)})"
        if doc.get("pause_us") is not None:
            pauses.append(doc["pause_us"])
        target.stats.assert_clean(f"after dump {i}")
    elapsed = time.monotonic() - start
    pauses.sort()
    summary = {
        "dumps": n,
        "seconds": round(elapsed, 1),
        "pause_us_median": pauses[len(pauses) // 2] if pauses else None,
        "pause_us_max": pauses[-1] if pauses else None,
    }
    print(f"{label}: {summary}")
    return summary, doc


C_THREADS = {"pipe-reader", "pipe-writer", "sleeper", "futex-wait", "futex-wake", "epoll",
             "event-post", "acceptor", "client", "waitpid"}


def test_consecutive_dumps_leave_the_stress_target_unharmed(tmp_path):
    target = start_stress_target(tmp_path)
    n = dump_count()
    summary, _ = dump_many(target, n, C_THREADS, "stress")
    target.stats.wait_progress()
    target.stats.assert_clean("at the end")
    assert_no_leftovers(target.pid)
    ops = target.stats.ops()
    record_figures(suite="stress", target="c", anomalies=target.stats.anomalies(), ops=ops,
                   **summary)


def test_consecutive_dumps_leave_the_python_stress_target_unharmed(tmp_path):
    target = start_stress_target(tmp_path, python=True)
    n = max(1, dump_count() // 6)
    summary, doc = dump_many(target, n, set(), "python stress")
    assert len(doc["threads"]) >= 7, f"expected the 7+ worker threads: {doc['threads']}"
    if doc.get("python"):
        # Python decoding available: every worker function shows up.
        functions = {f.get("function") for t in doc["threads"] for f in t["frames"]}
        for fn in ("pipe_worker", "sleep_worker", "futex_worker", "epoll_worker",
                   "accept_worker", "waitpid_worker"):
            assert any(fn in (name or "") for name in functions), f"{fn} missing from Python frames"
    target.stats.wait_progress()
    target.stats.assert_clean("at the end")
    assert_no_leftovers(target.pid)
    record_figures(suite="stress", target="python", anomalies=target.stats.anomalies(),
                   ops=target.stats.ops(), **summary)


def test_recording_every_thread_at_1000_hz_leaves_the_python_stress_target_unharmed(tmp_path):
    """record --idle at 1000 Hz: each pass stops the GIL's last holder (or,
    when the GIL changed hands, every thread) while the workers sit in the
    calls the stress target checks; none may see an anomaly."""
    target = start_stress_target(tmp_path, python=True)
    out = str(tmp_path / "p.folded")
    res = harness.run_stackpeek(["record", "--pid", target.pid, "--idle", "--rate", "1000",
                                 "--duration", "5", "-o", out], timeout=120)
    assert res.returncode == 0, res.stderr
    print(res.stderr)
    stacks = open(out).read()
    for fn in ("pipe_worker", "sleep_worker", "futex_worker", "epoll_worker"):
        assert fn in stacks, f"{fn} missing from the profile:\n{stacks[:2000]}"
    target.stats.wait_progress()
    target.stats.assert_clean("after 5 s of record --idle at 1000 Hz")
    assert_no_leftovers(target.pid)
