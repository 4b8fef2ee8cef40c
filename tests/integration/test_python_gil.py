"""GIL and garbage-collector states: stackpeek's `gil`/`gc` fields against the
target's own view.

tests/targets/python/gil_target.py runs under every interpreter found
(Debian's python3 and every pyenv build, 2.7-3.13) and puts threads in known
states, writing down from inside the process which thread is which:
  - waiting: the main thread holds the GIL forever (libc pause() through
    ctypes.PyDLL) while two threads that were spinning in Python wait for it;
  - gc: the main thread is inside gc.collect(), in a finalizer that spins in
    Python, while two threads block in read(2) with the GIL released.
Every version in SUPPORTED must report the state; a version left out of it
must report it as unknown (null), so no version passes silently. A
free-threaded build running without its GIL (3.13t, 3.14t) has no GIL state
at all: every thread's is null, and so is `gc` while a collection runs (no
holder tells which thread runs it).
"""

import os

import pytest

import harness
import pyharness


# Which versions can tell each state (see docs/python-versions.md).
GIL_WAIT_SUPPORTED = {"2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13",
                      "3.14", "3.15"}
GC_SUPPORTED = {"2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14",
                "3.15"}

# Versions whose thread states say they wait for the GIL (gil_requested).
GIL_REQUESTED = {"3.15"}

SYS_PAUSE = 34  # x86_64



def start(python, scenario, workdir):
    script = os.path.join(os.path.dirname(pyharness.target_script()), "gil_target.py")
    oracle_path = os.path.join(str(workdir), "oracle-%s-%d.json" % (scenario, harness.mark()))
    t = harness.start_target([python, script, scenario, oracle_path, "{ready_fd}"],
                             ready_timeout=90)
    import json
    with open(oracle_path) as f:
        t.oracle = json.load(f)
    assert t.oracle["pid"] == t.pid
    return t


def minor_version(oracle):
    return ".".join(oracle["version"].split(".")[:2])


def syscall_of(pid, tid):
    try:
        with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
            first = f.read().split()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.lstrip("-").isdigit() else None


def gil_states(dump, tids):
    by_tid = pyharness.threads_by_tid(dump)
    return [by_tid[tid].get("gil") for tid in tids]


def test_waiters_and_holder(python, tmp_path):
    t = start(python, "waiting", tmp_path)
    holder, waiters = t.oracle["holder"], t.oracle["waiters"]
    # The target cannot signal once it holds the GIL for good: wait for the
    # condition itself, the holder asleep in pause(2).
    harness.wait_until(lambda: syscall_of(t.pid, holder) == SYS_PAUSE, 30,
                       "the GIL holder to enter pause()")
    supported = minor_version(t.oracle) in GIL_WAIT_SUPPORTED
    # A waiter sleeps in a timed wait on the GIL's condition variable and wakes
    # every switch interval (5 ms) to ask for the GIL again, so one dump may
    # stop a waiter between two waits (not in the futex: "released"). Up to 3
    # dumps, at least one must show every waiter waiting; none may ever show a
    # waiter holding the GIL or the holder not holding it.
    if t.oracle["without_gil"]:
        by_tid = pyharness.threads_by_tid(harness.dump_json(t.pid))
        for tid in [holder] + waiters:
            assert by_tid[tid]["gil"] is None and by_tid[tid]["holds_gil"] is None, by_tid[tid]
        return
    seen = []
    for _ in range(3):
        dump = harness.dump_json(t.pid)
        by_tid = pyharness.threads_by_tid(dump)
        assert by_tid[holder]["gil"] == "held", by_tid[holder]
        assert by_tid[holder]["holds_gil"] is True
        states = gil_states(dump, waiters)
        for tid in waiters:
            assert by_tid[tid]["holds_gil"] is False, by_tid[tid]
        if not supported:
            assert states == [None, None], states
            break
        assert set(states) <= {"waiting", "released"}, states
        if minor_version(t.oracle) in GIL_REQUESTED:
            # The waiter's own gil_requested flag says it, between two
            # timed waits too: every dump shows it.
            assert states == ["waiting", "waiting"], states
        seen.append(states)
        if states == ["waiting", "waiting"]:
            break
    if supported:
        assert ["waiting", "waiting"] in seen, seen
    harness.assert_running(t.pid)


