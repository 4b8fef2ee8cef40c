"""Safety of the target while stackpeek holds it stopped.

Why: stackpeek ptrace-stops a production process; whatever happens to
stackpeek mid-dump (SIGINT/SIGTERM/SIGHUP, SIGKILL) the target must resume
untouched, a target that dies mid-dump must not hang stackpeek, and a target
already owned by another debugger must be refused (exit 5) without harm.  The
test hook STACKPEEK_TEST_HOLD_PAUSE=1 makes stackpeek announce
"stackpeek: test hold: target paused" on stderr and wait with the target
stopped, which gives the tests a deterministic point to strike.  "Resumed" is
checked in /proc (no thread in 't'/'T') and by the target's ticker thread
making progress; "untouched" by the target's count of blocking calls that
returned (must stay 0) and by a normal dump succeeding afterwards.
"""

import os
import signal
import subprocess

import pytest

import harness

HOLD_LINE = "stackpeek: test hold: target paused"
HOLD_ENV = {"STACKPEEK_TEST_HOLD_PAUSE": "1"}


@pytest.fixture
def target(tmp_path):
    return harness.start_native_target("pie", tmp_path)


def hold(target):
    """Start a held dump of target; return (stackpeek Popen, stderr so far)."""
    sp = harness.spawn_stackpeek(["dump", "--format", "json", target.pid], env=HOLD_ENV)
    try:
        err = harness.read_until_line(sp.stderr, HOLD_LINE, timeout=60)
    except (TimeoutError, EOFError) as e:
        sp.kill()
        raise AssertionError(f"stackpeek never held the target (exit {sp.poll()}): {e}")
    return sp, err


def assert_all_traced_stopped(target):
    states = harness.thread_states(target.pid)
    assert set(states) == {t["tid"] for t in target.oracle["threads"]}
    assert all(s == "t" for s in states.values()), f"not every thread is in tracing stop: {states}"


def assert_resumed(target, check_spurious=True):
    harness.assert_running(target.pid)
    target.stats.wait_ticks_past(target.stats.ticks() + 5)
    if check_spurious:
        assert target.stats.spurious() == 0, "a blocking call in the target returned during the dump"
    # No tracer left behind: a fresh dump works.
    doc = harness.dump_json(target.pid)
    assert {t["tid"] for t in doc["threads"]} == {t["tid"] for t in target.oracle["threads"]}
    harness.assert_running(target.pid)


def test_hold_stops_every_thread_and_freezes_the_ticker(target):
    sp, _ = hold(target)
    before = target.stats.ticks()
    assert_all_traced_stopped(target)
    assert target.stats.ticks() == before, "the ticker advanced while the target was held"
    sp.send_signal(signal.SIGTERM)
    sp.wait(timeout=30)
    assert_resumed(target)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_signal_mid_dump_detaches_and_dies_of_it(target, sig):
    sp, _ = hold(target)
    assert_all_traced_stopped(target)
    frozen = target.stats.ticks()
    sp.send_signal(sig)
    try:
        code = sp.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"stackpeek did not exit within 30s of {sig.name}")
    assert code == -sig, f"stackpeek exited {code}, expected death by {sig.name} ({-sig})"
    assert_resumed(target)
    assert target.stats.ticks() > frozen


def test_sigkill_mid_dump_lets_the_target_go(target):
    sp, _ = hold(target)
    assert_all_traced_stopped(target)
    frozen = target.stats.ticks()
    sp.send_signal(signal.SIGKILL)
    assert sp.wait(timeout=30) == -signal.SIGKILL
    # The kernel detached; nothing stackpeek could do about interrupted calls.
    assert_resumed(target, check_spurious=False)
    assert target.stats.ticks() > frozen


def test_target_dies_while_held(target):
    sp, _ = hold(target)
    target.proc.send_signal(signal.SIGKILL)
    try:
        code = sp.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("stackpeek hung after its target died mid-dump")
    err = sp.stderr.read().decode(errors="replace")
    assert code == 1, f"exit {code}, expected 1 (dump incomplete)\nstderr:\n{err}"
    assert any(line.startswith("stackpeek: ") and "test hold" not in line for line in err.splitlines()), \
        f"no error line on stderr:\n{err}"
    target.proc.wait(timeout=30)


def test_already_traced_target_is_refused(target):
    holder = harness.start_target([harness.target_path("ptrace_holder"), target.pid, "{ready_fd}"])
    with open(f"/proc/{target.pid}/status") as f:
        tracer = next(int(line.split()[1]) for line in f if line.startswith("TracerPid:"))
    assert tracer == holder.pid
    res = harness.run_stackpeek(["dump", "--format", "json", target.pid], timeout=60)
    assert res.returncode == 5, f"exit {res.returncode}, expected 5\nstderr:\n{res.stderr}"
    assert res.stderr.splitlines()[0].startswith("stackpeek: "), res.stderr
    harness.assert_running(target.pid)
    target.stats.wait_ticks_past(target.stats.ticks() + 5)
    # Once the other debugger is gone, stackpeek can dump it.
    holder.kill()
    harness.wait_until(lambda: _tracer_pid(target.pid) == 0, 10, "the holder to detach")
    doc = harness.dump_json(target.pid)
    assert doc["pid"] == target.pid
    harness.assert_running(target.pid)


def _tracer_pid(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("TracerPid:"))


def test_no_stackpeek_left_behind_after_normal_dump(target):
    """A normal dump returns and leaves the target running, not traced."""
    doc = harness.dump_json(target.pid)
    assert doc["pid"] == target.pid
    assert _tracer_pid(target.pid) == 0
    for tid in harness.task_ids(target.pid):
        with open(f"/proc/{target.pid}/task/{tid}/status") as f:
            assert "TracerPid:\t0\n" in f.read(), f"thread {tid} is still traced"
    assert_resumed(target)
