"""End-to-end tests of `stackpeek dump` on native (C++) processes.

Why: this is the product's core promise — the exact stacks of every thread of
a running -O2, frame-pointer-less binary, symbolized down to inlined frames
and source lines, for PIE, non-PIE and stripped (separate build-id debug info)
executables, with the target left running as before.  Every expectation comes
from the oracle the target (tests/targets/native_target.cpp) writes about
itself: its tids, thread names, chains, call-site lines and inlined frames.
Also covers the text format, several PIDs in one call, and the documented
exit statuses of the command line.
"""

import json
import os
import re
import subprocess
import types

import pytest

import harness

FRAME_KEYS = {"kind", "address", "function", "module", "module_offset", "file", "line", "column",
              "inlined"}
HEX = re.compile(r"^0x[0-9a-fA-F]+$")


# ----------------------------------------------------------------- helpers


def is_libc(frame):
    module = frame.get("module") or ""
    return re.match(r"^libc([.-].*)?\.so(\.\d+)*$", os.path.basename(module)) is not None


def same_file(reported, expected):
    if not reported:
        return False
    if os.path.isabs(reported):
        return os.path.realpath(reported) == os.path.realpath(expected)
    return expected.endswith("/" + reported) or os.path.basename(reported) == os.path.basename(expected)


def describe(frames, limit=40):
    lines = []
    for i, f in enumerate(frames[:limit]):
        where = f"{f.get('file')}:{f.get('line')}" if f.get("file") else "?"
        lines.append(f"  #{i} {f.get('address')} {f.get('function')} {'[inlined] ' if f.get('inlined') else ''}"
                     f"at {where} in {os.path.basename(f.get('module') or '?')}")
    if len(frames) > limit:
        lines.append(f"  ... {len(frames) - limit} more")
    return "\n".join(lines)


def chain_problems(thread, expected, executable):
    """Compare a dumped thread against its oracle chain; returns a list of problems."""
    frames = thread["frames"]
    first = expected[0]["function"]
    idx = next((i for i, f in enumerate(frames) if f.get("function") == first), None)
    if idx is None:
        return [f"innermost expected function {first!r} not found in frames:\n{describe(frames)}"]
    problems = []
    if idx == 0:
        problems.append("no libc frame before the first own function (the thread blocks inside libc)")
    for i, f in enumerate(frames[:idx]):
        if not is_libc(f):
            problems.append(f"frame #{i} before {first!r} is not in libc: {f.get('function')} in {f.get('module')}")
    got = frames[idx:idx + len(expected)]
    if len(got) < len(expected):
        problems.append(f"only {len(got)} frames from {first!r} on, expected at least {len(expected)}")
    exe = os.path.realpath(executable)
    for k, (f, e) in enumerate(zip(got, expected)):
        n = idx + k
        if f.get("function") != e["function"]:
            problems.append(f"frame #{n}: function {f.get('function')!r}, expected {e['function']!r}")
            break  # everything after a wrong frame is noise
        if bool(f.get("inlined")) != e["inlined"]:
            problems.append(f"frame #{n} {e['function']}: inlined={f.get('inlined')}, expected {e['inlined']}")
        if f.get("line") != e["line"]:
            problems.append(f"frame #{n} {e['function']}: line {f.get('line')}, expected {e['line']}")
        if not same_file(f.get("file"), e["file"]):
            problems.append(f"frame #{n} {e['function']}: file {f.get('file')!r}, expected {e['file']!r}")
        if not f.get("module") or os.path.realpath(f["module"]) != exe:
            problems.append(f"frame #{n} {e['function']}: module {f.get('module')!r}, expected {exe!r}")
        if e["inlined"] and n + 1 < len(frames) and frames[n + 1].get("address") != f.get("address"):
            problems.append(f"frame #{n} {e['function']} is inlined but its address {f.get('address')} differs "
                            f"from its caller's {frames[n + 1].get('address')}")
    if problems:
        problems.append("frames:\n" + describe(frames, limit=max(40, idx + min(len(expected), 12))))
    return problems


