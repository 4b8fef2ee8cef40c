"""Python stacks: stackpeek's decoded CPython frames against the target's own view.

Each test starts tests/targets/python/stacks_target.py under one interpreter
(Debian's python3, every pyenv build 2.7-3.13, and the 3.13t, 3.14, 3.14t,
3.14-static and 3.15 builds under /opt/cpython), waits for its readiness
byte, dumps it with `stackpeek dump --format json` and compares, thread by
thread (matched on the OS tid), the Python frames with the oracle the target
wrote: file, function (co_qualname on 3.11+), line, and on 3.11+ column,
end_line and end_column. Scenarios cover blocking calls (sleep, lock, queue,
socket accept), callbacks from C (sorted key=, map), generators, coroutines,
methods/nested functions/lambdas, exec'd code, non-ASCII names and files, an
except block, module-level code, 500-deep recursion, 50 threads, the GIL
holder, and torn reads of a thread whose stack changes constantly.
"""

import os

import pytest

import harness
import pyharness




def has_columns(version):
    major, minor = (int(x) for x in version.split(".")[:2])
    return (major, minor) >= (3, 11)


def check_exact_threads(dump, oracle):
    by_tid = pyharness.threads_by_tid(dump)
    problems = []
    for ot in oracle["threads"]:
        if not ot["exact"]:
            continue
        dumped = by_tid.get(ot["tid"])
        if dumped is None:
            problems.append("thread %s (%s) missing from the dump" % (ot["tid"], ot["name"]))
            continue
        diff = pyharness.compare_thread(dumped, ot, has_columns(oracle["version"]))
        if diff:
            problems.append(diff)
        if dumped.get("python_thread_name") is not None:
            if dumped["python_thread_name"] != ot["name"]:
                problems.append("thread %s: name %r, want %r" % (
                    ot["tid"], dumped["python_thread_name"], ot["name"]))
        if dumped.get("holds_gil"):
            problems.append("thread %s is parked but reported holding the GIL" % ot["tid"])
    assert not problems, "\n\n".join(problems)


def check_python_info(dump, oracle):
    assert dump["python"] is not None, "no Python runtime detected"
    assert dump["python"]["implementation"] == "cpython"
    assert dump["python"]["version"] == oracle["version"]


@pytest.mark.parametrize("scenario", ["blocking", "deep", "many"])
def test_parked_threads_match_oracle(python, scenario, tmp_path):
    t = pyharness.start_scenario(python, scenario, tmp_path)
    dump = harness.dump_json(t.pid)
    check_python_info(dump, t.oracle)
    check_exact_threads(dump, t.oracle)
    harness.assert_running(t.pid)


def test_names_are_read_for_every_thread(python, tmp_path):
    t = pyharness.start_scenario(python, "blocking", tmp_path)
    dump = harness.dump_json(t.pid)
    by_tid = pyharness.threads_by_tid(dump)
    for ot in t.oracle["threads"]:
        assert by_tid[ot["tid"]].get("python_thread_name") == ot["name"], ot["tid"]


def test_native_merge_keeps_python_frames_in_order(python, tmp_path):
    t = pyharness.start_scenario(python, "blocking", tmp_path)
    dump = harness.dump_json(t.pid, "--native")
    check_exact_threads(dump, t.oracle)
    by_tid = pyharness.threads_by_tid(dump)
    for ot in t.oracle["threads"]:
        thread = by_tid[ot["tid"]]
        kinds = [f["kind"] for f in thread["frames"]]
        assert "native" in kinds, "no native frames for thread %s with --native" % ot["tid"]
        # Spliced in, not appended: the thread's entry point (_start,
        # clone) stays outermost and the blocking call innermost, also on a
        # stripped interpreter (Debian's 3.15), and nothing was left unmerged.
        assert kinds[0] == "native" and kinds[-1] == "native", kinds
        unmerged = [e for e in thread.get("errors", []) if "cannot merge" in e]
        assert not unmerged, unmerged


def check_no_gil(dump, oracle):
    """A free-threaded build without its GIL: no thread has a GIL state."""
    assert dump["python"]["free_threaded"] is True
    assert dump["python"]["gil_enabled"] is False
    with_state = [(t["tid"], t.get("gil"), t.get("holds_gil")) for t in dump["threads"]
                  if t.get("gil") is not None or t.get("holds_gil") is not None]
    assert not with_state, with_state


