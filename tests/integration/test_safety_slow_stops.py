"""Threads that are slow to stop, and threads and processes that exit
between stackpeek's interrupt and its wait: never held, never misreported.

Why: on a loaded host a thread that PTRACE_INTERRUPT has asked to stop may
wait seconds for the CPU before it gets there. A pass that gave up on it
used to forget it; it then stopped on stackpeek's behalf and stayed stopped
for good (`record` never ended), and the pass said the live process had
"exited before it could be paused". These tests recreate the conditions
every time instead of hoping for them:

- starved targets: an idle-priority (SCHED_IDLE) target beside CPU hogs,
  and a niced target pinned with the hogs to one core;
- the test hook (STACKPEEK_TEST_HOOK_FD / _AT): stackpeek stops at a stage
  of its attach and waits for the test, which kills the process or ends a
  thread exactly there.

The oracle is the kernel's view of the target: /proc says whether it is in
a tracing stop and who traces it, and the parent (this test) reaps its exit.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import harness
from test_safety_stress import record_figures

PYTHON = "/usr/bin/python3"
SPLIT = os.path.join(harness._env_path("STACKPEEK_TARGETS_SRC_DIR"), "record", "cpu_split.py")
HOGS = 3
# A pass waits at most 1 s for a runnable thread (Sampler.h); a thread in a
# tracing stop for longer than this was held by nobody's choice.
LONGEST_STOP_ALLOWED = 2.0


def start_hogs(cpus):
    return [harness.spawn([PYTHON, "-c", "while True: pass"],
                          preexec_fn=lambda: os.sched_setaffinity(0, cpus))
            for _ in range(HOGS)]


def starve(pid, how):
    """Idle priority beside hogs on every core, or niced and pinned with them
    to core 0 (a batch job on a busy machine)."""
    for tid in harness.task_ids(pid):
        if how == "idle":
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.sched_setaffinity(tid, {0})
            os.setpriority(os.PRIO_PROCESS, tid, 19)
    return start_hogs({0} if how == "pinned" else set(range(os.cpu_count())))


class StopWatch(threading.Thread):
    """Polls the target's threads; keeps the longest run of tracing stop."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.longest, self.done = pid, 0.0, threading.Event()

    def run(self):
        since = {}
        while not self.done.is_set():
            now = time.monotonic()
            states = harness.thread_states(self.pid)
            if not states:
                return
            for tid, state in states.items():
                if state == "t":
                    self.longest = max(self.longest, now - since.setdefault(tid, now))
                else:
                    since.pop(tid, None)
            time.sleep(0.005)  # a sampling period, not a synchronisation

    def stop(self):
        self.done.set()
        self.join(10)
        return self.longest


def worst_pause_us(summary):
    m = re.search(r"target paused \d+ times, [\d.]+ us on average, (\d+) us at worst", summary)
    return int(m.group(1)) if m else 0


@pytest.mark.parametrize("how", ["idle", "pinned"])
def test_record_of_a_starved_target_never_holds_it_and_ends_when_it_exits(tmp_path, how):
    target = harness.start_target([PYTHON, SPLIT, "{ready_fd}", "0", "--threads-sleeping", "2"])
    hogs = starve(target.pid, how)
    watch = StopWatch(target.pid)
    watch.start()
    out = tmp_path / "p.folded"
    rec = harness.spawn_stackpeek(["record", "--pid", target.pid, "--native", "-o", out])
    # The recording's length is the scenario, not a synchronisation: long
    # enough for hundreds of passes against a thread that rarely runs.
    time.sleep(8)
    longest = watch.stop()
    for hog in hogs:
        hog.kill()
    os.kill(target.pid, signal.SIGTERM)
    try:
        _, err = rec.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        state = harness.proc_state(target.pid)
        rec.kill()
        pytest.fail(f"record did not end when its target got SIGTERM (target state {state!r}: "
                    f"held in a tracing stop)")
    err = err.decode(errors="replace")
    target.proc.wait(10)
    assert rec.returncode == 0, err
    assert longest < LONGEST_STOP_ALLOWED, (
        f"a thread of the target sat in a tracing stop for {longest:.1f} s\n{err}")
    # Once, at most: at the end, when it did exit (SIGTERM).
    exits = re.findall(r"(\d+) x pid \d+ exited before it could be paused", err)
    assert all(int(n) <= 1 for n in exits), err
    assert 0 < worst_pause_us(err) < LONGEST_STOP_ALLOWED * 1e6, err
    assert out.stat().st_size > 0, "no samples recorded"


