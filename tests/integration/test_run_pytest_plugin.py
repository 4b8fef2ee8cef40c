"""Integration test of the pytest plugin (tools/pytest-stackpeek).

Why: the plugin's promise is that a test running longer than
--stackpeek-timeout gets the stacks of the pytest process (and children)
into its report, without being interrupted, and that it stays quiet while
a debugger holds the test.

How: an inner pytest session (Debian's /usr/bin/python3 -m pytest, the plugin
loaded from its source with -p and PYTHONPATH) runs generated tests. Its
conftest writes every report's sections to a JSON-lines file, so the test
checks the report object itself. The slow inner test does not sleep for a
fixed time: it polls (bounded) until the plugin has a dump for it, so it is
certainly still running while it is dumped.
"""

import json
import os
import subprocess
import sys

import pytest

import harness

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN_SRC = os.path.normpath(os.path.join(HERE, "..", "..", "tools", "pytest-stackpeek"))

INNER_CONFTEST = '''
import json, os

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


def run_inner(tmp_path, *args, stackpeek_bin=None):
    env = dict(os.environ, PYTHONPATH=PLUGIN_SRC, INNER_REPORTS=str(tmp_path / "reports.jsonl"),
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    env["STACKPEEK_BIN"] = stackpeek_bin or harness.stackpeek_bin()
    return subprocess.run([PYTHON, "-m", "pytest", "-p", "pytest_stackpeek", "-p",
                           "no:cacheprovider", "-q", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def reports(tmp_path):
    with open(tmp_path / "reports.jsonl") as f:
        return [json.loads(line) for line in f]


def stackpeek_sections(report):
    return [text for name, text in report["sections"] if name == "stackpeek"]


def test_slow_test_gets_a_stack_dump_in_its_report(tmp_path):
    inner = write_inner(tmp_path, 1)
    res = run_inner(tmp_path, "--stackpeek-timeout", "1", str(inner))
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
    if "\nPython 3." not in dump:
        pytest.skip("stackpeek printed no Python frames (no decoder for this interpreter); "
                    "the report section exists, which is all that can be checked")
    line = next(n for n, text in enumerate(inner.read_text().splitlines(), 1)
                if "SLOW TEST WAITS HERE" in text)
    assert f'test_inner.py", line {line}, in test_slow_but_fine' in dump, dump


def test_missing_binary_is_a_warning_not_an_error(tmp_path):
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    res = run_inner(tmp_path, "--stackpeek-timeout", "1", "--stackpeek-bin",
                    str(tmp_path / "no-stackpeek"), "test_ok.py")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "stackpeek not found" in res.stdout + res.stderr
    assert "--stackpeek-bin" in res.stdout + res.stderr
