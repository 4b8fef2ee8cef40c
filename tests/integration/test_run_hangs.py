"""Integration tests of `stackpeek run` when the command hangs (and of
`stackpeek dump --tree`, its building block).

Why: these are the promises CI users rely on: a hung command is dumped
(every process of its tree, every thread), then killed, and stackpeek exits
124; nothing of the tree survives; SIGUSR1 dumps without disturbing the run;
--idle-timeout tells a deadlock from slow progress.

How: targets in tests/targets/run announce readiness by writing a byte to the
fd named by STACKPEEK_TEST_READY_FD (inherited through stackpeek, which is
itself part of what is tested: a transparent wrapper passes fds on).
stackpeek runs in a new session, so every process of the tree carries its
pid as session id: that is how the tests check that nothing is left behind,
and how the teardown kills leftovers if a test fails halfway.
"""

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

import harness

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))


def run_target(name):
    src = os.environ.get("STACKPEEK_TARGETS_SRC_DIR") or os.path.join(HERE, "..", "targets")
    return os.path.join(src, "run", name)


def native_target():
    return harness.target_path(os.path.join("run", "hang_native"))


# ----------------------------------------------------------------- helpers


def session_members(sid):
    """Pids of live processes whose session id is sid (zombies included)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        if int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    data = f.read()
            except OSError:
                continue
            if int(data[data.rindex(")") + 2:].split()[1]) == pid:
                kids.append(int(entry))
    return kids


class Run:
    """`stackpeek run ARGS -- COMMAND` in its own session, output in files."""

    def __init__(self, tmp_path, args, command, name="run"):
        self.stdout_path = tmp_path / f"{name}.out"
        self.stderr_path = tmp_path / f"{name}.err"
        r, w = os.pipe()
        env = dict(os.environ, STACKPEEK_TEST_READY_FD=str(w))
        env.pop("STACKPEEK_TEST_HOLD_PAUSE", None)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = harness.spawn([harness.stackpeek_bin(), "run", *args, "--", *command],
                                      kind="stackpeek", env=env, pass_fds=(w,), stdout=out,
                                      stderr=err, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        os.close(w)
        self.ready = r
        self.pid = self.proc.pid
        self.started = time.monotonic()
        _live_runs.append(self)

    def wait_ready(self, count, timeout=30):
        """Reads `count` readiness bytes; returns them."""
        got = b""
        deadline = time.monotonic() + timeout
        while len(got) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"only {got!r} of {count} readiness bytes within {timeout}s;"
                                   f" stderr:\n{self.stderr()}")
            if select.select([self.ready], [], [], left)[0]:
                chunk = os.read(self.ready, count - len(got))
                if not chunk:
                    raise EOFError(f"readiness pipe closed after {got!r}; stderr:\n{self.stderr()}")
                got += chunk
        return got

    def wait(self, timeout=60):
        rc = self.proc.wait(timeout=timeout)
        os.close(self.ready)
        self.ready = -1
        return rc

    def stderr(self):
        return self.stderr_path.read_bytes().decode(errors="replace")

    def stdout(self):
        return self.stdout_path.read_bytes()

    def command_pid(self):
        return harness.wait_until(lambda: (children_of(self.pid) or [None])[0], 10,
                                  "the command to appear as stackpeek's child")


_live_runs = []


@pytest.fixture(autouse=True)
def _kill_leftover_trees():
    """If a test fails halfway, kill every process of its runs' sessions."""
    yield
    while _live_runs:
        run = _live_runs.pop()
        if run.ready >= 0:
            os.close(run.ready)
        for pid in session_members(run.pid):
            if pid != run.pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def assert_nothing_left(run):
    left = session_members(run.pid)
    assert left == [], f"processes of the tree outlived stackpeek: {left}"


