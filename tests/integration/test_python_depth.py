"""Python depth: `dump --locals`, handled exceptions and `dump --async` against
the target's own view.

Each test starts tests/targets/python/depth_target.py under one interpreter
(Debian's python3 and every pyenv build, 2.7-3.13; asyncio 3.8+), waits for
its readiness byte and compares stackpeek's JSON with the oracle the target
wrote in-process:
  - locals: every local of the frame `holder` (None, bools, small and big
    ints, floats, str of every storage kind with escapes and quotes, bytes,
    tuples, a 10,000-element list, a self-referencing list, a dict with
    non-string keys, sets, a closure cell, an unset local, other objects):
    repr and type, with reprs computed by the target's reference of the
    bounding rules (itself checked against repr());
  - exceptions: threads in except/finally blocks; the chain (cause and
    context), each entry's `Type: message` line as traceback prints it and
    its traceback frames (file, function, line);
  - asyncio: 1,000 tasks in a gather tree three levels deep, a TaskGroup
    (3.11+), a task waiting on work of a second loop in another thread, and
    tasks awaiting inside async generators (async for, aclose): each task's
    name, state, loop thread, coroutine chain (through the generators), the
    locals of every coroutine frame (with --locals) and awaiters; with C
    tasks, with pure-Python tasks (asyncio.tasks._PyTask, state in instance
    attributes), and without the _asyncio module.
The text output is checked for the same facts in Python's own wording.
"""

import os

import pytest

import harness
import pyharness




def target_script():
    return os.path.join(os.path.dirname(pyharness.target_script()), "depth_target.py")


def start(python, scenario, workdir):
    oracle_path = os.path.join(str(workdir), "oracle-%s-%d.json" % (scenario, harness.mark()))
    t = harness.start_target([python, target_script(), scenario, oracle_path, "{ready_fd}"],
                             ready_timeout=120)
    import json
    with open(oracle_path) as f:
        t.oracle = json.load(f)
    assert t.oracle["pid"] == t.pid
    assert t.oracle["settled"], "target threads never came to rest"
    return t


def version_of(oracle):
    return tuple(int(x) for x in oracle["version"].split(".")[:2])


def records(oracle, kind):
    return [r for r in oracle["records"] if r["kind"] == kind]


def python_frames(thread):
    return [f for f in thread["frames"] if f["kind"] == "python"]


def locals_problems(got, want, where):
    """Differences between a frame's dumped locals and the oracle's (a name
    the oracle maps to None was assigned after its snapshot: not compared)."""
    problems = []
    for name, w in sorted(want.items()):
        if w is None:
            continue
        if name not in got:
            problems.append("%s: %s: missing" % (where, name))
        elif got[name] != w:
            problems.append("%s: %s:\n  got  %r\n  want %r" % (where, name, got[name], w))
    return problems


def frame_positions(frames):
    return [dict((k, f[k]) for k in ("file", "function", "line")) for f in frames]


def test_locals_match_oracle(python, tmp_path):
    t = start(python, "locals", tmp_path)
    dump = harness.dump_json(t.pid, "--locals")
    by_tid = pyharness.threads_by_tid(dump)
    (rec,) = records(t.oracle, "locals")
    frames = [f for f in python_frames(by_tid[rec["tid"]]) if f["function"] == rec["function"]]
    assert len(frames) == 1, [f["function"] for f in python_frames(by_tid[rec["tid"]])]
    problems = locals_problems(frames[0]["locals"], rec["locals"], rec["function"])
    assert not problems, "\n".join(problems)
    harness.assert_running(t.pid)


def test_locals_text_output(python, tmp_path):
    t = start(python, "locals", tmp_path)
    out = harness.run_stackpeek(["dump", "--locals", str(t.pid)]).stdout
    assert "    big_list = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...(9990 more)]\n" in out
    assert "    selfref = [1, 2, [...]]\n" in out
    assert "    late = <unset>\n" in out


def test_no_locals_without_the_flag(python, tmp_path):
    t = start(python, "locals", tmp_path)
    dump = harness.dump_json(t.pid)
    assert all("locals" not in f for th in dump["threads"] for f in th["frames"])


def chain_of(exc):
    out = []
    while exc is not None:
        out.append(exc)
        nxt = None
        for relation in ("cause", "context"):
            if relation in exc:
                nxt = exc[relation]
                out[-1] = dict(exc, next_relation=relation)
        exc = nxt
    return out


def final_line(e):
    return e["type"] + (": " + e["message"] if e["message"] else "")


