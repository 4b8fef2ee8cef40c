"""What a newcomer types wrong, and what stackpeek answers (issue 21 §3).

Why: the first minutes with a tool are spent on mistakes: a process name where
a pid belongs, a negative count, an output path that does not exist.  Each
must get an answer that says what to do, with the documented exit code, and
nothing may be lost (a recording is never made only to fail at the end).
The JSON shape must follow what was asked (one pid, several, a tree), never
how many processes could be dumped.  Every expectation comes from what the
test set up itself: the pids it started, the paths it made.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import harness

# comm holds at most 15 characters: a name of exactly 15 matches both ways.
UNIQUE_NAME = "spk_cli_sleeper"


def start_named_sleeper(tmp_path, argv0=None):
    """A sleep whose comm is UNIQUE_NAME (argv[0] its path unless given);
    returns once exec'd."""
    exe = tmp_path / UNIQUE_NAME
    if not exe.exists():
        shutil.copy(shutil.which("sleep"), exe)
    proc = harness.spawn([argv0 or str(exe), "1000"], kind="target", executable=str(exe))
    harness.wait_until(lambda: harness.task_ids(proc.pid) and
                       open(f"/proc/{proc.pid}/comm").read().strip() == UNIQUE_NAME,
                       10, "the sleeper to exec")
    return harness.Target(proc, [str(exe), "1000"])


# ----------------------------------------------------------------- dump NAME


def test_a_name_is_not_a_pid_and_the_matching_processes_are_named(tmp_path):
    first = start_named_sleeper(tmp_path)
    second = start_named_sleeper(tmp_path, argv0="\x1b[31mred")  # matched by comm
    res = harness.run_stackpeek(["dump", UNIQUE_NAME])
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    assert f"'{UNIQUE_NAME}' is not a process id" in res.stderr
    assert "not in range" not in res.stderr
    for t in (first, second):
        assert f" {t.pid} (" in res.stderr, res.stderr
    # The command line comes from the target: escaped, never raw.
    assert "\x1b" not in res.stderr
    assert "\\x1b[31mred" in res.stderr
    assert f"pgrep -x {UNIQUE_NAME}" in res.stderr


def test_a_name_matching_nothing_says_so():
    res = harness.run_stackpeek(["dump", "no-such-program-anywhere"])
    assert res.returncode == 2
    assert "'no-such-program-anywhere' is not a process id" in res.stderr
    assert "no running process is named 'no-such-program-anywhere'" in res.stderr


@pytest.mark.parametrize("word", ["0", "-5", "12abc"])
def test_other_non_pids_are_usage_errors(word):
    res = harness.run_stackpeek(["dump", "--", word])
    assert res.returncode == 2, res.stderr
    assert f"'{word}' is not a process id" in res.stderr


# ----------------------------------------------------------------- --max-frames


@pytest.mark.parametrize("value", ["-1", "many", "1.5"])
def test_max_frames_must_be_a_count(value):
    res = harness.run_stackpeek(["dump", "--max-frames", value, str(os.getpid())])
    assert res.returncode == 2, res.stderr
    assert "--max-frames" in res.stderr and "number of frames" in res.stderr
    assert res.stdout == ""


# ----------------------------------------------------------------- the JSON contract

MISSING_PID = 4194304 + 1  # above pid_max's largest possible value: never a process


def dump_json_raw(*args):
    return harness.run_stackpeek(["dump", "--format", "json", *[str(a) for a in args]])


def test_json_one_pid_gives_one_object(tmp_path):
    t = start_named_sleeper(tmp_path)
    res = dump_json_raw(t.pid)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert isinstance(doc, dict) and doc["pid"] == t.pid


def test_json_several_pids_give_an_array_in_order(tmp_path):
    first, second = start_named_sleeper(tmp_path), start_named_sleeper(tmp_path)
    res = dump_json_raw(second.pid, first.pid)
    assert res.returncode == 0, res.stderr
    assert [p["pid"] for p in json.loads(res.stdout)] == [second.pid, first.pid]


def test_json_missing_pid_prints_nothing_on_stdout():
    res = dump_json_raw(MISSING_PID)
    assert res.returncode == 3
    assert res.stdout == ""
    assert f"no process with pid {MISSING_PID}" in res.stderr


def test_json_several_missing_pids_print_nothing_on_stdout():
    res = dump_json_raw(MISSING_PID, MISSING_PID + 1)
    assert res.returncode == 3
    assert res.stdout == ""