def load_dump(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise AssertionError(f"--output {path} is not one JSON document: {e}")


def functions(thread):
    return [f.get("function") or "" for f in thread["frames"]]


def native_functions(thread):
    return [f.get("function") or "" for f in thread["frames"] if f["kind"] == "native"]


def python_functions(thread):
    return [f.get("function") or "" for f in thread["frames"] if f["kind"] == "python"]


def source_line(path, marker):
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if marker in line:
                return number
    raise AssertionError(f"{marker!r} not in {path}")


# ----------------------------------------------------------------- the deadlock


@pytest.fixture(scope="module")
def deadlock(tmp_path_factory):
    """One timed-out run of the lock-order deadlock, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("deadlock")
    out = tmp / "dump.json"
    # --native: merged stacks, so native frames are there whether or not
    # the Python decoder recognises this interpreter.
    run = Run(tmp, ["--timeout", "3s", "--kill-after", "2s", "--format", "json", "--native",
                    "--output", str(out)],
              [PYTHON, run_target("deadlock.py")])
    ready = run.wait_ready(1, timeout=3)  # must deadlock before the timeout
    rc = run.wait(timeout=60)
    elapsed = time.monotonic() - run.started
    _live_runs.remove(run)
    return {"run": run, "rc": rc, "ready": ready, "elapsed": elapsed,
            "dump": load_dump(out), "stderr": run.stderr()}


def test_deadlock_times_out_with_124_and_tree_is_gone(deadlock):
    assert deadlock["rc"] == 124, deadlock["stderr"]
    assert deadlock["elapsed"] >= 3
    assert "still running after 3s (--timeout)" in deadlock["stderr"]
    assert "sending SIGTERM to 1 process" in deadlock["stderr"]
    assert_nothing_left(deadlock["run"])


def test_deadlock_dump_shows_every_thread_blocked_in_acquire(deadlock):
    processes = deadlock["dump"]
    assert isinstance(processes, list) and len(processes) == 1, processes
    p = processes[0]
    assert p["ppid"] == deadlock["run"].pid
    assert "deadlock.py" in p["command"]
    assert len(p["threads"]) == 3, [t["tid"] for t in p["threads"]]
    blocked = [t for t in p["threads"]
               if any("lock_PyThread_acquire_lock" in f for f in native_functions(t))]
    # main joins (a lock acquire too), "first" and "second" wait for each
    # other's lock: all three sit in the interpreter's lock acquire.
    assert len(blocked) == 3, [functions(t)[:8] for t in p["threads"]]
    for t in p["threads"]:
        assert t["state"] == "sleeping" and not t["errors"], t
    # The JSON also went to stderr, after the banner.
    assert '"threads"' in deadlock["stderr"]


def test_deadlock_python_frames_at_the_two_acquire_lines(deadlock):
    p = deadlock["dump"][0]
    if p["python"] is None:
        pytest.skip("the dump has no Python frames yet: Python decoding is not wired into "
                    "the driver (commit 'driver: decode Python stacks'); native frames are "
                    "checked by the test above")
    script = run_target("deadlock.py")
    want = {source_line(script, "# DEADLOCK first"), source_line(script, "# DEADLOCK second")}
    found = set()
    for t in p["threads"]:
        py = [f for f in t["frames"] if f["kind"] == "python"]
        if py and py[0]["file"] and py[0]["file"].endswith("deadlock.py"):
            found.add(py[0]["line"])
    assert want <= found, (want, found)


def test_deadlock_on_every_interpreter(python, tmp_path):
    """The same hang under every interpreter found (pyenv's, and the 3.13t,
    3.14, 3.14t, 3.14-static and 3.15 builds): the timed-out run's dump
    names the two acquire lines, merged with the native frames."""
    major = subprocess.run([python, "-c", "import sys; print(sys.version_info[0])"],
                           capture_output=True, text=True, timeout=60).stdout.strip()
    if major == "2":
        pytest.skip("deadlock.py needs threading.Barrier (Python 3)")
    out = tmp_path / "dump.json"
    run = Run(tmp_path, ["--timeout", "2s", "--kill-after", "2s", "--format", "json", "--native",
                         "--output", str(out)],
              [python, run_target("deadlock.py")])
    run.wait_ready(1, timeout=30)
    assert run.wait(timeout=60) == 124, run.stderr()
    _live_runs.remove(run)
    assert_nothing_left(run)
    (p,) = load_dump(out)
    assert p["python"] is not None, p["errors"]
    script = run_target("deadlock.py")
    want = {source_line(script, "# DEADLOCK first"), source_line(script, "# DEADLOCK second")}
    found = set()
    for t in p["threads"]:
        assert not [e for e in t["errors"] if "cannot merge" in e], t["errors"]
        py = [f for f in t["frames"] if f["kind"] == "python"]
        if py and (py[0]["file"] or "").endswith("deadlock.py"):
            found.add(py[0]["line"])
    assert want <= found, (want, found)


# ----------------------------------------------------------------- process trees


def test_tree_of_shell_python_and_native_children(tmp_path):
    out = tmp_path / "tree.json"
    shell = ('"$1" "$2" hang & "$3" & wait')
    run = Run(tmp_path, ["--timeout", "4s", "--kill-after", "2s", "--format", "json",
                         "--native", "--output", str(out)],
              ["/bin/sh", "-c", shell, "sh", PYTHON, run_target("hang.py"), native_target()])
    assert sorted(run.wait_ready(2, timeout=4)) == sorted(b"pn")
    rc = run.wait(timeout=60)
    assert rc == 124, run.stderr()
    assert_nothing_left(run)
    processes = load_dump(out)
    assert len(processes) == 3, [p["command"] for p in processes]
    sh, kids = processes[0], processes[1:]
    assert sh["command"].startswith("/bin/sh -c"), sh["command"]
    assert sh["ppid"] == run.pid
    assert all(k["ppid"] == sh["pid"] for k in kids), [(k["pid"], k["ppid"]) for k in kids]
    assert sorted(k["pid"] for k in kids) == [k["pid"] for k in kids], "siblings by pid"
    by_kind = {("python" if "hang.py" in k["command"] else "native"): k for k in kids}
    assert set(by_kind) == {"python", "native"}, [k["command"] for k in kids]
    native = by_kind["native"]["threads"]
    assert len(native) == 1 and "native_child_hangs_here" in functions(native[0]), native
    py = by_kind["python"]["threads"]
    assert len(py) == 1 and "lock_PyThread_acquire_lock" in " ".join(native_functions(py[0]))
    if by_kind["python"]["python"] is not None:  # the Python decoder is in
        assert python_functions(py[0])[:1] == ["python_child_hangs_here"], functions(py[0])
    shell_frames = functions(sh["threads"][0])
    # dash waits for its jobs in sigsuspend, bash in wait4.
    assert any("wait" in f or "sigsuspend" in f for f in shell_frames), shell_frames


def test_kill_after_sigkills_a_tree_that_ignores_sigterm(tmp_path):
    run = Run(tmp_path, ["--timeout", "2s", "--kill-after", "1s"],
              [native_target(), "--ignore-term", "--fork", "2"])
    assert run.wait_ready(3, timeout=2) == b"nnn"
    rc = run.wait(timeout=60)
    elapsed = time.monotonic() - run.started
    err = run.stderr()
    assert rc == 124, err
    assert elapsed >= 3, f"SIGKILL came before --kill-after ({elapsed:.1f}s)"
    assert "Process tree (3 processes)" in err
    assert "sending SIGTERM to 3 processes" in err
    assert "sending SIGKILL to 3 processes still running after SIGTERM" in err
    assert "giving up" not in err
    assert_nothing_left(run)


def test_dump_tree_lists_descendants_parents_first(tmp_path):
    r, w = os.pipe()
    env = dict(os.environ, STACKPEEK_TEST_READY_FD=str(w))
    # Its own process group, so the whole tree goes at the end, not only the
    # shell the harness knows about (its children would be orphaned).
    shell = harness.spawn(["/bin/sh", "-c", '"$1" --fork 1 & "$1" & wait', "sh",
                           native_target()], kind="target", env=env, pass_fds=(w,),
                          start_new_session=True)
    os.close(w)
    try:
        _check_tree_order(shell, r)
    finally:
        try:
            os.killpg(shell.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _check_tree_order(shell, r):
    try:
        got = b""
        deadline = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < deadline:
            if select.select([r], [], [], 1)[0]:
                got += os.read(r, 3 - len(got))
        assert got == b"nnn"
    finally:
        os.close(r)
    res = harness.run_stackpeek(["dump", "--tree", "--format", "json", shell.pid])
    assert res.returncode == 0, res.stderr
    processes = json.loads(res.stdout)
    assert len(processes) == 4, [p["command"] for p in processes]
    assert processes[0]["pid"] == shell.pid
    seen = set()
    for p in processes:
        assert p["pid"] == shell.pid or p["ppid"] in seen, "parent listed before child"
        seen.add(p["pid"])
        assert any("native_child_hangs_here" in functions(t) for t in p["threads"]) \
            or p["pid"] == shell.pid
    harness.assert_running(shell.pid)


# ----------------------------------------------------------------- SIGUSR1


def test_sigusr1_dumps_and_the_command_goes_on(tmp_path):
    run = Run(tmp_path, [], [native_target()])
    assert run.wait_ready(1) == b"n"
    command = run.command_pid()
    for n in (1, 2):
        os.kill(run.pid, signal.SIGUSR1)
        harness.wait_until(lambda: run.stderr().count("native_child_hangs_here") >= n, 60,
                           f"dump number {n} on stderr")
        harness.assert_running(command)
        assert run.proc.poll() is None
    err = run.stderr()
    assert err.count("SIGUSR1 received after") == 2, err
    assert f"Process {command}: {native_target()}" in err
    assert "Process tree (1 process):" in err
    # The command still runs: SIGTERM to stackpeek is passed on, it dies of
    # it, and stackpeek reports that as 128+15.
    os.kill(run.pid, signal.SIGTERM)
    assert run.wait(timeout=30) == 128 + signal.SIGTERM
    assert_nothing_left(run)


# ----------------------------------------------------------------- --idle-timeout


def test_idle_timeout_kills_a_deadlock_early(tmp_path):
    run = Run(tmp_path, ["--idle-timeout", "1s", "--kill-on-idle", "--kill-after", "2s",
                         "--native"],
              [PYTHON, run_target("deadlock.py")])
    run.wait_ready(1)
    rc = run.wait(timeout=60)
    err = run.stderr()
    assert rc == 124, err
    assert "(--idle-timeout), which looks like a deadlock" in err
    assert err.count("lock_PyThread_acquire_lock") >= 3, err
    assert_nothing_left(run)


def test_idle_timeout_without_kill_dumps_once_and_keeps_running(tmp_path):
    run = Run(tmp_path, ["--idle-timeout", "500ms"], [PYTHON, run_target("deadlock.py")])
    run.wait_ready(1)
    harness.wait_until(lambda: "Process tree" in run.stderr(), 30, "the idle dump")
    assert run.proc.poll() is None, "--idle-timeout alone must not end the run"
    # A SIGUSR1 dump wakes every thread; that is not activity, and it must
    # not start a second idle report. Its own dump is the second and last.
    os.kill(run.pid, signal.SIGUSR1)
    harness.wait_until(lambda: run.stderr().count("Process tree") >= 2, 30, "the SIGUSR1 dump")
    os.kill(run.pid, signal.SIGTERM)
    assert run.wait(timeout=30) == 128 + signal.SIGTERM
    err = run.stderr()
    assert err.count("looks like a deadlock") == 1, err
    assert_nothing_left(run)


@pytest.mark.parametrize("mode", ["busy", "nap"])
def test_idle_timeout_spares_busy_and_slowly_progressing_commands(tmp_path, mode):
    # 3 s of work against a 500 ms idle timeout. "nap" sleeps 20 ms per step
    # and uses ~1 ms of CPU per second: utime+stime (10 ms ticks) stays flat
    # for seconds, so a tick-based detector would fire here.
    run = Run(tmp_path, ["--idle-timeout", "500ms", "--kill-on-idle"],
              [PYTHON, run_target("hang.py"), mode, "3"])
    run.wait_ready(1)
    rc = run.wait(timeout=60)
    err = run.stderr()
    assert rc == 0, err
    assert "no CPU" not in err and "Process tree" not in err, err
    if mode == "nap":
        assert int(run.stdout()) > 10, "the command made progress"