def oracle_threads(target, blocked_only=False):
    return [t for t in target.oracle["threads"] if t["blocked"] or not blocked_only]


def by_tid(doc):
    return {t["tid"]: t for t in doc["threads"]}


def assert_target_undisturbed(target):
    """The target runs after stackpeek exits: no stopped thread, the ticker ticks."""
    harness.assert_running(target.pid)
    target.stats.wait_ticks_past(target.stats.ticks() + 3)
    assert target.stats.spurious() == 0, "a blocking call in the target returned (EINTR or similar)"


# ----------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=harness.NATIVE_VARIANTS)
def dumped(request, tmp_path_factory):
    """One target per variant, dumped once (JSON, all frames)."""
    since = harness.mark()
    t = harness.start_native_target(request.param, tmp_path_factory.mktemp(request.param))
    doc = harness.dump_json(t.pid, "--max-frames", "4096", *harness.native_dump_args(t))
    yield types.SimpleNamespace(target=t, doc=doc)
    harness.cleanup(since)


# ----------------------------------------------------------------- JSON dump, per variant


def test_variant_is_what_it_claims(dumped):
    """Guards the build: PIE is ET_DYN, non-PIE ET_EXEC, stripped has no DWARF/.symtab."""
    exe = dumped.target.oracle["executable"]
    with open(exe, "rb") as f:
        header = f.read(18)
    e_type = int.from_bytes(header[16:18], "little")
    assert e_type == (2 if dumped.target.variant in ("nopie", "palign") else 3)
    if dumped.target.variant == "palign":
        loads = subprocess.run(["readelf", "-l", "-W", exe], capture_output=True, text=True,
                               check=True).stdout
        first = re.search(r"LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+\S+\s+\S+\s+\S+.*?(0x[0-9a-f]+)$",
                          loads, re.M)
        assert first and int(first.group(1), 16) == 0, loads
        vaddr, align = int(first.group(2), 16), int(first.group(3), 16)
        assert align > 4096 and vaddr % align != 0, (hex(vaddr), hex(align))
    sections = subprocess.run(["readelf", "-S", "-W", exe], capture_output=True, text=True, check=True).stdout
    if dumped.target.variant == "stripped":
        assert ".debug_info" not in sections and ".symtab" not in sections
        assert ".gnu_debuglink" in sections and ".dynsym" in sections
        notes = subprocess.run(["readelf", "-n", exe], capture_output=True, text=True, check=True).stdout
        build_id = re.search(r"Build ID: ([0-9a-f]+)", notes).group(1)
        assert os.path.isfile(os.path.join(dumped.target.debug_dir, ".build-id", build_id[:2],
                                           build_id[2:] + ".debug"))
    else:
        assert ".debug_info" in sections


def test_document_header(dumped):
    doc, t = dumped.doc, dumped.target
    assert doc["pid"] == t.pid
    assert doc["command"] == " ".join(t.argv)
    assert os.path.realpath(doc["executable"]) == os.path.realpath(t.oracle["executable"])
    assert doc["python"] is None
    assert isinstance(doc["pause_us"], (int, float)) and not isinstance(doc["pause_us"], bool)
    assert doc["pause_us"] >= 0
    assert doc["errors"] == []


def test_every_thread_listed_with_its_name(dumped):
    doc, t = dumped.doc, dumped.target
    expected = {th["tid"]: th["name"] for th in oracle_threads(t)}
    got = {th["tid"]: th["name"] for th in doc["threads"]}
    assert got == expected
    assert set(got) == set(harness.task_ids(t.pid))


def test_thread_fields_and_states(dumped):
    threads = by_tid(dumped.doc)
    for o in oracle_threads(dumped.target):
        th = threads[o["tid"]]
        assert {"tid", "name", "state", "wchan", "frames", "errors"} <= set(th), th.keys()
        if o["blocked"]:
            assert th["state"] == "sleeping", f"thread {o['name']}"
            assert th["errors"] == [], f"thread {o['name']}: {th['errors']}"
        assert th["frames"], f"thread {o['name']} has no frames"
        for f in th["frames"]:
            assert FRAME_KEYS <= set(f), f
            assert f["kind"] == "native"
            assert HEX.match(f["address"]), f
            if f["module"] is not None:
                assert HEX.match(f["module_offset"]), f


