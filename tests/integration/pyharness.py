"""Helpers for the Python-stack integration suite (test_python_*.py).

Why: the Python tests run the same target script (tests/targets/python/
stacks_target.py) under every CPython found on the machine and compare
stackpeek's JSON with the stacks the target recorded about itself. This module
finds the interpreters, starts a scenario and loads its oracle, and compares
a dumped thread with an oracle thread frame by frame.

Interpreters: Debian's /usr/bin/python3 always, plus every pyenv build under
`pyenv root` (or ~/.pyenv) for the versions listed in EXPECTED_VERSIONS, plus
the newer builds pyenv does not offer here, installed under /opt/cpython/NAME
(or $STACKPEEK_CPYTHON_ROOT/NAME) for the names in EXPECTED_BUILDS; a missing
one becomes a pytest skip naming it.
"""

import glob
import json
import os
import subprocess

import harness

EXPECTED_VERSIONS = ["2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]
SYSTEM_PYTHON = "/usr/bin/python3"
# Builds newer than pyenv offers: free-threaded 3.13 and 3.14, 3.14 with a
# shared and with a static libpython, Debian's own (stripped) 3.15.
EXPECTED_BUILDS = ["3.13t", "3.14", "3.14t", "3.14-static", "3.15"]


def pyenv_root():
    try:
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return os.path.expanduser("~/.pyenv")


def find_pyenv_python(version):
    """Path of pythonX.Y from the newest pyenv build of X.Y, or None."""
    candidates = sorted(glob.glob(os.path.join(pyenv_root(), "versions", version + ".*",
                                               "bin", "python" + version)))
    return candidates[-1] if candidates else None


def cpython_root():
    return os.environ.get("STACKPEEK_CPYTHON_ROOT") or "/opt/cpython"


def find_cpython_build(name):
    """Path of the interpreter of build NAME ("3.14t": bin/python3.14t), or None."""
    version = name.split("-")[0]
    path = os.path.join(cpython_root(), name, "bin", "python" + version)
    return path if os.access(path, os.X_OK) else None


def interpreter_params():
    """(id, path-or-None) for every interpreter the suite should cover."""
    params = [("system-python3", SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else None)]
    params += [("pyenv-" + v, find_pyenv_python(v)) for v in EXPECTED_VERSIONS]
    params += [("cpython-" + b, find_cpython_build(b)) for b in EXPECTED_BUILDS]
    return params


def target_script():
    src = os.environ.get("STACKPEEK_PYTHON_TARGETS_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "targets", "python")
    return os.path.join(src, "stacks_target.py")


def start_scenario(python, scenario, workdir, ready_timeout=90, env=None):
    """Starts the target under `python`; returns the Target with .oracle."""
    oracle_path = os.path.join(str(workdir), "oracle-%s-%d.json" % (scenario, harness.mark()))
    t = harness.start_target([python, target_script(), scenario, oracle_path, "{ready_fd}"],
                             ready_timeout=ready_timeout, env=env)
    with open(oracle_path) as f:
        t.oracle = json.load(f)
    assert t.oracle["pid"] == t.pid
    assert t.oracle["settled"], "target threads never came to rest: %r" % t.oracle
    return t


def python_frames(thread):
    return [f for f in thread["frames"] if f["kind"] == "python"]


def threads_by_tid(dump):
    return dict((t["tid"], t) for t in dump["threads"])


def expected_frames(oracle_thread, with_columns):
    keys = ["file", "function", "line"]
    if with_columns:
        keys += ["column", "end_line", "end_column"]
    return [dict((k, f.get(k)) for k in keys) for f in oracle_thread["frames"]], keys


def compare_thread(dumped, oracle_thread, with_columns):
    """Returns a description of the first difference, or None."""
    want, keys = expected_frames(oracle_thread, with_columns)
    got = [dict((k, f.get(k)) for k in keys) for f in python_frames(dumped)]
    if got == want:
        return None
    lines = ["thread %s (%s): Python frames differ" % (oracle_thread["tid"], oracle_thread["name"])]
    for i in range(max(len(got), len(want))):
        g = got[i] if i < len(got) else None
        w = want[i] if i < len(want) else None
        lines.append("%s #%d got  %r\n      want %r" % ("  " if g == w else "!!", i, g, w))
    return "\n".join(lines)


def samples_by_tid(path):
    """tid -> list of samples, each a list of frame dicts, innermost first,
    from a `record -o X.json` file."""
    with open(path) as f:
        doc = json.load(f)
    out = {}
    for s in doc["samples"]:
        out.setdefault(s["tid"], []).append([doc["frames"][i] for i in s["frames"]])
    return out


def sample_problems(by_tid, oracle_threads, min_samples=20):
    """What is wrong with the samples of parked threads: too few of them, or
    one whose frames (file, function, line) are not the oracle's."""
    problems = []
    for ot in oracle_threads:
        want = [(f["file"], f["function"], f["line"]) for f in ot["frames"]]
        samples = by_tid.get(ot["tid"], [])
        if len(samples) < min_samples:
            problems.append("thread %s (%s): %d samples" % (ot["tid"], ot["name"], len(samples)))
        for stack in samples:
            got = [(f.get("file"), f["function"], f.get("line")) for f in stack]
            if got != want:
                problems.append("thread %s (%s): sample\n  %r\nwant\n  %r"
                                % (ot["tid"], ot["name"], got, want))
                break
    return problems
