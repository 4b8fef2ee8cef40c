"""Shared helpers for the stackpeek integration tests (native and Python suites).

Why: every suite has to start target processes, know when they are really
parked, run the real stackpeek binary, read /proc and clean up without ever
leaving a process running or ptrace-stopped.  Doing that once, here, keeps the
tests short and the synchronisation correct (readiness pipes and polled
conditions with deadlines, never a sleep standing in for a synchronisation).

Environment (set by tests/integration/CMakeLists.txt):
  STACKPEEK_BIN                 the stackpeek executable
  STACKPEEK_TARGETS_DIR         build dir of tests/targets (native targets, debug/)
  STACKPEEK_TARGETS_SRC_DIR     source dir tests/targets
  STACKPEEK_PYTHON_TARGETS_DIR  source dir tests/targets/python
  STACKPEEK_VERSION             the project version

API (all timeouts in seconds):
  stackpeek_bin(), targets_dir(), target_path(name)
  start_target(argv, ready_timeout=20, env=None, cwd=None) -> Target
      Starts argv with a readiness pipe; the literal "{ready_fd}" in argv is
      replaced by the write end's fd number.  Returns once one byte arrived
      (raises if the process exits or the timeout passes first).  Without
      "{ready_fd}" in argv it returns right after the spawn.
      Target: .pid, .proc (Popen), .argv, .kill()  (SIGKILL + reap; idempotent)
  spawn(argv, **popen_kwargs) -> Popen      any other child, tracked for cleanup
  run_stackpeek(args, timeout=120, env=None) -> CompletedProcess (text mode)
  spawn_stackpeek(args, env=None, stdout=DEVNULL) -> Popen (stderr is a pipe)
  dump_json(pid, *extra_args, timeout=120) -> dict   (asserts exit status 0)
  read_until_line(stream, needle, timeout) -> str    reads a pipe line by line
      until a line contains needle; returns everything read so far
  task_ids(pid) -> [tid]; proc_state(pid, tid=None) -> 'S', 't', ... or None
  thread_states(pid) -> {tid: state}
  wait_until(predicate, timeout, what) -> the predicate's first truthy value
  wait_threads_sleeping(pid, tids, timeout=20)
  assert_running(pid, timeout=5)   no thread in 't'/'T' (polled until deadline)
  Stats(path): the ticker stats file of the native targets: .ticks(),
      .max_gap_ns(), .spurious(), .reset(), .wait_ticks_past(n, timeout)
  start_native_target(variant, workdir, depth=None) -> Target with .oracle,
      .stats, .debug_dir, .variant; waits until every blocked thread sleeps
  NATIVE_VARIANTS = ("pie", "nopie", "stripped", "palign")
  mark() / cleanup(since=0)   kill and reap what was started after mark()
      (conftest.py does this after every test; stackpeek processes first)
"""

import json
import mmap
import os
import select
import signal
import struct
import subprocess
import time

# ----------------------------------------------------------------- paths


def _env_path(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the integration tests through ctest "
                           f"(or set it to the path CMake would use)")
    return value


def stackpeek_bin():
    return _env_path("STACKPEEK_BIN")


def targets_dir():
    return _env_path("STACKPEEK_TARGETS_DIR")


def target_path(name):
    path = os.path.join(targets_dir(), name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"target program {path} is missing: build the test targets first")
    return path


# ----------------------------------------------------------------- process registry

_registry = []  # (kind, Popen); kind "stackpeek" is killed before everything else


def mark():
    return len(_registry)


def _kill_and_reap(proc):
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


def cleanup(since=0):
    """SIGKILL and reap every process started after mark() == since."""
    mine = _registry[since:]
    del _registry[since:]
    # A killed tracer lets its tracees go; then targets can die cleanly.
    for kind in ("stackpeek", "other", "target"):
        for k, proc in mine:
            if k == kind:
                _kill_and_reap(proc)


def spawn(argv, kind="other", **kwargs):
    proc = subprocess.Popen([str(a) for a in argv], **kwargs)
    _registry.append((kind, proc))
    return proc


# ----------------------------------------------------------------- targets


class Target:
    def __init__(self, proc, argv):
        self.proc = proc
        self.pid = proc.pid
        self.argv = argv

    def kill(self):
        _kill_and_reap(self.proc)

    def __repr__(self):
        return f"Target(pid={self.pid}, argv={self.argv!r})"


def start_target(argv, ready_timeout=20, env=None, cwd=None):
    argv = [str(a) for a in argv]
    if "{ready_fd}" not in " ".join(argv):
        return Target(spawn(argv, kind="target", env=env, cwd=cwd), argv)
    r, w = os.pipe()
    try:
        real = [a.replace("{ready_fd}", str(w)) for a in argv]
        proc = spawn(real, kind="target", env=env, cwd=cwd, pass_fds=(w,))
    finally:
        os.close(w)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{real[0]} did not signal readiness within {ready_timeout}s")
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                data = os.read(r, 1)
                if not data:
                    code = proc.poll()
                    raise RuntimeError(f"{real[0]} closed its readiness pipe without signalling "
                                       f"(exit status {code})")
                break
    finally:
        os.close(r)
    return Target(proc, real)


# ----------------------------------------------------------------- stackpeek


def run_stackpeek(args, timeout=120, env=None):
    full_env = dict(os.environ)
    full_env.pop("STACKPEEK_TEST_HOLD_PAUSE", None)
    if env:
        full_env.update(env)
    return subprocess.run([stackpeek_bin()] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, env=full_env)