def test_json_mixed_pids_give_an_array_of_those_dumped(tmp_path):
    t = start_named_sleeper(tmp_path)
    res = dump_json_raw(t.pid, MISSING_PID)
    assert res.returncode == 3
    doc = json.loads(res.stdout)
    assert isinstance(doc, list) and [p["pid"] for p in doc] == [t.pid]
    assert f"no process with pid {MISSING_PID}" in res.stderr


def test_json_tree_is_an_array_even_for_one_process(tmp_path):
    t = start_named_sleeper(tmp_path)
    res = dump_json_raw("--tree", t.pid)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert isinstance(doc, list) and [p["pid"] for p in doc] == [t.pid]


# ----------------------------------------------------------------- dump --tree and zombies

ZOMBIE_PARENT = r"""
import os, sys, time
ready_fd, pid_file = int(sys.argv[1]), sys.argv[2]
child = os.fork()
if child == 0:
    os._exit(0)
with open(pid_file, "w") as f:
    f.write(str(child))
os.write(ready_fd, b"r")
time.sleep(1000)  # never reaps the child
"""


def start_zombie_parent(tmp_path):
    pid_file = tmp_path / "zombie.pid"
    parent = harness.start_target([sys.executable, "-c", ZOMBIE_PARENT, "{ready_fd}", pid_file])
    child = int(pid_file.read_text())
    harness.wait_until(lambda: harness.proc_state(child) == "Z", 10, "the child to be a zombie")
    return parent, child


def test_tree_shows_a_zombie_child_and_succeeds(tmp_path):
    parent, child = start_zombie_parent(tmp_path)
    res = harness.run_stackpeek(["dump", "--tree", parent.pid])
    assert res.returncode == 0, res.stderr
    assert f"Process {parent.pid}:" in res.stdout
    child_part = res.stdout.split(f"Process {child}:", 1)
    assert len(child_part) == 2, res.stdout
    assert "zombie" in child_part[1]
    assert "zombie" not in res.stderr


def test_tree_json_shows_a_zombie_child(tmp_path):
    parent, child = start_zombie_parent(tmp_path)
    res = dump_json_raw("--tree", parent.pid)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [p["pid"] for p in doc] == [parent.pid, child]
    zombie = doc[1]
    assert zombie["ppid"] == parent.pid and zombie["threads"] == []
    assert any("zombie" in e for e in zombie["errors"])


def test_a_zombie_asked_for_by_pid_is_still_not_dumpable(tmp_path):
    _, child = start_zombie_parent(tmp_path)
    res = harness.run_stackpeek(["dump", child])
    assert res.returncode == 6
    assert "zombie" in res.stderr


# ----------------------------------------------------------------- root refused