def test_exact_chains(dumped):
    threads = by_tid(dumped.doc)
    report = []
    for o in oracle_threads(dumped.target, blocked_only=True):
        problems = chain_problems(threads[o["tid"]], o["frames"], dumped.target.oracle["executable"])
        if problems:
            report.append(f"thread {o['name']} (tid {o['tid']}):\n" + "\n".join(problems))
    assert not report, "\n\n".join(report)


def test_inlined_frames(dumped):
    """Each frame the oracle marks inlined is reported inlined, sharing its caller's address."""
    threads = by_tid(dumped.doc)
    checked = 0
    for o in oracle_threads(dumped.target, blocked_only=True):
        frames = threads[o["tid"]]["frames"]
        for e in (e for e in o["frames"] if e["inlined"]):
            hits = [i for i, f in enumerate(frames) if f.get("function") == e["function"]]
            assert hits, f"inlined {e['function']} missing:\n{describe(frames)}"
            for i in hits:
                assert frames[i]["inlined"] is True, describe(frames)
                assert i + 1 < len(frames) and frames[i + 1]["address"] == frames[i]["address"], describe(frames)
            checked += 1
    assert checked >= 2  # the oracle itself must contain inlined frames


def test_blocking_call_site(dumped):
    """The innermost own frame of each thread points at the blocking call's file:line."""
    threads = by_tid(dumped.doc)
    for o in oracle_threads(dumped.target, blocked_only=True):
        e = o["frames"][0]
        f = next((f for f in threads[o["tid"]]["frames"] if f.get("function") == e["function"]), None)
        assert f is not None, f"{o['name']}: {e['function']} not found"
        assert (f["line"], same_file(f["file"], e["file"])) == (e["line"], True), \
            f"{o['name']}: got {f['file']}:{f['line']}, expected {e['file']}:{e['line']}"


def test_deep_recursion(dumped):
    rec = dumped.target.oracle["recursion"]
    o = next(t for t in oracle_threads(dumped.target) if t["name"] == rec["thread"])
    frames = by_tid(dumped.doc)[o["tid"]]["frames"]
    names = [f.get("function") for f in frames]
    assert rec["function"] in names, describe(frames)
    start = names.index(rec["function"])
    run = 0
    while start + run < len(names) and names[start + run] == rec["function"]:
        run += 1
    assert run == rec["depth"], f"{run} consecutive {rec['function']} frames, expected {rec['depth']}"
    assert names[start - 1] == o["frames"][0]["function"]
    assert names[start + run] == o["frames"][-1]["function"]


def test_target_running_after_dump(dumped):
    assert_target_undisturbed(dumped.target)


def test_second_dump_is_identical(dumped):
    """Dumping does not move the target: a second dump shows the same stacks."""
    t = dumped.target
    again = harness.dump_json(t.pid, "--max-frames", "4096", *harness.native_dump_args(t))
    first, second = by_tid(dumped.doc), by_tid(again)
    for o in oracle_threads(t, blocked_only=True):
        key = lambda th: [(f["function"], f["line"], f["inlined"], f["address"]) for f in th["frames"]]
        assert key(second[o["tid"]]) == key(first[o["tid"]]), f"thread {o['name']} changed"
    assert_target_undisturbed(t)


def test_max_frames_keeps_innermost(dumped):
    t = dumped.target
    doc = harness.dump_json(t.pid, "--max-frames", "5", *harness.native_dump_args(t))
    full = by_tid(dumped.doc)
    for th in doc["threads"]:
        assert 1 <= len(th["frames"]) <= 5, f"thread {th['name']}: {len(th['frames'])} frames"
    got = by_tid(doc)
    for o in oracle_threads(t, blocked_only=True):  # the ticker moves between dumps
        frames = got[o["tid"]]["frames"]
        want = [f["address"] for f in full[o["tid"]]["frames"][:len(frames)]]
        assert [f["address"] for f in frames] == want, f"thread {o['name']}"
    assert_target_undisturbed(t)