def spawn_stackpeek(args, env=None, stdout=subprocess.DEVNULL):
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return spawn([stackpeek_bin()] + [str(a) for a in args], kind="stackpeek", env=full_env,
                 stdout=stdout, stderr=subprocess.PIPE)


def dump_json(pid, *extra_args, timeout=120):
    res = run_stackpeek(["dump", "--format", "json", *extra_args, pid], timeout=timeout)
    assert res.returncode == 0, (f"stackpeek dump {pid} exited {res.returncode}\n"
                                 f"stderr:\n{res.stderr}")
    try:
        return json.loads(res.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"stackpeek printed invalid JSON ({e}):\n{res.stdout[:2000]}")


def read_until_line(stream, needle, timeout):
    """Read a (binary or text) pipe until a line containing needle; return all read."""
    fd = stream.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while True:
        text = buf.decode(errors="replace")
        for line in text.splitlines(keepends=True):
            if needle in line and line.endswith("\n"):
                return text
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no line containing {needle!r} within {timeout}s; got:\n{text}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise EOFError(f"stream closed before a line containing {needle!r}; got:\n{text}")
            buf += chunk


# ----------------------------------------------------------------- /proc


def task_ids(pid):
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return []


def proc_state(pid, tid=None):
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        # The command name inside is chosen by the target: any bytes.
        with open(path, errors="surrogateescape") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2]


def thread_states(pid):
    states = {}
    for tid in task_ids(pid):
        s = proc_state(pid, tid)
        if s is not None:
            states[tid] = s
    return states


def wait_until(predicate, timeout, what, interval=0.005):
    """Poll predicate until it returns something truthy; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_threads_sleeping(pid, tids, timeout=20):
    wait_until(lambda: all(proc_state(pid, t) == "S" for t in tids), timeout,
               f"threads {tids} of {pid} to be asleep ({thread_states(pid)})")


def assert_running(pid, timeout=5):
    """Every thread of pid leaves ptrace/job-control stop within timeout."""
    try:
        wait_until(lambda: all(s not in "tT" for s in thread_states(pid).values()), timeout,
                   f"process {pid} to leave the stopped state")
    except TimeoutError:
        raise AssertionError(f"process {pid} is still stopped: {thread_states(pid)}")


# ----------------------------------------------------------------- ticker stats

STATS_MAGIC = 0x7374617473706B31
_S_MAGIC, _S_TICKS, _S_MAX_GAP, _S_RESET_REQ, _S_RESET_ACK, _S_SPURIOUS, _S_PID = range(7)


class Stats:
    """Reader of the stats file written by the native targets' ticker thread."""

    def __init__(self, path):
        with open(path, "r+b") as f:
            self._mm = mmap.mmap(f.fileno(), 4096)
        if self._get(_S_MAGIC) != STATS_MAGIC:
            raise RuntimeError(f"{path} is not a ticker stats file")

    def _get(self, slot):
        return struct.unpack_from("<Q", self._mm, slot * 8)[0]

    def ticks(self):
        return self._get(_S_TICKS)

    def max_gap_ns(self):
        return self._get(_S_MAX_GAP)

    def spurious(self):
        return self._get(_S_SPURIOUS)

    def wait_ticks_past(self, n, timeout=10):
        return wait_until(lambda: self.ticks() > n, timeout, f"ticker to pass {n} ticks")

    def reset(self, timeout=10):
        """Zero the largest gap; returns once the ticker has acknowledged."""
        req = self._get(_S_RESET_REQ) + 1
        struct.pack_into("<Q", self._mm, _S_RESET_REQ * 8, req)
        wait_until(lambda: self._get(_S_RESET_ACK) == req, timeout, "ticker to acknowledge reset")

    def close(self):
        self._mm.close()


# ----------------------------------------------------------------- native target

# palign: non-PIE at 0x401000 with segments declaring a 2 MiB alignment.
NATIVE_VARIANTS = ("pie", "nopie", "stripped", "palign")
_NATIVE_BINARIES = {"pie": "native_target_pie", "nopie": "native_target_nopie",
                    "stripped": "native_target_stripped", "palign": "native_target_palign"}


def native_debug_dir():
    return os.path.join(targets_dir(), "debug")


def start_native_target(variant, workdir, depth=None, extra=()):
    """Start a native_target variant; returns once all its blocked threads sleep."""
    exe = target_path(_NATIVE_BINARIES[variant])
    workdir = str(workdir)
    oracle_path = os.path.join(workdir, f"oracle-{variant}-{mark()}.json")
    stats_path = os.path.join(workdir, f"stats-{variant}-{mark()}.bin")
    argv = [exe, "--ready-fd", "{ready_fd}", "--oracle", oracle_path, "--stats", stats_path]
    if depth is not None:
        argv += ["--depth", str(depth)]
    argv += list(extra)
    t = start_target(argv)
    with open(oracle_path) as f:
        t.oracle = json.load(f)
    assert t.oracle["pid"] == t.pid
    t.stats = Stats(stats_path)
    t.variant = variant
    t.debug_dir = native_debug_dir() if variant == "stripped" else None
    # The ready byte comes from main right before its own blocking call.
    wait_threads_sleeping(t.pid, [th["tid"] for th in t.oracle["threads"] if th["blocked"]])
    return t


def native_dump_args(target):
    """Extra stackpeek arguments a native target variant needs (its --debug-dir)."""
    return ["--debug-dir", target.debug_dir] if target.debug_dir else []