def test_handled_exceptions_match_oracle(python, tmp_path):
    t = start(python, "exceptions", tmp_path)
    dump = harness.dump_json(t.pid)
    by_tid = pyharness.threads_by_tid(dump)
    problems = []
    for rec in records(t.oracle, "exception"):
        got = chain_of(by_tid[rec["tid"]]["handling_exception"])
        # The oracle lists the chain most recent first, like stackpeek.
        want = rec["chain"]
        if len(got) != len(want):
            problems.append("thread %d: chain of %d, want %d: %r" % (
                rec["tid"], len(got), len(want), [final_line(g) for g in got]))
            continue
        for g, w in zip(got, want):
            if final_line(g) != w["final_line"]:
                problems.append("%r != %r" % (final_line(g), w["final_line"]))
            frames = frame_positions(g["traceback"])
            if frames != w["traceback"]:
                problems.append("%s traceback:\n  got  %r\n  want %r" % (
                    w["final_line"], frames, w["traceback"]))
            if g.get("next_relation") != w.get("next_relation"):
                problems.append("%s: chained as %r, want %r" % (
                    w["final_line"], g.get("next_relation"), w.get("next_relation")))
    assert not problems, "\n".join(problems)


def test_handled_exception_text_output(python, tmp_path):
    t = start(python, "exceptions", tmp_path)
    out = harness.run_stackpeek(["dump", str(t.pid)]).stdout
    assert "  ValueError: plain message\n" in out
    if version_of(t.oracle) >= (3, 0):
        assert "The above exception was the direct cause of the following exception:" in out
        assert "During handling of the above exception, another exception occurred:" in out
        assert "RuntimeError: ('outermost', 42)" in out


def require_asyncio(python):
    import subprocess
    out = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2] >= (3, 8))"],
                         capture_output=True, text=True, timeout=60).stdout.strip()
    if out != "True":
        pytest.skip("asyncio tasks need CPython 3.8+")


@pytest.mark.parametrize("scenario", ["asyncio", "asyncio_pytask", "asyncio_noaccel"])
def test_asyncio_tasks_match_oracle(python, scenario, tmp_path):
    require_asyncio(python)
    t = start(python, scenario, tmp_path)
    assert t.oracle["pure_python"] == (scenario != "asyncio"), t.oracle["task_classes"]
    dump = harness.dump_json(t.pid, "--async", "--locals")
    assert dump["asyncio"] is not None, dump["errors"]
    got = {}
    for loop in dump["asyncio"]["loops"]:
        for task in loop["tasks"]:
            got[task["id"]] = dict(task, thread=loop["thread"])
    problems = []
    want_tasks = t.oracle["tasks"]
    assert len(want_tasks) >= 1000
    for w in want_tasks:
        g = got.get(w["id"])
        if g is None:
            problems.append("task %s (%s) missing" % (w["id"], w["name"]))
            continue
        stack, want_stack = frame_positions(g["stack"]), frame_positions(w["stack"])
        for key, gv, wv in (("name", g["name"], w["name"]), ("state", g["state"], w["state"]),
                            ("thread", g["thread"], w["thread"]), ("stack", stack, want_stack),
                            ("awaited_by", sorted(g["awaited_by"]), w["awaited_by"])):
            if gv != wv:
                problems.append("task %s %s: got %r, want %r" % (w["name"], key, gv, wv))
        if stack == want_stack:
            for gf, wf in zip(g["stack"], w["stack"]):
                problems += locals_problems(gf.get("locals", {}), wf["locals"],
                                            "task %s %s" % (w["name"], gf["function"]))
    extra = set(got) - set(w["id"] for w in want_tasks) - set(
        i for i, g in got.items() if g["name"] == "oracle")
    if extra:
        problems.append("unexpected tasks: %r" % sorted(got[i]["name"] for i in extra))
    assert not problems, "\n".join(problems[:40])
    names = dict((w["name"], w["id"]) for w in want_tasks)
    assert names["top"] in got[names["mid-3"]]["awaited_by"]
    # The oracle's chains do descend into the async generators.
    consumer = [f["function"] for f in got[names["agen-consumer"]]["stack"]]
    assert consumer[:3] == ["agen_consumer", "outer_ticks", "inner_ticks"], consumer
    closer = [f["function"] for f in got[names["agen-closer"]]["stack"]]
    assert closer[:2] == ["agen_closer", "closing_ticks"], closer
    if version_of(t.oracle) >= (3, 11):
        assert got[names["tg-child-1"]]["awaited_by"] == [names["tg-parent"]]
    holder = got[names["locals-holder"]]["stack"][0]["locals"]
    assert holder["late"]["repr"] == "<unset>" and "captured" in holder, holder
    harness.assert_running(t.pid)