# ----------------------------------------------------------------- other dump forms


@pytest.fixture
def pie_target(tmp_path):
    return harness.start_native_target("pie", tmp_path)


def test_native_flag(pie_target):
    doc = harness.dump_json(pie_target.pid, "--native", "--max-frames", "4096")
    assert doc["python"] is None
    threads = by_tid(doc)
    for o in oracle_threads(pie_target, blocked_only=True):
        assert not chain_problems(threads[o["tid"]], o["frames"], pie_target.oracle["executable"]), o["name"]


def test_stripped_without_debug_dir_has_no_source_lines(tmp_path):
    """Proves the stripped variant's lines come from --debug-dir and nowhere else."""
    t = harness.start_native_target("stripped", tmp_path)
    doc = harness.dump_json(t.pid, "--max-frames", "4096")
    exe = os.path.realpath(t.oracle["executable"])
    own = [f for th in doc["threads"] for f in th["frames"]
           if f.get("module") and os.path.realpath(f["module"]) == exe]
    assert own, "no frame in the executable at all"
    assert all(f["line"] is None for f in own), describe(own)
    assert_target_undisturbed(t)


def assert_text_mentions(text, target):
    for o in oracle_threads(target):
        assert re.search(rf"\b{o['tid']}\b", text), f"tid {o['tid']} not in text output"
        assert o["name"] in text, f"thread name {o['name']} not in text output"
        for e in o["frames"] or []:
            assert e["function"] in text, f"{e['function']} not in text output"


def test_text_format(pie_target):
    res = harness.run_stackpeek(["dump", "--format", "text", "--max-frames", "4096", pie_target.pid])
    assert res.returncode == 0, res.stderr
    assert re.search(rf"\b{pie_target.pid}\b", res.stdout)
    assert_text_mentions(res.stdout, pie_target)
    assert_target_undisturbed(pie_target)


def test_two_pids_in_one_call(tmp_path):
    a = harness.start_native_target("pie", tmp_path)
    b = harness.start_native_target("nopie", tmp_path)
    res = harness.run_stackpeek(["dump", "--format", "text", "--max-frames", "4096", a.pid, b.pid])
    assert res.returncode == 0, res.stderr
    for t in (a, b):
        assert re.search(rf"\b{t.pid}\b", res.stdout)
        assert_text_mentions(res.stdout, t)
        assert_target_undisturbed(t)


def test_skip_thread_leaves_those_threads_out(pie_target):
    """--skip-thread TID (repeatable, one TID each: the PID after it stays a PID)."""
    blocked = [o["tid"] for o in oracle_threads(pie_target, blocked_only=True)]
    skipped, kept = blocked[:2], blocked[2:]
    assert kept, "the target has too few blocked threads for this test"
    doc = harness.dump_json(pie_target.pid, "--max-frames", "4096",
                            "--skip-thread", str(skipped[0]), "--skip-thread", str(skipped[1]))
    threads = by_tid(doc)
    assert not set(skipped) & set(threads)
    assert set(kept) <= set(threads)
    for o in oracle_threads(pie_target, blocked_only=True):
        if o["tid"] in kept:
            assert not chain_problems(threads[o["tid"]], o["frames"],
                                      pie_target.oracle["executable"]), o["name"]
    assert_target_undisturbed(pie_target)


# ----------------------------------------------------------------- exit statuses


def assert_error_line(res, code):
    assert res.returncode == code, f"exit {res.returncode}, expected {code}\nstderr:\n{res.stderr}"
    first = res.stderr.splitlines()[0] if res.stderr else ""
    assert first.startswith("stackpeek: "), f"stderr does not start with 'stackpeek: ':\n{res.stderr}"


def free_pid():
    p = harness.spawn(["true"])
    p.wait(timeout=30)
    assert not os.path.exists(f"/proc/{p.pid}")
    return p.pid


def test_no_such_process():
    res = harness.run_stackpeek(["dump", free_pid()])
    assert_error_line(res, 3)
    assert res.stdout == "" or res.stdout.strip() in ("", "[]")