def test_root_in_a_user_namespace_is_told_why_not_to_run_as_root(tmp_path):
    """Root inside `unshare --user` has every capability, but only over its
    own namespace: the kernel refuses it a target outside, and "run as root"
    would be no advice at all."""
    if subprocess.run(["unshare", "--user", "--map-root-user", "true"]).returncode != 0:
        pytest.skip("user namespaces are not available here")
    t = start_named_sleeper(tmp_path)
    res = subprocess.run(["unshare", "--user", "--map-root-user", harness.stackpeek_bin(),
                          "dump", str(t.pid)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 4, res.stderr
    assert f"not permitted to attach to pid {t.pid}" in res.stderr
    assert "runs in a user namespace" in res.stderr
    assert "run stackpeek as" not in res.stderr and "run as root" not in res.stderr
    harness.assert_running(t.pid)


# ----------------------------------------------------------------- no symbols


def start_symbolless_copy(tmp_path):
    """A copy of native_target_pie with no symbols, no DWARF and no debug
    link (strip --strip-all); returns (target, copy path, its debug file made
    from the unstripped build)."""
    exe = tmp_path / "nosym_target"
    shutil.copy(harness.target_path("native_target_pie"), exe)
    debug = tmp_path / "nosym_target.debug"
    subprocess.run(["objcopy", "--only-keep-debug", exe, debug], check=True)
    subprocess.run(["strip", "--strip-all", exe], check=True)
    t = harness.start_target([exe, "--ready-fd", "{ready_fd}", "--oracle", tmp_path / "oracle.json",
                              "--stats", tmp_path / "stats.bin"])
    return t, str(exe), debug


def build_id(path):
    notes = subprocess.run(["readelf", "-n", path], capture_output=True, text=True, check=True)
    return re.search(r"Build ID: ([0-9a-f]+)", notes.stdout).group(1)


def test_a_module_without_symbols_is_named_once_with_how_to_add_them(tmp_path):
    t, exe, debug = start_symbolless_copy(tmp_path)
    res = harness.run_stackpeek(["dump", t.pid])
    assert res.returncode == 0, res.stderr
    assert "?? (nosym_target+" in res.stdout  # several threads have such frames
    notes = [line for line in res.stdout.splitlines()
             if line.startswith("Note: ") and "no symbols or debug information" in line]
    assert len(notes) == 1 and exe in notes[0], res.stdout
    bid = build_id(exe)
    where = f"/.build-id/{bid[:2]}/{bid[2:]}.debug"
    assert "debug package" in notes[0] and f"--debug-dir DIR with its debug file at DIR{where}" in notes[0]

    doc = json.loads(dump_json_raw(t.pid).stdout)
    assert len([e for e in doc["errors"] if exe in e and "no symbols" in e]) == 1, doc["errors"]

    # The advice works: the debug file where the note says names the frames.
    folder = tmp_path / "dbg"
    (folder / os.path.dirname(where.lstrip("/"))).mkdir(parents=True)
    shutil.copy(debug, str(folder) + where)
    res = harness.run_stackpeek(["dump", "--debug-dir", folder, t.pid])
    assert res.returncode == 0, res.stderr
    assert "no symbols" not in res.stdout and "?? (nosym_target+" not in res.stdout
    harness.assert_running(t.pid)


def test_record_names_a_module_without_symbols_once_in_its_summary(tmp_path):
    t, exe, _ = start_symbolless_copy(tmp_path)
    out = tmp_path / "p.folded"
    res = harness.run_stackpeek(["record", "--pid", t.pid, "--native", "--idle",
                                 "--duration", "0.5", "-o", out])
    assert res.returncode == 0, res.stderr
    assert "nosym_target" in out.read_text()  # its unnamed frames, by module
    notes = [line for line in res.stderr.splitlines()
             if "Note: " in line and "no symbols or debug information" in line]
    assert len(notes) == 1 and exe in notes[0], res.stderr
    harness.assert_running(t.pid)


def test_a_module_with_symbols_gets_no_such_note(tmp_path):
    t = harness.start_native_target("pie", tmp_path)
    res = harness.run_stackpeek(["dump", t.pid])
    assert res.returncode == 0, res.stderr
    assert "no symbols or debug information" not in res.stdout


# ----------------------------------------------------------------- record -o


def record_touching(tmp_path, *args):
    """record a command that leaves a marker file; returns (result, marker)."""
    marker = tmp_path / "command-ran"
    res = harness.run_stackpeek(["record", "--duration", "30", *args, "--",
                                 "touch", marker], timeout=60)
    return res, marker


@pytest.mark.parametrize("make_bad", [
    lambda tmp: tmp / "missing-dir" / "out.svg",
    lambda tmp: tmp,  # a folder, not a file
    lambda tmp: tmp / "out.unknown",
], ids=["missing-folder", "a-folder", "unknown-format"])
def test_record_checks_outputs_before_sampling(tmp_path, make_bad):
    good = tmp_path / "good.svg"
    res, marker = record_touching(tmp_path, "-o", good, "-o", make_bad(tmp_path))
    assert res.returncode == 2, res.stderr
    assert not marker.exists(), "the command was started although an output is unusable"
    assert not good.exists()
    assert "cannot" in res.stderr


def test_record_refuses_a_read_only_folder(tmp_path):
    if os.geteuid() == 0:
        # root writes anywhere; a read-only bind is what stays closed to it
        folder = "/proc/self"
    else:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o555)
    res, marker = record_touching(tmp_path, "-o", os.path.join(folder, "out.svg"))
    assert res.returncode == 2, res.stderr
    assert not marker.exists()
    assert "nothing was recorded" in res.stderr


@pytest.mark.parametrize("suffix,magic", [(".pprof", b"\x1f\x8b"), (".pb", b"\x1f\x8b"),
                                          (".txt", None), (".folded", None)])
def test_record_accepts_the_extensions_help_lists(tmp_path, suffix, magic):
    out = tmp_path / ("profile" + suffix)
    # A command that outlives --duration: recording ends by the clock, never
    # by a race between the command's exit and the attach.
    res = harness.run_stackpeek(["record", "--duration", "0.3", "-o", out, "--",
                                 "sleep", "1000"], timeout=60)
    assert res.returncode == 0, res.stderr
    assert out.exists()
    if magic:
        assert out.read_bytes().startswith(magic)  # pprof's gzipped profile.proto
    help_text = harness.run_stackpeek(["record", "--help"]).stdout
    assert suffix in help_text


def test_record_help_says_the_command_gets_sigterm():
    help_text = harness.run_stackpeek(["record", "--help"]).stdout
    assert "sent SIGTERM" in help_text
