"""`stackpeek record` on every interpreter: each sample against the oracle.

Why: a Python-only sample stops one thread, the GIL's last holder, and reads
the other threads' chains while they run without the GIL; it is redone with
every sampled thread stopped when the GIL changed hands meanwhile (see
src/python/frames/GilAnchor.cpp). These tests hold that shortcut to the target's
own view, sample by sample, on every interpreter found (pyharness):

- parked threads (stacks_target.py "blocking"): every sample of a parked
  thread has exactly the frames the target recorded of itself (file,
  function, line), and on 3.7+ about one thread is stopped per pause, while
  2.7 and 3.6 (no hand-over record to watch) stop every sampled thread;
- a thread that never stops running Python code ("churn", recursing to a
  depth that changes all the time): no sample of it is torn, each is a
  well-formed alternation churn_a/churn_b above churn_loop.
"""

import re

import harness
import pyharness

STOPPED = re.compile(r"([\d.]+) threads stopped on average")


def record_json(pid, out, *extra):
    res = harness.run_stackpeek(["record", "--pid", pid, "--idle", "--duration", "1.5",
                                 "--rate", "200", "-o", out, *extra])
    assert res.returncode == 0, "record failed (%d):\n%s" % (res.returncode, res.stderr)
    return res


def test_every_sample_of_a_parked_thread_matches_the_oracle(python, tmp_path):
    t = pyharness.start_scenario(python, "blocking", tmp_path)
    out = str(tmp_path / "p.json")
    res = record_json(t.pid, out)
    harness.assert_running(t.pid)
    exact = [ot for ot in t.oracle["threads"] if ot["exact"]]
    assert exact
    problems = pyharness.sample_problems(pyharness.samples_by_tid(out), exact)
    assert not problems, "\n".join(problems)
    if not t.oracle["gil_enabled"]:
        # Free-threaded, no GIL: parked threads are read while they sleep
        # (their CPU time checked unchanged across the read); only the first
        # pass, before the thread states are placed, stops them.
        pauses = re.search(r"target paused (\d+) times", res.stderr)
        assert pauses is None or int(pauses.group(1)) <= 3, res.stderr
        return
    stopped = STOPPED.search(res.stderr)
    assert stopped, res.stderr
    per_pause = float(stopped.group(1))
    if tuple(int(x) for x in t.oracle["version"].split(".")[:2]) >= (3, 7):
        assert per_pause < 1.5, "expected the GIL holder alone to be stopped:\n" + res.stderr
    else:
        assert per_pause >= len(exact), "2.7/3.6 stop every sampled thread:\n" + res.stderr


def churn_problem(stack, prefix="churn"):
    """None for a well-formed sample of the churning thread, else why not."""
    a, b, loop = prefix + "_a", prefix + "_b", prefix + "_loop"
    names = [f["function"].split(".")[-1] for f in stack]
    if loop not in names:
        return "no %s frame" % loop
    top = names[:names.index(loop)]  # empty: between two calls
    if top and top[-1] != a:
        return "%s does not call %s directly" % (loop, a)
    for inner, outer in zip(top, top[1:]):
        if {inner, outer} != {a, b}:
            return "%s and %s do not alternate" % (a, b)
    return None


def test_samples_of_a_thread_that_sleeps_and_wakes_are_never_torn(python, tmp_path):
    """A thread asleep most of the time that wakes every 0.2 ms to change
    its stack: on a free-threaded build it is read while it sleeps, so the
    check that it did not wake during the read must hold every time."""
    t = pyharness.start_scenario(python, "blink", tmp_path)
    blinker = [ot for ot in t.oracle["threads"] if not ot["exact"]]
    assert len(blinker) == 1
    out = str(tmp_path / "p.json")
    # The hook waits 1 ms before each such read: the thread, asleep for
    # 0.2 ms at a time, is certain to wake and change its stack meanwhile.
    res = harness.run_stackpeek(["record", "--pid", t.pid, "--idle", "--duration", "1.5",
                                 "--rate", "500", "-o", out],
                                env={"STACKPEEK_TEST_SLEEPER_READ_DELAY_US": "1000"})
    assert res.returncode == 0, res.stderr
    harness.assert_running(t.pid)
    samples = pyharness.samples_by_tid(out).get(blinker[0]["tid"], [])
    assert len(samples) >= 100, "too few samples of the blinking thread: %d" % len(samples)
    bad = [(churn_problem(s, "blink"), s) for s in samples if churn_problem(s, "blink")]
    assert not bad, "%d of %d samples torn, first: %s\n%r" % (
        len(bad), len(samples), bad[0][0], [f["function"] for f in bad[0][1]])


def test_samples_of_a_thread_running_python_are_never_torn(python, tmp_path):
    t = pyharness.start_scenario(python, "churn", tmp_path)
    churner = [ot for ot in t.oracle["threads"] if not ot["exact"]]
    assert len(churner) == 1
    out = str(tmp_path / "p.json")
    record_json(t.pid, out)
    harness.assert_running(t.pid)
    samples = pyharness.samples_by_tid(out).get(churner[0]["tid"], [])
    assert len(samples) >= 20, "too few samples of the churning thread: %d" % len(samples)
    bad = [(churn_problem(s), s) for s in samples if churn_problem(s)]
    assert not bad, "%d of %d samples torn, first: %s\n%r" % (
        len(bad), len(samples), bad[0][0], [f["function"] for f in bad[0][1]])


def test_gil_keeps_only_the_thread_holding_the_gil(python, tmp_path):
    """--gil --idle on the "busy" scenario: parked threads never hold the
    GIL, so every sample is of the spinning thread, on top of spin()."""
    t = pyharness.start_scenario(python, "busy", tmp_path)
    busy = [ot for ot in t.oracle["threads"] if not ot["exact"]]
    assert len(busy) == 1
    out = str(tmp_path / "p.json")
    if not t.oracle["gil_enabled"]:
        # A free-threaded build without its GIL: no thread holds one, and
        # --gil says so instead of recording nothing.
        res = harness.run_stackpeek(["record", "--pid", t.pid, "--duration", "0.2", "--gil",
                                     "-o", out])
        assert res.returncode == 2, (res.returncode, res.stderr)
        assert "free-threaded without one" in res.stderr and "PYTHON_GIL=1" in res.stderr, (
            res.stderr)
        harness.assert_running(t.pid)
        return
    record_json(t.pid, out, "--gil")
    harness.assert_running(t.pid)
    by_tid = pyharness.samples_by_tid(out)
    assert set(by_tid) == {busy[0]["tid"]}, "samples of threads not holding the GIL: %s" % sorted(by_tid)
    samples = by_tid[busy[0]["tid"]]
    assert len(samples) >= 20, len(samples)
    assert all(s and s[0]["function"].split(".")[-1] == "spin" for s in samples), samples[0]