def test_text_output_names_the_waiters(python, tmp_path):
    t = start(python, "waiting", tmp_path)
    holder = t.oracle["holder"]
    harness.wait_until(lambda: syscall_of(t.pid, holder) == SYS_PAUSE, 30,
                       "the GIL holder to enter pause()")
    res = harness.run_stackpeek(["dump", t.pid])
    assert res.returncode == 0, res.stderr
    headers = [line for line in res.stdout.splitlines() if line.startswith("Thread ")]
    if t.oracle["without_gil"]:
        assert "free-threaded, GIL disabled" in res.stdout, res.stdout[:300]
        assert not [h for h in headers if "GIL" in h], headers
        return
    holder_line = [h for h in headers if h.startswith("Thread %d " % holder)]
    assert holder_line and "holds the GIL" in holder_line[0], headers
    if minor_version(t.oracle) in GIL_WAIT_SUPPORTED:
        # Any dump may catch a waiter between two waits; the holder never is.
        assert all("holds the GIL" not in h for h in headers if h not in holder_line), headers


def test_collector_is_the_finalizing_thread(python, tmp_path):
    t = start(python, "gc", tmp_path)
    collector, blocked = t.oracle["collector"], t.oracle["blocked"]
    if t.oracle["has_callbacks"]:
        assert t.oracle["verified_by_callbacks"], "the target's gc.callbacks disagree"
    supported = minor_version(t.oracle) in GC_SUPPORTED and not t.oracle["without_gil"]
    # The collector spins in Python and nothing else wants the GIL, but 2.7's
    # eval loop still releases and retakes it every 100 bytecodes, so a dump
    # may catch it between the two (not holding, so not collecting either).
    # Up to 3 dumps, text and JSON: one must show it holding the GIL and
    # collecting; none may show a blocked thread collecting.
    seen = []
    for _ in range(3):
        dump = harness.dump_json(t.pid)
        by_tid = pyharness.threads_by_tid(dump)
        frames = pyharness.python_frames(by_tid[collector])
        # Readiness is signalled from finish(), called by __del__: a dump may
        # still find the collector returning from it, but nowhere else.
        names = [f["function"] for f in frames[:2]]
        assert names and (names[0].endswith("__del__") or
                          names[:1] == ["finish"] and names[1].endswith("__del__")), names
        if not supported:
            assert all(by_tid[tid]["gc"] is None for tid in [collector] + blocked)
            return
        for tid in blocked:
            assert by_tid[tid]["gc"] is False, by_tid[tid]
            if minor_version(t.oracle) in GIL_WAIT_SUPPORTED:
                assert by_tid[tid]["gil"] == "released", by_tid[tid]
        seen.append((by_tid[collector]["gil"], by_tid[collector]["gc"]))
        if seen[-1] == ("held", True):
            break
    assert ("held", True) in seen, seen
    for _ in range(3):
        res = harness.run_stackpeek(["dump", t.pid])
        assert res.returncode == 0, res.stderr
        if "holds the GIL, collecting garbage" in res.stdout:
            break
    assert "holds the GIL, collecting garbage" in res.stdout, res.stdout
    harness.assert_running(t.pid)


def test_nothing_collects_when_idle(python, tmp_path):
    # The waiting scenario never collects (and 2.7/3.6 read a static flag
    # found by name: it must not read something else as "collecting").
    t = start(python, "waiting", tmp_path)
    harness.wait_until(lambda: syscall_of(t.pid, t.oracle["holder"]) == SYS_PAUSE, 30,
                       "the GIL holder to enter pause()")
    dump = harness.dump_json(t.pid)
    by_tid = pyharness.threads_by_tid(dump)
    want = False if minor_version(t.oracle) in GC_SUPPORTED else None
    for tid in [t.oracle["holder"]] + t.oracle["waiters"]:
        assert by_tid[tid]["gc"] is want, by_tid[tid]
