"""Integration test of the pytest plugin (tools/pytest-stackpeek).

Why: the plugin's promise is that a test running longer than
--stackpeek-timeout gets the stacks of the pytest process (and children)
into its report, without being interrupted, that the dump leaves out the
plugin's own watchdog thread, and that it stays quiet while a debugger holds
the test. And that it installs the ways docs/ci.md tells Debian users, with
nothing written into its source tree.

How: an inner pytest session (Debian's /usr/bin/python3) runs generated
tests, with the plugin loaded each documented way: from its source with -p
and PYTHONPATH; installed with pip into a venv the test makes
(--system-site-packages, so Debian's pytest and flit_core are there; no
network); installed with pipx from a wheel built offline. Its conftest
writes every report's sections to a JSON-lines file, so the test checks the
report object itself. The slow inner test does not sleep for a fixed time:
it polls (bounded) until the plugin has a dump for it, so it is certainly
still running while it is dumped; it records its own thread id and the
watchdog's, the oracle for which threads the dump shows.
"""

import json
import os
import shutil
import subprocess

import pytest

import harness

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN_SRC = os.path.normpath(os.path.join(HERE, "..", "..", "tools", "pytest-stackpeek"))

INNER_CONFTEST = '''
import json, os, threading

def pytest_runtest_setup(item):
    # Which threads the dump must show and must not (read in-process).
    plugin = item.config.pluginmanager.get_plugin("stackpeek-watchdog")
    if plugin is None:
        return
    with open(os.environ["INNER_REPORTS"] + ".tids", "w") as f:
        json.dump({"test": threading.get_native_id(),
                   "watchdog": plugin.watchdog._thread.native_id}, f)

def pytest_runtest_logreport(report):
    with open(os.environ["INNER_REPORTS"], "a") as f:
        f.write(json.dumps({"nodeid": report.nodeid, "when": report.when,
                            "outcome": report.outcome,
                            "sections": [list(s) for s in report.sections]}) + "\\n")
'''

INNER_TESTS = '''
import bdb, threading, time

def watchdog_results(request):
    return request.config.pluginmanager.get_plugin("stackpeek-watchdog").watchdog._results

def test_under_a_debugger(request):
    # A bdb debugger (pdb's base) active in this thread: no dump, however long.
    debugger = bdb.Bdb()
    debugger.set_trace()
    end = time.monotonic() + 3 * TIMEOUT
    while time.monotonic() < end:
        time.sleep(0.05)
    debugger.set_continue()
    assert request.node.nodeid not in watchdog_results(request)

def test_slow_but_fine(request):
    released = threading.Event()
    deadline = time.monotonic() + 60
    while request.node.nodeid not in watchdog_results(request):
        assert time.monotonic() < deadline, "no dump within 60 s"
        released.wait(0.05)  # SLOW TEST WAITS HERE

def test_quick():
    pass
'''


def write_inner(tmp_path, timeout):
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_inner.py").write_text(INNER_TESTS.replace("TIMEOUT", str(timeout)))
    return tmp_path / "test_inner.py"


def inner_env(tmp_path, stackpeek_bin=None, **extra):
    env = dict(os.environ, INNER_REPORTS=str(tmp_path / "reports.jsonl"),
               PYTHONDONTWRITEBYTECODE="1", **extra)
    env.pop("PYTEST_ADDOPTS", None)
    env["STACKPEEK_BIN"] = stackpeek_bin or harness.stackpeek_bin()
    return env


