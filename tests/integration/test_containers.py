"""Containers: Python stacks of a process in a pid namespace of its own, and in a chroot.

Why: seen from the host, a container's process has two sets of thread ids:
the host's (what /proc and ptrace use) and its namespace's (what the process
itself records: CPython's native_thread_id, the tid in glibc's struct
pthread). Matching thread states by the namespace's ids gave native frames
only, with no word why (issue 21 §2). These tests run
tests/targets/python/stacks_target.py, whose in-process oracle records its
own stacks (pyharness), as a container would:

- under `unshare --fork --pid --mount-proc` on every interpreter, and one
  namespace inside another: `dump` in JSON and text against the oracle,
  frame by frame, thread names included;
- `record` and `record --nonblocking` in a namespace: every sample of a
  parked thread has the oracle's frames;
- `dump --async`: each event loop's thread by the id it is dumped under;
- in a chroot (inside a pid namespace, as a container is, and a plain one)
  holding a copy of pyenv's 3.9 at a path the host does not have, with the
  shared libraries `ldd` names: the interpreter and its files are found
  through the target's root. Skipped by name when that interpreter is missing;
- never a silent native-only dump: a libpython that cannot be opened, and
  thread states that name no thread of the process, each get a note saying
  why (a child forked by libc behind CPython's back keeps its parent's
  native_thread_id: tests/targets/python/raw_fork_target.py).

The oracle's thread ids are the namespace's (it reads its own /proc); the
kernel's NSpid lines (/proc/PID/task/TID/status) give each thread's host id.
The readiness pipe is inherited through unshare and chroot. The target's
host pid is the innermost process below the outer unshare (children files).
unshare needs CAP_SYS_ADMIN: without it the tests are skipped, saying so.
"""

import functools
import json
import os
import re
import shutil
import subprocess

import pytest

import harness
import pyharness

UNSHARE = ["unshare", "--fork", "--pid", "--kill-child"]
PYENV_PTHREAD_VERSION = "3.9"   # reads tids from struct pthread
PYENV_CHROOT_VERSION = "3.9"    # built with a libpython
CHROOT_PYTHON_HOME = "/opt/py39"   # not a path of the host's
TARGETS_IN_CHROOT = "/targets"
# What a copied interpreter can do without: tests, IDE, GUI, packaging.
STDLIB_SKIPPED = ("test", "site-packages", "idlelib", "tkinter", "turtledemo", "lib2to3",
                  "ensurepip", "__pycache__", "config-*")