def test_zombie_is_not_dumpable():
    p = harness.spawn(["true"])
    harness.wait_until(lambda: harness.proc_state(p.pid) == "Z", 10, "child to become a zombie")
    res = harness.run_stackpeek(["dump", p.pid])
    assert_error_line(res, 6)


def test_process_whose_main_thread_exited(tmp_path):
    """main called pthread_exit: the leader is a zombie, the process lives on.

    Its memory and maps are reached through a live thread, every other
    thread's chain matches the oracle, and the leader is listed as not
    captured with the reason. Before, the whole process was refused as a
    zombie (exit 6)."""
    t = harness.start_native_target("pie", tmp_path, extra=["--main-exits"])
    harness.wait_until(lambda: harness.proc_state(t.pid) == "Z", 10, "the main thread to exit")
    res = harness.run_stackpeek(["dump", "--format", "json", "--max-frames", "4096", t.pid])
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    threads = by_tid(doc)
    leader = threads[t.pid]
    assert not leader["frames"]
    assert any("main thread has exited" in e for e in leader["errors"]), leader
    checked = 0
    for o in oracle_threads(t, blocked_only=True):
        assert not chain_problems(threads[o["tid"]], o["frames"], t.oracle["executable"]), o["name"]
        checked += 1
    assert checked >= 5
    t.stats.wait_ticks_past(t.stats.ticks() + 3)  # still running, undisturbed
    assert t.stats.spurious() == 0


def kernel_thread_pid():
    for name in sorted(os.listdir("/proc"), key=lambda n: (len(n), n)):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                data = f.read()
        except OSError:
            continue
        flags = int(data[data.rindex(")") + 2:].split()[6])
        if flags & 0x00200000:  # PF_KTHREAD
            return int(name)
    return None


def test_kernel_thread_is_not_dumpable():
    pid = kernel_thread_pid()
    if pid is None:
        pytest.skip("no kernel thread visible in this pid namespace")
    res = harness.run_stackpeek(["dump", pid])
    assert_error_line(res, 6)


@pytest.mark.parametrize("args", [
    ["dump"],
    ["dump", "not-a-pid"],
    ["dump", "--format", "xml", "PID"],
    ["dump", "--max-frames", "many", "PID"],
    ["dump", "--no-such-option", "PID"],
    ["no-such-command"],
], ids=["no-pid", "bad-pid", "bad-format", "bad-max-frames", "bad-option", "bad-command"])
def test_usage_errors(args):
    # PID is a free pid: if parsing wrongly accepted the line, the exit would be 3, not 2.
    pid = str(free_pid())
    res = harness.run_stackpeek([pid if a == "PID" else a for a in args])
    assert_error_line(res, 2)


def test_help():
    res = harness.run_stackpeek(["--help"])
    assert res.returncode == 0, res.stderr
    assert "dump" in res.stdout
    res = harness.run_stackpeek(["dump", "--help"])
    assert res.returncode == 0, res.stderr
    for option in ("--format", "--debug-dir", "--native", "--max-frames"):
        assert option in res.stdout, f"{option} not in dump --help"


def test_version():
    res = harness.run_stackpeek(["--version"])
    assert res.returncode == 0, res.stderr
    expected = os.environ.get("STACKPEEK_VERSION")
    if expected:
        assert expected in res.stdout
    else:
        assert re.search(r"\d+\.\d+\.\d+", res.stdout)


def test_permission_denied(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to run stackpeek as another user")
    setpriv = "/usr/bin/setpriv"
    if not os.access(setpriv, os.X_OK):
        pytest.skip("setpriv (util-linux) not installed")
    probe = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                            harness.stackpeek_bin(), "--version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"stackpeek is not executable by nobody here: {probe.stderr.strip()}")
    t = harness.start_native_target("pie", tmp_path)
    res = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                          harness.stackpeek_bin(), "dump", str(t.pid)], capture_output=True, text=True,
                         timeout=60)
    assert_error_line(res, 4)
    assert_target_undisturbed(t)
