"""pytest glue for the integration suites: makes harness.py importable and
guarantees that no process a test started (targets, stackpeek, helpers)
outlives the test, whatever the outcome: everything started during a test is
SIGKILLed and reaped in its teardown (stackpeek first, so stopped targets are
released by the kernel before they are killed)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import pyharness  # noqa: E402

_INTERPRETERS = pyharness.interpreter_params()


@pytest.fixture(params=_INTERPRETERS, ids=[i for i, _ in _INTERPRETERS])
def python(request):
    """Every interpreter the Python suites run on; a missing one is skipped
    by name (pyharness.EXPECTED_VERSIONS)."""
    name, path = request.param
    if path is None:
        pytest.skip("interpreter %s not found on this machine" % name)
    return path


@pytest.fixture(autouse=True)
def _reap_test_processes():
    since = harness.mark()
    yield
    harness.cleanup(since)


def pytest_sessionfinish(session, exitstatus):
    harness.cleanup(0)
