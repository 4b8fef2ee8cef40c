"""pytest-stackpeek: dump the stacks of a test that runs too long.

Why: a test that hangs in CI is killed with the whole job and leaves only
"timed out". With --stackpeek-timeout, a watchdog thread in the pytest
process notices a test that runs longer than the limit and has the stackpeek
tool dump every thread of the pytest process and its children -- Python and
native frames -- into the report, while the test goes on.

Domain facts relied on:
  - A process cannot ptrace itself or its own threads, so the dump is done by
    a separate stackpeek process; it attaches to pytest from outside, and
    leaves itself out of the tree it dumps. The watchdog thread that waits
    for it would be in the dump too, always the same and never the reason a
    test hangs, so it passes its own thread id with --skip-thread.
  - The watchdog must not run Python code in the main thread (that is the
    one that hangs), so it is a daemon thread waiting on a condition with a
    deadline; results are handed to the main thread, which attaches them to
    the report when pytest builds it.
  - pytest's fd-level capture redirects fd 2 only while a test phase runs;
    at pytest_configure it is still the real stderr, so a dup of it taken
    then reaches the terminal / CI log even in the middle of a test.
"""

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from ._debugger import debugger_attached, stack_depth

SECTION = "stackpeek"
_DUMP_TIMEOUT = 120  # seconds stackpeek itself may take before we give up


def pytest_addoption(parser):
    group = parser.getgroup("stackpeek", "stack dumps of slow tests (pytest-stackpeek)")
    group.addoption("--stackpeek-timeout", type=float, default=None, metavar="SECONDS",
                    help="dump the stacks of the test process and its children when a "
                         "single test runs longer than SECONDS (the test goes on)")
    group.addoption("--stackpeek-bin", default=None, metavar="PATH",
                    help="the stackpeek executable (default: $STACKPEEK_BIN, then PATH)")
    parser.addini("stackpeek_timeout", "default for --stackpeek-timeout (seconds)",
                  default=None)


def _timeout(config):
    value = config.getoption("stackpeek_timeout")
    if value is None:
        ini = config.getini("stackpeek_timeout")
        value = float(ini) if ini else None
    return value if value and value > 0 else None


def _find_binary(config):
    return (config.getoption("stackpeek_bin") or os.environ.get("STACKPEEK_BIN")
            or shutil.which("stackpeek"))


def pytest_configure(config):
    timeout = _timeout(config)
    if timeout is None:
        return
    binary = _find_binary(config)
    if not binary or not os.access(binary, os.X_OK):
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            "pytest-stackpeek: stackpeek not found (%r); slow tests will not be dumped. "
            "Pass --stackpeek-bin PATH or set STACKPEEK_BIN." % (binary,)), stacklevel=2)
        return
    watchdog = Watchdog(binary, timeout, os.dup(2))
    config.pluginmanager.register(WatchdogPlugin(watchdog), "stackpeek-watchdog")


def pytest_unconfigure(config):
    plugin = config.pluginmanager.get_plugin("stackpeek-watchdog")
    if plugin is not None:
        plugin.watchdog.stop()


class WatchdogPlugin:
    """The hooks, registered only when the watchdog is on."""

    def __init__(self, watchdog):
        self.watchdog = watchdog

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.watchdog.arm(item.nodeid)
        try:
            yield
        finally:
            self.watchdog.disarm()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        dump = self.watchdog.take(item.nodeid)
        if dump is not None:
            outcome.get_result().sections.append((SECTION, dump))


class Watchdog:
    """One daemon thread; at most one dump per test."""

    def __init__(self, binary, timeout, terminal_fd):
        self.binary = binary
        self.timeout = timeout
        self.terminal_fd = terminal_fd
        self.main_thread = threading.main_thread().ident
        self._cond = threading.Condition()
        self._test = None       # nodeid of the running test
        self._deadline = None
        self._outer_depth = 0
        self._results = {}      # nodeid -> dump text, until the report takes it
        self._stopping = False
        _allow_children_to_trace_us()
        self._thread = threading.Thread(target=self._run, name="pytest-stackpeek", daemon=True)
        self._thread.start()

    def arm(self, nodeid):
        # Called in the main thread: frames up to here are pytest's, not the test's.
        outer_depth = stack_depth(sys._getframe())
        with self._cond:
            self._test = nodeid
            self._outer_depth = outer_depth
            self._deadline = time.monotonic() + self.timeout
            self._cond.notify()

    def disarm(self):
        with self._cond:
            self._test = self._deadline = None
            self._cond.notify()

    def take(self, nodeid):
        with self._cond:
            return self._results.pop(nodeid, None)

    def stop(self):
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=_DUMP_TIMEOUT + 5)
        os.close(self.terminal_fd)

    def _run(self):
        while True:
            with self._cond:
                while not self._stopping and (
                        self._deadline is None or time.monotonic() < self._deadline):
                    wait = None if self._deadline is None else self._deadline - time.monotonic()
                    self._cond.wait(wait)
                if self._stopping:
                    return
                test, self._deadline = self._test, None  # once per test
                outer_depth = self._outer_depth
            if debugger_attached(self.main_thread, outer_depth):
                continue  # paused at a breakpoint is not hung
            text = self._dump(test)
            with self._cond:
                self._results[test] = text
            self._tell_terminal(text)

    def _dump(self, test):
        header = ("%s has been running for more than %gs; stacks of the test process "
                  "(pid %d) and its children:\n" % (test, self.timeout, os.getpid()))
        command = [self.binary, "dump", "--tree", str(os.getpid())]
        tid = _current_tid()
        if tid is not None:
            command[3:3] = ["--skip-thread", str(tid)]
        try:
            res = subprocess.run(command,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, timeout=_DUMP_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as e:
            return header + "pytest-stackpeek: running %s failed: %s\n" % (self.binary, e)
        text = header + res.stdout.decode("utf-8", "replace")
        if res.returncode != 0 or res.stderr:
            text += "\n[stackpeek exited %d] %s" % (res.returncode,
                                                   res.stderr.decode("utf-8", "replace"))
        return text

    def _tell_terminal(self, text):
        banner = "\n" + "=" * 30 + " pytest-stackpeek " + "=" * 30 + "\n"
        try:
            os.write(self.terminal_fd, (banner + text + "\n").encode("utf-8", "replace"))
        except OSError:
            pass  # the report still has it


def _current_tid():
    """The calling thread's kernel thread id, or None (threading.get_native_id()
    is 3.8+; /proc/thread-self names it on every Linux since 3.17)."""
    try:
        return int(os.readlink("/proc/thread-self").rsplit("/", 1)[1])
    except (OSError, ValueError):
        return None


def _allow_children_to_trace_us():
    """Under Yama ptrace_scope 1 only ancestors may trace a process; declare
    ourselves as the allowed tracer, which admits our descendants (stackpeek)."""
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            if f.read().strip() != "1":
                return
        import ctypes
        PR_SET_PTRACER = 0x59616D61
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PTRACER, os.getpid(), 0, 0, 0)
    except (OSError, AttributeError, ValueError):
        pass