@functools.lru_cache(maxsize=None)
def unshare_problem():
    """Why unshare cannot make a pid namespace here, or None."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    res = subprocess.run(UNSHARE + ["--mount-proc", "true"], capture_output=True, text=True,
                         timeout=30)
    if res.returncode != 0:
        return "unshare --pid fails here (needs CAP_SYS_ADMIN): " + res.stderr.strip()
    return None


def namespaces(depth):
    """The command prefix for `depth` nested pid namespaces, each with its /proc."""
    return (UNSHARE + ["--mount-proc"]) * depth


def innermost_process(pid):
    """The process at the end of the chain of only children below `pid`."""
    while True:
        children = []
        for tid in harness.task_ids(pid):
            with open("/proc/%d/task/%d/children" % (pid, tid)) as f:
                children += [int(c) for c in f.read().split()]
        if not children:
            return pid
        assert len(children) == 1, "process %d has children %r" % (pid, children)
        pid = children[0]


def host_tids_by_own(pid):
    """{the thread's id in its own (innermost) pid namespace: our id} for `pid`."""
    out = {}
    for tid in harness.task_ids(pid):
        with open("/proc/%d/task/%d/status" % (pid, tid)) as f:
            ns = re.search(r"^NSpid:\s*(.*)$", f.read(), re.M).group(1).split()
        out[int(ns[-1])] = tid
    return out


def start_contained(wrapper, python, scenario, workdir, root="/", script=None, env=None,
                    pid_namespace=True):
    """stacks_target.py under `wrapper` (which ends by running its argv);
    `root` is the target's / (then `python`, `script` and the oracle file are
    paths inside it). Returns the Target with .host_pid and an oracle whose
    thread ids are the host's."""
    if unshare_problem():
        pytest.skip(unshare_problem())
    name = "oracle-%s-%d.json" % (scenario, harness.mark())
    oracle_inside = os.path.join(str(workdir) if root == "/" else "/", name)
    argv = wrapper + [python, script or pyharness.target_script(), scenario, oracle_inside,
                      "{ready_fd}"]
    t = harness.start_target(argv, ready_timeout=90, env=env)
    with open(os.path.join(root, oracle_inside.lstrip("/"))) as f:
        t.oracle = json.load(f)
    assert t.oracle["settled"], "target threads never came to rest: %r" % t.oracle
    t.host_pid = innermost_process(t.pid)
    own = host_tids_by_own(t.host_pid)
    assert own.get(t.oracle["pid"]) == t.host_pid, own
    assert (t.oracle["pid"] != t.host_pid) == pid_namespace, (
        "pid %d in the target's namespace, %d in ours" % (t.oracle["pid"], t.host_pid))
    t.host_tids = own
    for ot in t.oracle.get("threads", []):
        ot["tid"] = own[ot["tid"]]
    return t


def exact_threads(oracle):
    threads = [ot for ot in oracle["threads"] if ot["exact"]]
    assert threads
    return threads


def check_json_dump(dump, oracle):
    assert dump["python"] and dump["python"]["version"] == oracle["version"], dump["python"]
    assert not dump["errors"], dump["errors"]
    by_tid = pyharness.threads_by_tid(dump)
    columns = tuple(int(x) for x in oracle["version"].split(".")[:2]) >= (3, 11)
    problems = []
    for ot in exact_threads(oracle):
        dumped = by_tid.get(ot["tid"])
        if dumped is None:
            problems.append("thread %s (%s) missing from the dump" % (ot["tid"], ot["name"]))
            continue
        diff = pyharness.compare_thread(dumped, ot, columns)
        if diff:
            problems.append(diff)
        if dumped["python_thread_name"] != ot["name"]:
            problems.append("thread %s: Python name %r, want %r"
                            % (ot["tid"], dumped["python_thread_name"], ot["name"]))
    assert not problems, "\n\n".join(problems)


TEXT_HEADER = re.compile(r'^Thread (\d+) "(.*)" \(', re.M)
TEXT_FRAME = re.compile(r'^  File "(.*)", line (\d+), in (.*)$', re.M)


def text_threads(text):
    """{tid: (name, [(file, line, function)] outermost first)} of a text dump."""
    out = {}
    headers = list(TEXT_HEADER.finditer(text))
    for i, h in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        frames = [(m.group(1), int(m.group(2)), m.group(3))
                  for m in TEXT_FRAME.finditer(text, h.end(), end)]
        out[int(h.group(1))] = (h.group(2), frames)
    return out


def check_text_dump(text, oracle):
    threads = text_threads(text)
    problems = []
    for ot in exact_threads(oracle):
        want = (ot["name"], [(f["file"], f["line"], f["function"])
                             for f in reversed(ot["frames"])])
        got = threads.get(ot["tid"])
        if got != want:
            problems.append("thread %s:\n  got  %r\n  want %r" % (ot["tid"], got, want))
    assert not problems, "\n".join(problems) + "\n\n" + text


def dump_text(pid):
    res = harness.run_stackpeek(["dump", pid])
    assert res.returncode == 0, res.stderr
    return res.stdout


def check_dumps(t):
    check_json_dump(harness.dump_json(t.host_pid), t.oracle)
    check_text_dump(dump_text(t.host_pid), t.oracle)
    harness.assert_running(t.host_pid)


def test_dump_in_a_pid_namespace_matches_the_oracle(python, tmp_path):
    check_dumps(start_contained(namespaces(1), python, "blocking", tmp_path))


def some_interpreters():
    """Debian's 3.11 (native_thread_id) and pyenv's 3.9 (tid read from struct pthread)."""
    params = pyharness.interpreter_params()
    return [p for p in params if p[0] in ("system-python3", "pyenv-" + PYENV_PTHREAD_VERSION)]


@pytest.fixture(params=some_interpreters(), ids=[i for i, _ in some_interpreters()])
def some_python(request):
    name, path = request.param
    if path is None:
        pytest.skip("interpreter %s not found on this machine" % name)
    return path


def test_dump_in_nested_pid_namespaces_matches_the_oracle(some_python, tmp_path):
    t = start_contained(namespaces(2), some_python, "blocking", tmp_path)
    check_dumps(t)


def test_asyncio_loops_are_on_threads_named_by_our_ids(tmp_path):
    """--async names each event loop's thread: from its threading ident,
    through the thread states, by the id we dump that thread under."""
    script = os.path.join(os.path.dirname(pyharness.target_script()), "depth_target.py")
    t = start_contained(namespaces(1), pyharness.SYSTEM_PYTHON, "asyncio", tmp_path,
                        script=script)
    dump = harness.dump_json(t.host_pid, "--async")
    assert dump["asyncio"] is not None, dump["errors"]
    threads = set(th["tid"] for th in dump["threads"])
    loops = dict((task["id"], loop["thread"]) for loop in dump["asyncio"]["loops"]
                 for task in loop["tasks"])
    wrong = [(w["name"], loops.get(w["id"]), t.host_tids[w["thread"]])
             for w in t.oracle["tasks"] if loops.get(w["id"]) != t.host_tids[w["thread"]]]
    assert not wrong, "(task, loop thread, want): %r" % wrong[:10]
    assert set(loops.values()) <= threads


@pytest.mark.parametrize("mode", [[], ["--nonblocking"]], ids=["default", "nonblocking"])
def test_record_in_a_pid_namespace_gives_python_samples(some_python, mode, tmp_path):
    t = start_contained(namespaces(2), some_python, "blocking", tmp_path)
    out = str(tmp_path / "p.json")
    res = harness.run_stackpeek(["record", "--pid", t.host_pid, "--idle", "--duration", "1",
                                 "--rate", "100", "-o", out, *mode])
    assert res.returncode == 0, "record failed (%d):\n%s" % (res.returncode, res.stderr)
    harness.assert_running(t.host_pid)
    problems = pyharness.sample_problems(pyharness.samples_by_tid(out), exact_threads(t.oracle))
    assert not problems, "\n".join(problems)


def shared_libraries(paths):
    """Every library `ldd` says the files `paths` load, and the loader."""
    libs = set()
    for p in paths:
        out = subprocess.run(["ldd", p], capture_output=True, text=True, timeout=30).stdout
        libs.update(re.findall(r"(/\S+) \(0x", out))
    return libs


def copy_into(root, path):
    dest = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copy2(path, dest)


def build_chroot(root, python):
    """A root holding a copy of the pyenv interpreter `python` (bin/pythonX.Y
    of its prefix) at CHROOT_PYTHON_HOME, the libraries it loads and the
    target scripts; returns the interpreter's path inside it."""
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    name = os.path.basename(python)
    home = os.path.join(root, CHROOT_PYTHON_HOME.lstrip("/"))
    stdlib = os.path.join("lib", name)
    shutil.copytree(os.path.join(prefix, stdlib), os.path.join(home, stdlib),
                    ignore=shutil.ignore_patterns(*STDLIB_SKIPPED))
    os.makedirs(os.path.join(home, "bin"))
    shutil.copy2(os.path.realpath(python), os.path.join(home, "bin", name))
    loaded = [os.path.realpath(python)] + [
        os.path.join(dirpath, f) for dirpath, _, files in os.walk(os.path.join(home, stdlib))
        for f in files if f.endswith(".so")]
    for lib in shared_libraries(loaded):
        if lib.startswith(prefix + "/lib/"):
            shutil.copy2(lib, os.path.join(home, "lib", os.path.basename(lib)))
        else:
            copy_into(root, lib)
    shutil.copytree(os.path.dirname(pyharness.target_script()),
                    os.path.join(root, TARGETS_IN_CHROOT.lstrip("/")))
    os.makedirs(os.path.join(root, "proc"))
    return os.path.join(CHROOT_PYTHON_HOME, "bin", name)


@pytest.mark.parametrize("pid_namespace", [True, False], ids=["pid-namespace", "plain"])
def test_dump_in_a_chroot_with_another_python(pid_namespace, tmp_path):
    python = pyharness.find_pyenv_python(PYENV_CHROOT_VERSION)
    if python is None:
        pytest.skip("interpreter pyenv-%s not found on this machine" % PYENV_CHROOT_VERSION)
    root = str(tmp_path / "root")
    inside = build_chroot(root, python)
    assert not os.path.exists(inside), "%s should exist only inside the chroot" % inside
    # --mount-proc without --pid: the host's pids, in a /proc of the chroot's
    # own (in a mount namespace of its own, so the host's mounts stay as they are).
    unshare = UNSHARE if pid_namespace else [a for a in UNSHARE if a != "--pid"]
    wrapper = unshare + ["--mount-proc=" + os.path.join(root, "proc"), "chroot", root]
    # pyenv's interpreter finds libpython by an absolute rpath of the host's.
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(CHROOT_PYTHON_HOME, "lib"))
    t = start_contained(wrapper, inside, "blocking", tmp_path, root=root,
                        script=os.path.join(TARGETS_IN_CHROOT, "stacks_target.py"), env=env,
                        pid_namespace=pid_namespace)
    assert t.oracle["version"].startswith(PYENV_CHROOT_VERSION + ".")
    check_dumps(t)
    text = dump_text(t.host_pid)
    # Source lines are read from the chroot's files too.
    assert "    time.sleep(FOREVER)  # BLOCKS\n" in text, text