def run_inner(tmp_path, *args, stackpeek_bin=None):
    """The plugin from its source tree: PYTHONPATH and -p."""
    env = inner_env(tmp_path, stackpeek_bin, PYTHONPATH=PLUGIN_SRC)
    return subprocess.run([PYTHON, "-m", "pytest", "-p", "pytest_stackpeek", "-p",
                           "no:cacheprovider", "-q", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def reports(tmp_path):
    with open(tmp_path / "reports.jsonl") as f:
        return [json.loads(line) for line in f]


def stackpeek_sections(report):
    return [text for name, text in report["sections"] if name == "stackpeek"]


def check_slow_test_dumped(tmp_path, res, inner):
    """The inner session of INNER_TESTS dumped the slow test once, and only it,
    with the test's thread in the dump and the watchdog's left out."""
    assert res.returncode == 0, res.stdout + res.stderr
    by_test = {}
    for r in reports(tmp_path):
        by_test.setdefault(r["nodeid"].split("::")[-1], []).extend(stackpeek_sections(r))
    assert by_test["test_quick"] == []
    assert by_test["test_under_a_debugger"] == [], "quiet while a debugger is active"
    dumps = by_test["test_slow_but_fine"]
    assert len(dumps) == 1, by_test
    dump = dumps[0]
    assert "test_slow_but_fine has been running for more than 1s" in dump
    assert "Process " in dump and "Thread " in dump
    assert "[stackpeek exited" not in dump, dump
    # The dump went to the terminal as it happened, too.
    assert "pytest-stackpeek" in res.stderr + res.stdout
    with open(str(tmp_path / "reports.jsonl") + ".tids") as f:
        tids = json.load(f)
    assert "Thread %d " % tids["test"] in dump, dump
    assert "Thread %d " % tids["watchdog"] not in dump, "the plugin's own thread: " + dump
    if "\nPython 3." not in dump:
        pytest.skip("stackpeek printed no Python frames (no decoder for this interpreter); "
                    "the report section exists, which is all that can be checked")
    line = next(n for n, text in enumerate(inner.read_text().splitlines(), 1)
                if "SLOW TEST WAITS HERE" in text)
    assert f'test_inner.py", line {line}, in test_slow_but_fine' in dump, dump


def test_slow_test_gets_a_stack_dump_in_its_report(tmp_path):
    inner = write_inner(tmp_path, 1)
    res = run_inner(tmp_path, "--stackpeek-timeout", "1", str(inner))
    check_slow_test_dumped(tmp_path, res, inner)


def source_tree_files():
    """Every file under the plugin's source, ignored by git or not."""
    return sorted(os.path.relpath(os.path.join(d, f), PLUGIN_SRC)
                  for d, _, files in os.walk(PLUGIN_SRC) for f in files)


def offline(env):
    """pip that never reaches for an index (there is none here, nor in CI)."""
    return dict(env, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")


def test_pip_install_into_a_venv_leaves_the_source_tree_clean(tmp_path):
    before = source_tree_files()
    venv = tmp_path / "venv"
    env = offline(inner_env(tmp_path))
    subprocess.run([PYTHON, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, env=env, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-build-isolation",
                          PLUGIN_SRC], env=env, capture_output=True, text=True,
                         timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert source_tree_files() == before, "pip install wrote into the source tree"
    inner = write_inner(tmp_path, 1)
    res = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-p",
                          "no:cacheprovider", "-q", "--stackpeek-timeout", "1", str(inner)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    check_slow_test_dumped(tmp_path, res, inner)
    assert source_tree_files() == before


def test_pipx_install_of_an_offline_wheel(tmp_path):
    if not shutil.which("pipx"):
        pytest.skip("pipx is not installed (Debian package pipx; scripts/setup installs it)")
    before = source_tree_files()
    env = offline(inner_env(tmp_path, PIPX_HOME=str(tmp_path / "pipx"),
                            PIPX_BIN_DIR=str(tmp_path / "bin")))
    wheel_dir = tmp_path / "dist"
    subprocess.run([PYTHON, "-m", "flit_core.wheel", "--outdir", str(wheel_dir), PLUGIN_SRC],
                   check=True, env=env, capture_output=True, timeout=300)
    (wheel,) = wheel_dir.glob("pytest_stackpeek-*.whl")
    pipx = subprocess.run(["pipx", "install", "--system-site-packages", str(wheel)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert pipx.returncode == 0, pipx.stdout + pipx.stderr
    assert source_tree_files() == before, "building the wheel wrote into the source tree"
    inner = write_inner(tmp_path, 1)
    res = subprocess.run([str(tmp_path / "bin" / "pytest-stackpeek"), "-p", "no:cacheprovider",
                          "-q", "--stackpeek-timeout", "1", str(inner)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    check_slow_test_dumped(tmp_path, res, inner)


def test_missing_binary_is_a_warning_not_an_error(tmp_path):
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    res = run_inner(tmp_path, "--stackpeek-timeout", "1", "--stackpeek-bin",
                    str(tmp_path / "no-stackpeek"), "test_ok.py")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "stackpeek not found" in res.stdout + res.stderr
    assert "--stackpeek-bin" in res.stdout + res.stderr