def test_gil_holder_is_the_busy_thread(python, tmp_path):
    t = pyharness.start_scenario(python, "busy", tmp_path)
    if not t.oracle["gil_enabled"]:
        dump = harness.dump_json(t.pid)
        check_exact_threads(dump, t.oracle)
        check_no_gil(dump, t.oracle)
        return
    assert harness.dump_json(t.pid)["python"]["free_threaded"] is t.oracle["free_threaded"]
    busy = [ot for ot in t.oracle["threads"] if not ot["exact"]]
    assert len(busy) == 1
    busy_tid = busy[0]["tid"]
    seen_holding = False
    for _ in range(5):
        dump = harness.dump_json(t.pid)
        check_exact_threads(dump, t.oracle)  # idle threads: exact and not holding
        thread = pyharness.threads_by_tid(dump)[busy_tid]
        frames = pyharness.python_frames(thread)
        assert frames and frames[0]["function"] == "spin", frames[:2]
        # Busy means not idle, unless another thread had the CPU then: right
        # after readiness the oracle thread may still be finishing, and the
        # spinner waits for the GIL meanwhile (asleep in a futex).
        others_running = any(t["state"] == "running" for t in dump["threads"]
                             if t["tid"] != busy_tid)
        if thread.get("idle") is not None and not others_running:
            assert thread["idle"] is False, (thread.get("gil"), thread.get("state"))
        if thread.get("holds_gil"):
            seen_holding = True
            break
    assert seen_holding, "the CPU-bound thread was never reported as the GIL holder"


def test_free_threaded_gil_enabled_at_run_time(python, tmp_path):
    """PYTHON_GIL=1 turns a free-threaded build's GIL back on: then it has
    a holder again, the busy thread."""
    env = dict(os.environ, PYTHON_GIL="1")
    t = pyharness.start_scenario(python, "busy", tmp_path, env=env)
    if not t.oracle["free_threaded"]:
        pytest.skip("%s is not a free-threaded build" % python)
    assert t.oracle["gil_enabled"] is True
    busy_tid = [ot for ot in t.oracle["threads"] if not ot["exact"]][0]["tid"]
    holders = set()
    for _ in range(5):
        dump = harness.dump_json(t.pid)
        assert dump["python"]["free_threaded"] is True
        assert dump["python"]["gil_enabled"] is True
        check_exact_threads(dump, t.oracle)
        holders |= set(th["tid"] for th in dump["threads"] if th.get("holds_gil"))
        if busy_tid in holders:
            break
    assert busy_tid in holders, holders


CHURN_FUNCTIONS = {"churn_a", "churn_b"}
CHURN_BOTTOM = ["churn_loop"]


def check_churn_thread(thread, script):
    """A consistent stack, or one that says it is partial; never garbage."""
    frames = pyharness.python_frames(thread)
    partial = bool(thread.get("errors")) or any(f.get("error") for f in frames)
    good = [f for f in frames if not f.get("error")]
    for f in good:
        assert isinstance(f.get("line"), int) and f["line"] > 0, f
        assert f.get("file"), f
        assert f.get("function"), f
    names = [f["function"].split(".")[-1] for f in good]
    if partial:
        return
    # Whole stack: zero or more churn frames, then churn_loop and Thread code.
    i = 0
    while i < len(names) and names[i] in CHURN_FUNCTIONS:
        assert good[i]["file"] == script, good[i]
        i += 1
    assert names[i:i + 1] == CHURN_BOTTOM, names
    assert names[-1] == "_bootstrap" or names[-1] == "__bootstrap", names


def test_torn_reads_never_produce_garbage(python, tmp_path):
    t = pyharness.start_scenario(python, "churn", tmp_path)
    churn = [ot for ot in t.oracle["threads"] if not ot["exact"]]
    assert len(churn) == 1
    script = [f for f in churn[0]["frames"] if f["function"].endswith("churn_loop")][0]["file"]
    for _ in range(500):
        dump = harness.dump_json(t.pid)
        thread = pyharness.threads_by_tid(dump).get(churn[0]["tid"])
        assert thread is not None
        check_churn_thread(thread, script)
    harness.assert_running(t.pid)


def test_second_uninitialised_libpython_is_ignored(python, tmp_path):
    t = pyharness.start_scenario(python, "dlopen", tmp_path)
    if not t.oracle.get("second_libpython"):
        pytest.skip("%s links libpython statically: nothing to map twice" % python)
    maps = open("/proc/%d/maps" % t.pid).read()
    assert t.oracle["second_libpython"] in maps
    dump = harness.dump_json(t.pid)
    check_python_info(dump, t.oracle)
    check_exact_threads(dump, t.oracle)