def test_a_libpython_that_cannot_be_opened_is_named_not_silent(tmp_path):
    """The interpreter's symbols come from its file: when that cannot be
    opened (here deleted after loading, as an upgrade does), the dump says
    so and why instead of passing for a native program."""
    python = pyharness.find_pyenv_python(PYENV_CHROOT_VERSION)
    if python is None:
        pytest.skip("interpreter pyenv-%s not found on this machine" % PYENV_CHROOT_VERSION)
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    libdir = tmp_path / "lib"
    libdir.mkdir()
    libs = [f for f in os.listdir(os.path.join(prefix, "lib")) if f.startswith("libpython")]
    assert libs, "pyenv's %s has no libpython" % python
    for f in libs:
        shutil.copy2(os.path.join(prefix, "lib", f), str(libdir / f))
    t = pyharness.start_scenario(python, "blocking", tmp_path,
                                 env=dict(os.environ, LD_LIBRARY_PATH=str(libdir)))
    with open("/proc/%d/maps" % t.pid) as f:
        assert str(libdir) in f.read(), "the copy of libpython was not loaded"
    for f in libs:
        os.unlink(str(libdir / f))
    dump = harness.dump_json(t.pid)
    assert dump["python"] is None
    notes = [e for e in dump["errors"] if e.startswith("Python stacks unavailable")]
    assert len(notes) == 1, dump["errors"]
    assert str(libdir) in notes[0] and "deleted or replaced" in notes[0], notes[0]
    assert dump["python_unavailable"] and dump["python_unavailable"] in notes[0], dump
    assert "Note: " + notes[0] in dump_text(t.pid)
    # Where it is seen when stdout goes to a file: on stderr, with the reason.
    res = harness.run_stackpeek(["dump", t.pid])
    assert "Python stacks unavailable (" in res.stderr and "deleted or replaced" in res.stderr, (
        res.stderr)
    # record says it in its summary, and --nonblocking in its error.
    out = str(tmp_path / "p.folded")
    rec = harness.run_stackpeek(["record", "--pid", t.pid, "--idle", "--duration", "0.3",
                                 "-o", out])
    assert rec.returncode == 0, rec.stderr
    assert "Note: Python stacks unavailable" in rec.stderr and "deleted or replaced" in rec.stderr, (
        rec.stderr)
    nb = harness.run_stackpeek(["record", "--pid", t.pid, "--nonblocking", "--duration", "0.3",
                                "-o", out])
    assert nb.returncode != 0 and "deleted or replaced" in nb.stderr, nb.stderr


def test_thread_states_that_match_no_thread_are_named_not_silent(tmp_path):
    """A child forked by libc behind CPython's back keeps the parent's
    native_thread_id (3.11+) in its only thread state: the dump says that
    the thread states name other threads, and which, in JSON and text."""
    script = os.path.join(os.path.dirname(pyharness.target_script()), "raw_fork_target.py")
    t = harness.start_target([pyharness.SYSTEM_PYTHON, script, "{ready_fd}"])
    child = harness.wait_until(lambda: [c for tid in harness.task_ids(t.pid)
                                        for c in open("/proc/%d/task/%d/children"
                                                      % (t.pid, tid)).read().split()],
                               10, "the forked child")
    child = int(child[0])
    dump = harness.dump_json(child)
    assert dump["python"] is not None, dump["errors"]
    assert all(f["kind"] == "native" for th in dump["threads"] for f in th["frames"])
    notes = [e for e in dump["errors"] if e.startswith("Python stacks unavailable")]
    assert len(notes) == 1, dump["errors"]
    assert "thread state names thread %d, which is not a thread of this process" % t.pid in (
        notes[0]), notes[0]
    assert "Note: " + notes[0] in dump_text(child)
