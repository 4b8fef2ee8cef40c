"""Hostile input from the target: nothing it contains may hurt stackpeek or the user.

Why: thread names, file names and the command line are chosen by the target,
and so is every byte of its memory.  stackpeek often runs as root in a
terminal.  Against hostile_target (tests/targets/stress/hostile_target.c) we
check that text output shows escape sequences and control characters as
visible escapes (no byte < 0x20 but newline, no DEL, no C1 control), that
JSON output is valid UTF-8 JSON with undecodable bytes replaced, that code
mapped from a file later replaced by a FIFO or a device node does not hang
the dump, and that corrupt stacks (garbage, an endless chain, a frame loop)
end in a marked error within the frame bound, with bounded memory use.
"""

import json
import os
import resource
import subprocess
import time

import pytest

import harness

HOSTILE_ARGV_TAIL = ["\x1b[2J\x1b]0;owned\x07", "\x9b" "31m", "tab\there"]


@pytest.fixture
def hostile(tmp_path):
    argv = [harness.target_path("hostile_target"), "--dir", tmp_path, "--ready-fd", "{ready_fd}",
            *HOSTILE_ARGV_TAIL]
    t = harness.start_target(argv, ready_timeout=30)
    roles = {}
    with open(tmp_path / "oracle.txt") as f:
        for line in f:
            role, tid = line.split()
            roles[role] = int(tid)
    t.roles = roles
    harness.wait_threads_sleeping(t.pid, list(roles.values()))
    return t


def dump_bytes(pid, fmt, timeout=60):
    """Runs a dump with binary output; returns (exit code, stdout bytes, stderr, seconds, maxrss KiB)."""
    env = dict(os.environ)
    env.pop("STACKPEEK_TEST_HOLD_PAUSE", None)
    start = time.monotonic()
    proc = harness.spawn([harness.stackpeek_bin(), "dump", "--format", fmt, pid],
                         kind="stackpeek", stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = proc.communicate(timeout=timeout)
    seconds = time.monotonic() - start
    return proc.returncode, out, err.decode(errors="replace"), seconds


def assert_terminal_safe(data):
    text = data.decode("utf-8")  # raises if not valid UTF-8
    for i, ch in enumerate(text):
        code = ord(ch)
        if (code < 0x20 and ch != "\n") or code == 0x7f or 0x80 <= code < 0xa0:
            context = text[max(0, i - 40):i + 40]
            raise AssertionError(f"control character U+{code:04X} in text output near {context!r}")


def thread_by_tid(doc, tid):
    return next(t for t in doc["threads"] if t["tid"] == tid)


def test_text_output_escapes_names_paths_and_command(hostile):
    code, out, err, _ = dump_bytes(hostile.pid, "text")
    assert code == 0, err
    assert_terminal_safe(out)
    text = out.decode()
    # The hostile strings are shown, visibly escaped.
    assert '"\\x1b[31mRED\\x1b[0m"' in text, text[:3000]
    assert '"\\x1b]0;pwn\\x07x"' in text
    assert '"bad\\xff\\xfe\\x9b2J"' in text
    assert '"a\\tb\\rc\\x7f\\x01"' in text
    assert "\\x1b[2J\\x1b]0;owned\\x07" in text  # the command line
    assert "\\x1b[2Jfifo\\xff" in text  # the FIFO-replaced module's name
    assert "dev\\x1b[5m.so" in text


def test_json_output_is_valid_and_replaces_invalid_utf8(hostile):
    code, out, err, _ = dump_bytes(hostile.pid, "json")
    assert code == 0, err
    raw = out.decode("utf-8")  # strict: invalid UTF-8 must have been replaced
    assert not any(ord(c) < 0x20 and c not in "\n " for c in raw), "raw control character in JSON"
    doc = json.loads(raw)
    names = {t["tid"]: t["name"] for t in doc["threads"]}
    r = hostile.roles
    assert names[r["name-csi"]] == "\x1b[31mRED\x1b[0m"
    assert names[r["name-osc"]] == "\x1b]0;pwn\x07x"
    assert names[r["name-utf8"]] == "bad\ufffd\ufffd\ufffd2J"
    assert names[r["name-ctl"]] == "a\tb\rc\x7f\x01"
    assert "\x1b[2J\x1b]0;owned\x07" in doc["command"]


@pytest.mark.parametrize("role,marker", [("code-fifo", "fifo"), ("code-device", "dev")])
def test_code_mapped_from_a_file_replaced_by_fifo_or_device_does_not_hang(hostile, role, marker):
    code, out, err, seconds = dump_bytes(hostile.pid, "json", timeout=60)
    assert code == 0, err
    assert seconds < 30, f"the dump took {seconds:.1f}s"
    th = thread_by_tid(json.loads(out), hostile.roles[role])
    assert th["frames"], th
    top = th["frames"][0]
    assert marker in (top["module"] or ""), top
    assert top["function"] is None, f"a FIFO/device cannot have provided symbols: {top}"
    harness.assert_running(hostile.pid)


@pytest.mark.parametrize("role", ["stack-garbage", "stack-deep", "stack-loop"])
def test_corrupt_stack_ends_in_a_marked_error(hostile, role):
    code, out, err, seconds = dump_bytes(hostile.pid, "json", timeout=120)
    assert code == 0, err
    doc = json.loads(out)
    th = thread_by_tid(doc, hostile.roles[role])
    assert th["errors"], f"{role}: no error marks the broken stack: {th['errors']}"
    assert 1 <= len(th["frames"]) <= 8192, len(th["frames"])
    assert th["frames"][0]["function"] == "hostile_park", th["frames"][0]
    # The other threads are whole.
    main = thread_by_tid(doc, hostile.pid)
    assert not main["errors"] and any(f["function"] == "main" for f in main["frames"]), main
    harness.assert_running(hostile.pid)


def test_memory_and_time_stay_bounded(hostile):
    """The 64 MiB fake stack is copied only up to the 8 MiB bound; the dump stays small."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    code, out, err, seconds = dump_bytes(hostile.pid, "json", timeout=120)
    assert code == 0, err
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, max over children
    doc = json.loads(out)
    deep = thread_by_tid(doc, hostile.roles["stack-deep"])
    assert any("depth limit" in e or "stopped" in e for e in deep["errors"]), deep["errors"]
    assert max(before, after) < 512 * 1024, f"a child used {max(before, after)} KiB"
    assert seconds < 60, f"the dump took {seconds:.1f}s"
    print(f"hostile dump: {seconds:.2f}s, pause {doc.get('pause_us')} us")


def test_repeated_dumps_of_the_hostile_target(hostile):
    """Many dumps in a row: same outcome every time, target keeps running."""
    for i in range(20):
        code, out, err, _ = dump_bytes(hostile.pid, "text")
        assert code == 0, f"dump {i}: {err}"
        assert_terminal_safe(out)
    harness.assert_running(hostile.pid)
