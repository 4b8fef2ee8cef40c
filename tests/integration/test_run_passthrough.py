"""Integration tests of `stackpeek run` as a transparent wrapper.

Why: CI scripts put stackpeek in front of their test command and must see
no difference while nothing hangs: same bytes on stdout and stderr, same
stdin, environment and working directory, the same exit status (128+N for a
death by signal N, as a shell reports it), and signals sent to stackpeek
reach the command exactly once.

How: each case runs the same command with and without stackpeek and
compares; the signal cases use hang.py's `signals` mode, which announces
every signal it gets on a readiness pipe and reports the list when the test
sends its end marker (SIGUSR2) directly.
"""

import os
import select
import signal
import subprocess
import time

import pytest

import harness

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))


def hang_py():
    src = os.environ.get("STACKPEEK_TARGETS_SRC_DIR") or os.path.join(HERE, "..", "targets")
    return os.path.join(src, "run", "hang.py")


def direct_and_wrapped(command, **kwargs):
    """Runs command alone and under `stackpeek run`; returns both results."""
    direct = subprocess.run(command, capture_output=True, timeout=60, **kwargs)
    wrapped = subprocess.run([harness.stackpeek_bin(), "run", "--timeout", "1h", "--", *command],
                             capture_output=True, timeout=60, **kwargs)
    return direct, wrapped


def expected_status(returncode):
    return 128 - returncode if returncode < 0 else returncode


@pytest.mark.parametrize("status", [0, 3])
def test_output_bytes_and_exit_status_pass_through(status):
    direct, wrapped = direct_and_wrapped([PYTHON, hang_py(), "output", str(status)])
    assert direct.returncode == status
    assert wrapped.returncode == status, wrapped.stderr
    assert wrapped.stdout == direct.stdout and b"\xff" in direct.stdout
    assert wrapped.stderr == direct.stderr and b"\x1b[31m" in direct.stderr


def test_death_by_sigsegv_is_139():
    crash = [PYTHON, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    direct, wrapped = direct_and_wrapped(crash)
    assert direct.returncode == -signal.SIGSEGV
    assert wrapped.returncode == 139, wrapped.stderr
    assert wrapped.stderr == direct.stderr


def test_stdin_environment_and_cwd_pass_through(tmp_path):
    show = [PYTHON, "-c",
            "import os, sys; data = sys.stdin.buffer.read(); "
            "print(os.getcwd(), os.environ['STACKPEEK_RUN_PROBE'], len(data), data[:4])"]
    env = dict(os.environ, STACKPEEK_RUN_PROBE="probe value ä")
    payload = b"\x00\x01binary stdin" * 5000
    direct, wrapped = direct_and_wrapped(show, cwd=tmp_path, env=env, input=payload)
    assert direct.returncode == 0, direct.stderr
    assert wrapped.returncode == 0, wrapped.stderr
    assert wrapped.stdout == direct.stdout
    assert str(tmp_path).encode() in wrapped.stdout


def test_command_not_found_127_and_not_executable_126(tmp_path):
    res = harness.run_stackpeek(["run", "--", str(tmp_path / "no-such-command")])
    assert res.returncode == 127
    assert res.stderr.startswith("stackpeek: cannot run ") and "No such file" in res.stderr
    plain = tmp_path / "plain.txt"
    plain.write_text("not a program\n")
    res = harness.run_stackpeek(["run", "--", str(plain)])
    assert res.returncode == 126, res.stderr
    assert "Permission denied" in res.stderr


def test_usage_errors_name_the_fix():
    res = harness.run_stackpeek(["run", "--timeout", "5min", "--", "true"])
    assert res.returncode == 2
    assert "invalid duration '5min'" in res.stderr and "15m" in res.stderr
    res = harness.run_stackpeek(["run", "--kill-on-idle", "--", "true"])
    assert res.returncode == 2 and "--idle-timeout" in res.stderr
    res = harness.run_stackpeek(["run"])
    assert res.returncode == 2 and "needs a command" in res.stderr


# ----------------------------------------------------------------- signals


class SignalProbe:
    """`stackpeek run -- hang.py signals` in a new session (no terminal)."""

    def __init__(self):
        r, w = os.pipe()
        env = dict(os.environ, STACKPEEK_TEST_READY_FD=str(w))
        self.proc = harness.spawn([harness.stackpeek_bin(), "run", "--", PYTHON, hang_py(),
                                   "signals"], kind="stackpeek", env=env, pass_fds=(w,),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        os.close(w)
        self.ready = r
        self.expect(b"p")
        self.command = self._command_pid()

    def _command_pid(self):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        data = f.read()
                except OSError:
                    continue
                if int(data[data.rindex(")") + 2:].split()[1]) == self.proc.pid:
                    return int(entry)
        raise AssertionError("the command is not a child of stackpeek")

    def expect(self, byte, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {byte!r} from the command within {timeout}s"
            if select.select([self.ready], [], [], left)[0]:
                got = os.read(self.ready, 1)
                assert got == byte, f"expected {byte!r}, got {got!r}"
                return

    def finish(self):
        os.kill(self.command, signal.SIGUSR2)
        out, err = self.proc.communicate(timeout=30)
        os.close(self.ready)
        return self.proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT])
def test_signals_to_stackpeek_reach_the_command_once(sig):
    probe = SignalProbe()
    os.kill(probe.proc.pid, sig)
    probe.expect(b"s")
    rc, out, err = probe.finish()
    assert rc == 0, err
    assert out == sig.name + "\n"


def test_signal_to_stackpeeks_process_group_is_delivered_once():
    # CI runners cancel a job by signalling its process group. Outside a
    # terminal the command has a group of its own, so only stackpeek gets
    # this one, and it forwards it: once, not twice.
    probe = SignalProbe()
    assert os.getpgid(probe.command) != os.getpgid(probe.proc.pid)
    os.killpg(probe.proc.pid, signal.SIGINT)
    probe.expect(b"s")
    os.killpg(probe.proc.pid, signal.SIGTERM)
    probe.expect(b"s")
    rc, out, err = probe.finish()
    assert rc == 0, err
    assert out == "SIGINT\nSIGTERM\n"