# CPython 3.14+ reads the same task lists from outside itself (what `python
# -m asyncio ps PID` prints): a second oracle, written by CPython's authors.
CPYTHON_TASK_TABLE = """
import json, sys
from asyncio import tools
rows = tools.build_task_table(tools.get_all_awaited_by(int(sys.argv[1])))
print(json.dumps([[str(c) for c in r] for r in rows]))
"""


def test_asyncio_tasks_match_cpythons_own_reader(python, tmp_path):
    t = start(python, "asyncio", tmp_path) if version_at_least(python, (3, 14)) else None
    if t is None:
        pytest.skip("CPython reads tasks from outside only from 3.14 (asyncio.tools)")
    res = harness.run_stackpeek(["dump", "--async", "--format", "json", t.pid])
    assert res.returncode == 0, res.stderr
    import json
    dump = json.loads(res.stdout)
    ours = {}
    for loop in dump["asyncio"]["loops"]:
        for task in loop["tasks"]:
            ours[task["id"]] = task
    import subprocess
    out = subprocess.run([python, "-c", CPYTHON_TASK_TABLE, str(t.pid)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    theirs = {}
    for _tid, task_id, name, _stack, _chain, _awaiter_name, awaiter_id in rows:
        entry = theirs.setdefault(task_id, {"name": name, "awaited_by": set()})
        if awaiter_id != "0x0":
            entry["awaited_by"].add(awaiter_id)
    assert len(theirs) >= 1000
    problems = []
    for task_id, want in theirs.items():
        got = ours.get(task_id)
        if got is None:
            problems.append("task %s (%s) missing" % (task_id, want["name"]))
        elif got["name"] != want["name"] or set(got["awaited_by"]) != want["awaited_by"]:
            problems.append("task %s: got %r awaited by %r, CPython says %r awaited by %r" % (
                task_id, got["name"], sorted(got["awaited_by"]), want["name"],
                sorted(want["awaited_by"])))
    # CPython's reader can miss a task the in-process oracle lists (3.14.7
    # and 3.15.2 miss the task run_coroutine_threadsafe put on the second
    # loop); one neither lists is an error.
    extra = set(ours) - set(theirs) - set(w["id"] for w in t.oracle["tasks"])
    if extra:
        problems.append("tasks no oracle lists: %r" % sorted(ours[i]["name"] for i in extra))
    assert not problems, "\n".join(problems[:40])


def version_at_least(python, wanted):
    import subprocess
    out = subprocess.run([python, "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=60).stdout.split()
    return tuple(int(x) for x in out) >= wanted


def test_asyncio_text_tree(python, tmp_path):
    require_asyncio(python)
    t = start(python, "asyncio", tmp_path)
    out = harness.run_stackpeek(["dump", "--async", str(t.pid)]).stdout
    assert "(T) top [pending]" in out
    # mid-0 hangs one level below top, whose coroutine line precedes it.
    top_line = next(l for l in out.splitlines() if "(T) top [pending]" in l)
    mid_line = next(l for l in out.splitlines() if "(T) mid-0 [pending]" in l)
    assert mid_line.index("(T)") == top_line.index("(T)") + 4
    assert "(T) leaf-9-98 [pending]" in out


def locals_under_frame_line(lines, task_label, function):
    """The `name = repr` lines below `function`'s line in the tree under the
    task labelled `task_label`, and that frame line."""
    start = next(i for i, l in enumerate(lines) if task_label in l)
    i = next(i for i in range(start + 1, len(lines)) if (" %s " % function) in lines[i])
    branch = lines[i].index("── ") - 1  # where the frame's ├── or └── begins
    below = lines[i][:branch] + ("│   " if lines[i][branch] == "├" else "    ") + "    "
    found = []
    for line in lines[i + 1:]:
        if not line.startswith(below) or line[len(below)] == " ":
            break
        found.append(line[len(below):])
    return found, lines[i]


def test_asyncio_text_tree_with_locals(python, tmp_path):
    require_asyncio(python)
    t = start(python, "asyncio", tmp_path)
    out = harness.run_stackpeek(["dump", "--async", "--locals", str(t.pid)]).stdout
    lines = out.splitlines()
    (want,) = [w for w in t.oracle["tasks"] if w["name"] == "locals-holder"]
    shown = []
    for frame in want["stack"]:
        found, frame_line = locals_under_frame_line(lines, "(T) locals-holder [pending]",
                                                    frame["function"])
        expected = ["%s = %s" % (n, v["repr"]) for n, v in frame["locals"].items()]
        assert sorted(found) == sorted(expected), (frame_line, found)
        shown += found
    assert "order = {'id': 1017, 'items': {'book': 12.5, 'pen': 1.25}}" in shown
    assert "late = <unset>" in shown