@pytest.mark.parametrize("how", ["idle", "pinned"])
def test_dump_of_a_starved_target_captures_every_thread_and_lets_it_go(how):
    target = harness.start_target([PYTHON, SPLIT, "{ready_fd}", "0", "--threads-sleeping", "2"])
    hogs = starve(target.pid, how)
    for _ in range(3):
        doc = harness.dump_json(target.pid)
        # A runnable thread is waited for, not given up on: all three stopped.
        assert len(doc["threads"]) == 3, doc
        for t in doc["threads"]:
            assert not any("not captured" in e for e in t["errors"]), t["errors"]
        stopped = {tid: s for tid, s in harness.thread_states(target.pid).items() if s in "tT"}
        assert not stopped, f"threads left stopped after the dump: {stopped}"
    for hog in hogs:
        hog.kill()


def hooked_stackpeek(args, stage):
    """stackpeek with the test hook at `stage`; returns (proc, write end)."""
    r, w = os.pipe()
    env = dict(os.environ, STACKPEEK_TEST_HOOK_FD=str(r), STACKPEEK_TEST_HOOK_AT=stage)
    proc = harness.spawn([harness.stackpeek_bin(), *map(str, args)], kind="stackpeek", env=env,
                         pass_fds=(r,), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(r)
    return proc, w


def at_hook(proc, stage, times=1, w=None):
    """Lets `times - 1` hook stops pass, and returns at the next one."""
    for i in range(times):
        harness.read_until_line(proc.stderr, f"stackpeek-test-hook: {stage}", timeout=60)
        if i + 1 < times:
            os.write(w, b"g")


def finish(proc, w, timeout=60):
    os.close(w)  # EOF: the hook is off from here on
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("stackpeek did not finish after the process it attached to exited")
    return out.decode(errors="replace"), err.decode(errors="replace")


def sleeper():
    return harness.start_target([PYTHON, "-c",
                                 "import os, sys, time\n"
                                 "os.write(int(sys.argv[1]), b'r')\n"
                                 "while True: time.sleep(100)\n", "{ready_fd}"])


@pytest.mark.parametrize("stage", ["seized", "interrupted"])
def test_dump_of_a_process_killed_between_interrupt_and_wait_reports_it_and_lets_go(stage):
    target = sleeper()
    dump, w = hooked_stackpeek(["dump", target.pid], stage)
    at_hook(dump, stage)
    os.kill(target.pid, signal.SIGKILL)
    _, err = finish(dump, w)
    assert dump.returncode in (3, 6), err  # no such process / a zombie
    assert re.search(r"exited|zombie|no process", err), err
    # The parent reaps it: the tracer let go of its exit.
    assert os.waitpid(target.pid, 0)[1] & 0x7f == signal.SIGKILL


@pytest.mark.parametrize("stage", ["seized", "interrupted"])
def test_record_ends_with_a_profile_when_its_target_dies_between_interrupt_and_wait(tmp_path,
                                                                                    stage):
    target = harness.start_target([PYTHON, SPLIT, "{ready_fd}", "0"])
    out = tmp_path / "p.folded"
    rec, w = hooked_stackpeek(["record", "--pid", target.pid, "--native", "-o", out], stage)
    at_hook(rec, stage, times=5, w=w)  # the up-front probe, then passes
    os.kill(target.pid, signal.SIGKILL)
    _, err = finish(rec, w)
    assert rec.returncode == 0, err
    assert out.stat().st_size > 0, err
    assert os.waitpid(target.pid, 0)[1] & 0x7f == signal.SIGKILL


THREAD_THAT_ENDS = """
import os, sys, threading, time
go_r, go_w = os.pipe()
def worker():
    os.read(go_r, 1)
t = threading.Thread(target=worker, name="ending")
t.start()
os.write(int(sys.argv[1]), (str(t.native_id) + " " + str(go_w) + "\\n").encode())
while True:
    time.sleep(100)
"""


# Seized but not yet interrupted: once interrupted, a thread can only stop
# (or die with its process, the case above), so this is where one ends.
@pytest.mark.parametrize("stage", ["seized"])
def test_a_thread_ending_between_seize_and_wait_leaves_the_others_dumped(stage):
    r, w = os.pipe()
    target = harness.spawn([PYTHON, "-c", THREAD_THAT_ENDS, str(w)], kind="target", pass_fds=(w,))
    os.close(w)
    tid, go = map(int, os.read(r, 64).split())
    os.close(r)
    dump, hook = hooked_stackpeek(["dump", "--format", "json", target.pid], stage)
    at_hook(dump, stage)
    # The worker ends while it is ours: it leaves a zombie only we can reap.
    with open(f"/proc/{target.pid}/fd/{go}", "wb", buffering=0) as pipe:
        pipe.write(b"x")
    harness.wait_until(lambda: harness.proc_state(target.pid, tid) in ("Z", "X", None), 20,
                       "the worker thread to end")
    out, err = finish(dump, hook)
    assert dump.returncode == 0, err
    tids = [t["tid"] for t in json.loads(out)["threads"]]
    assert tids == [target.pid], out
    harness.assert_running(target.pid)
    assert tid not in harness.task_ids(target.pid)


SOAK_TARGET = """
import os, sys, time
os.write(int(sys.argv[1]), b"r")
end = time.time() + float(sys.argv[2])
while time.time() < end:
    sum(range(1000))
os._exit(0)  # starved, the interpreter's teardown alone would take seconds
"""


def soak_runs():
    return int(os.environ.get("STACKPEEK_RECORD_SOAK_RUNS", "6"))


def one_soak_run(tmp_path, i, how):
    """One `record` (no --duration) of a target that exits on its own, under
    load; returns what the run showed of holding and pausing it."""
    out = tmp_path / f"p{i}.folded"
    if how == "command":  # record -- CMD: niced, so the hogs starve it
        rec = harness.spawn_stackpeek(["record", "--native", "-o", out, "--", "nice", "-n", "10",
                                       PYTHON, "-c", SOAK_TARGET, "-1", "0.4"])
        target_pid = int(harness.wait_until(
            lambda: (open(f"/proc/{rec.pid}/task/{rec.pid}/children").read().split() or [0])[0],
            30, "the recorded command to start"))
        watch = StopWatch(target_pid)
    else:
        target = harness.start_target([PYTHON, "-c", SOAK_TARGET, "{ready_fd}", "0.4"])
        target_pid = target.pid
        for tid in harness.task_ids(target.pid):
            if how == "idle":
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            else:
                os.sched_setaffinity(tid, {0})
        watch = StopWatch(target.pid)
        rec = harness.spawn_stackpeek(["record", "--pid", target.pid, "--native", "-o", out])
    watch.start()
    try:
        _, err = rec.communicate(timeout=60)
        ended = True
    except subprocess.TimeoutExpired:
        rec.kill()
        _, err = rec.communicate()
        ended = False
    longest = watch.stop()
    if how != "command":
        target.proc.wait(30)
    err = err.decode(errors="replace")
    exits = re.findall(r"(\d+) x pid \d+ exited before it could be paused", err)
    return {"how": how, "ended": ended, "rc": rec.returncode, "longest_stop_s": longest,
            "worst_pause_us": worst_pause_us(err),
            "spurious_exits": sum(max(0, int(n) - 1) for n in exits), "stderr": err}


def test_record_soak_on_exiting_targets_under_load(tmp_path):
    """`record` runs (scripts/stress: 1,000) against targets that exit on
    their own while CPU hogs load every core: starved at idle priority,
    pinned to a busy core, or started niced by `record -- CMD`."""
    runs = soak_runs()
    hogs = start_hogs(set(range(os.cpu_count())))
    started = time.monotonic()
    results = []
    for i in range(runs):
        results.append(one_soak_run(tmp_path, i, ("idle", "pinned", "command")[i % 3]))
    for hog in hogs:
        hog.kill()
    held = [r for r in results if not r["ended"] or r["longest_stop_s"] >= LONGEST_STOP_ALLOWED]
    absurd = [r for r in results if r["worst_pause_us"] >= LONGEST_STOP_ALLOWED * 1e6]
    failed = [r for r in results if r["rc"] != 0]
    spurious = sum(r["spurious_exits"] for r in results)
    pauses = sorted(r["worst_pause_us"] for r in results)
    figures = {"suite": "stress", "target": "record-soak", "runs": runs,
               "seconds": round(time.monotonic() - started, 1), "held": len(held),
               "absurd_pauses": len(absurd), "failed": len(failed),
               "spurious_exits": spurious, "load": os.getloadavg()[0],
               "worst_pause_us_median": pauses[len(pauses) // 2],
               "worst_pause_us_max": pauses[-1]}
    print(f"record soak: {figures}")
    record_figures(**figures)
    assert not held, f"targets held: {[(r['how'], r['longest_stop_s']) for r in held]}\n" \
                     f"{held[0]['stderr']}"
    assert not absurd, f"absurd pause figures: {absurd[0]['stderr']}"
    assert not failed, f"record failed: {failed[0]['stderr']}"
    assert spurious == 0, "a live target was reported as exited"
