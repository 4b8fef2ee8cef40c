"""Faults: whatever happens during a dump, the target survives it unharmed.

Why: the pause is the dangerous moment.  The target may exit, be killed or
exec while stackpeek attaches, holds or unwinds it; its threads may come and
go; the user may hit Ctrl-C, kill or SIGKILL stackpeek at any instant.  In
every case the target must keep running (or have exited on its own, with its
own status), stackpeek must exit with a clear "stackpeek: ..." message and a
documented code (0 ok, 1 partial, 3 no such process, 6 zombie; or death by the signal
sent), and no zombie or stopped process may remain.

Known limit: a SIGKILLed stackpeek cannot undo the EINTR that its stop
causes in epoll_wait if it dies in the microseconds between interrupting a
thread and fixing that up; the SIGKILL case tolerates (and counts) exactly
that anomaly and nothing else.

Complements test_native_safety.py (signals while held at the test hook,
SIGKILL of the target while held, an already-traced target): here faults are
injected at random moments (seeded; the seed is printed and can be set with
STACKPEEK_FAULT_SEED) over many iterations (STACKPEEK_FAULT_ITERATIONS per
case, default 40), against the self-checking stress target, whose anomaly
count must stay at zero.
"""

import os
import random
import signal
import subprocess
import time

import pytest

import harness
from test_safety_stress import assert_no_leftovers, record_figures, start_stress_target

HOLD_LINE = "stackpeek: test hold: target paused"
HOLD_ENV = {"STACKPEEK_TEST_HOLD_PAUSE": "1"}
DOCUMENTED = {0: "ok", 1: "partial", 3: "no such process", 6: "not dumpable (zombie)"}


def iterations(default=40):
    return int(os.environ.get("STACKPEEK_FAULT_ITERATIONS", default))


@pytest.fixture
def rng():
    seed = int(os.environ.get("STACKPEEK_FAULT_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"fault injection seed: {seed} (set STACKPEEK_FAULT_SEED={seed} to replay)")
    return random.Random(seed)


def run_dump(pid, timeout=60):
    return harness.run_stackpeek(["dump", "--format", "json", pid], timeout=timeout)


def check_outcome(code, stderr, allowed, what):
    assert code in allowed, (f"{what}: stackpeek exited {code}, expected one of {sorted(allowed)}\n"
                             f"stderr:\n{stderr}")
    if code not in (0,) and code > 0:
        lines = [l for l in stderr.splitlines() if l.strip()]
        assert lines and lines[0].startswith("stackpeek: "), \
            f"{what}: exit {code} without a 'stackpeek: ' message:\n{stderr}"
    assert "internal error" not in stderr, f"{what}: internal error:\n{stderr}"


def median_dump_seconds(pid, n=5):
    times = []
    for _ in range(n):
        start = time.monotonic()
        res = run_dump(pid)
        times.append(time.monotonic() - start)
        assert res.returncode == 0, res.stderr
    return sorted(times)[n // 2]


# ----------------------------------------------------------------- signals to stackpeek


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_signal_at_a_random_moment_of_the_dump(tmp_path, rng, sig):
    target = start_stress_target(tmp_path)
    typical = median_dump_seconds(target.pid)
    n = iterations()
    outcomes = {}
    for i in range(n):
        delay = rng.uniform(0, typical * 1.5)
        sp = harness.spawn_stackpeek(["dump", "--format", "json", target.pid])
        time.sleep(delay)  # the fault-injection point, not a synchronisation
        sp.send_signal(sig)
        try:
            code = sp.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"iteration {i}: stackpeek did not exit within 30 s of {sig.name}")
        err = sp.stderr.read().decode(errors="replace")
        check_outcome(code, err, {0, -sig}, f"iteration {i} ({sig.name} after {delay * 1e3:.1f} ms)")
        outcomes[code] = outcomes.get(code, 0) + 1
        harness.assert_running(target.pid)
        check_clean(target, sig, f"after iteration {i} ({sig.name} after {delay * 1e3:.1f} ms)")
        assert_no_leftovers(target.pid)
    target.stats.wait_progress()
    eintr = check_clean(target, sig, "at the end")
    # A normal dump still works: nothing was left attached.
    assert run_dump(target.pid).returncode == 0
    print(f"{sig.name}: {n} injections, outcomes {outcomes}")
    # The injections must have hit the dump itself, not only before or after it.
    assert outcomes.get(-sig, 0) > 0, f"no injection interrupted a dump: {outcomes}"
    record_figures(suite="faults", case=f"signal-{sig.name}", injected=n,
                   survived=n, interrupted=outcomes.get(-sig, 0), eintr_surfaced=eintr)


def check_clean(target, sig, context):
    """Zero anomalies; for SIGKILL, epoll's EINTR is tolerated and counted.

    A SIGKILLed stackpeek cannot run any code: if it dies between
    PTRACE_INTERRUPT and undoing the EINTR that the stop caused in
    epoll_wait (microseconds per dump), the kernel detaches and the target
    sees that EINTR.  It is the only tolerated anomaly, and only for SIGKILL.
    """
    if sig != signal.SIGKILL:
        target.stats.assert_clean(context)
        return 0
    per_worker = target.stats.per_worker_anomalies()
    others = {k: v for k, v in per_worker.items() if k != "epoll" and v}
    assert not others, f"anomalies {context}: {per_worker}; last: {target.stats.last_anomaly()!r}"
    if per_worker["epoll"]:
        assert "Interrupted system call" in target.stats.last_anomaly(), target.stats.last_anomaly()
    return per_worker["epoll"]


# ----------------------------------------------------------------- the target goes away


def test_target_killed_at_a_random_moment_of_the_dump(tmp_path, rng):
    """Target SIGKILLed while stackpeek attaches, holds, unwinds or symbolizes it."""
    n = iterations()
    probe = start_stress_target(tmp_path)
    typical = median_dump_seconds(probe.pid)
    probe.kill()
    outcomes = {}
    for i in range(n):
        target = start_stress_target(tmp_path)
        delay = rng.uniform(0, typical * 1.5)
        sp = harness.spawn_stackpeek(["dump", "--format", "json", target.pid])
        time.sleep(delay)  # fault injection point
        target.proc.send_signal(signal.SIGKILL)
        try:
            code = sp.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"iteration {i}: stackpeek hung after its target was killed")
        err = sp.stderr.read().decode(errors="replace")
        check_outcome(code, err, set(DOCUMENTED), f"iteration {i} (kill after {delay * 1e3:.1f} ms)")
        if code == 1:
            assert "exited during the dump" in err, err
        outcomes[code] = outcomes.get(code, 0) + 1
        assert target.proc.wait(timeout=30) == -signal.SIGKILL
        assert_no_leftovers()
    print(f"target killed mid-dump: {n} injections, stackpeek exit codes {outcomes}")
    record_figures(suite="faults", case="target-killed", injected=n, survived=n,
                   outcomes={str(k): v for k, v in outcomes.items()})


def test_target_exiting_on_its_own_during_dumps(tmp_path, rng):
    """The target exits (status 0) by itself while being dumped over and over."""
    n = max(4, iterations() // 4)
    outcomes = {}
    for i in range(n):
        lifetime = rng.randrange(20, 200)
        target = start_stress_target(tmp_path, "--exit-after", lifetime)
        dumps = 0
        while target.proc.poll() is None:
            res = run_dump(target.pid)
            check_outcome(res.returncode, res.stderr, set(DOCUMENTED), f"iteration {i}")
            outcomes[res.returncode] = outcomes.get(res.returncode, 0) + 1
            dumps += 1
            if res.returncode == 3:
                break
        status = target.proc.wait(timeout=30)
        assert status == 0, f"iteration {i}: the target exited {status}, not 0 on its own"
        target.stats.assert_clean(f"in iteration {i}")
        assert_no_leftovers()
    print(f"target exiting on its own: {n} targets, dump exit codes {outcomes}")
    record_figures(suite="faults", case="target-exits", injected=n, survived=n,
                   outcomes={str(k): v for k, v in outcomes.items()})


@pytest.mark.parametrize("extra_threads", [0, 24], ids=["few-threads", "many-threads"])
def test_target_execing_during_dumps(tmp_path, extra_threads):
    """A target that re-execs itself every few ms, from the main thread and from
    another thread in turn: exec races attach and hold.

    The exec waits, under the lock PTRACE_SEIZE takes, for the threads it kills
    to be reaped by their tracer: stackpeek must reap them while it seizes or
    both wait forever (this hung in CI). With more threads to seize, a dump
    lands in that window more often. A dump that races an exec is taken again
    once the exec is done, so nearly every dump must succeed outright."""
    target = start_stress_target(tmp_path, "--exec-loop", 3, "--exec-threads", extra_threads)
    n = iterations() * 2
    outcomes = {}
    first_generation = target.stats.generation()
    for i in range(n):
        res = run_dump(target.pid)
        check_outcome(res.returncode, res.stderr, set(DOCUMENTED), f"dump {i} of an exec loop")
        outcomes[res.returncode] = outcomes.get(res.returncode, 0) + 1
        assert target.proc.poll() is None, f"dump {i}: the exec-looping target died"
        assert_no_leftovers(target.pid, execing=True)
    assert outcomes.get(0, 0) >= 0.9 * n, f"too many dumps failed across an exec: {outcomes}"
    # Still execing: the generation keeps increasing, the process is fine.
    gen = target.stats.generation()
    harness.wait_until(lambda: target.stats.generation() > gen + 2, 30,
                       "the exec loop to continue")
    assert target.stats.generation() > first_generation
    target.stats.assert_clean("at the end")
    print(f"exec loop with {extra_threads} extra threads: {n} dumps, exit codes {outcomes}, "
          f"generation {target.stats.generation()}")
    record_figures(suite="faults", case="target-execs" + (f"-{extra_threads}-more-threads" if extra_threads else ""),
                   injected=n, survived=n,
                   outcomes={str(k): v for k, v in outcomes.items()})


def test_signal_sent_to_the_target_while_held_is_not_lost(tmp_path):
    """SIGTERM to a held target is delivered once stackpeek lets it go."""
    target = start_stress_target(tmp_path)
    sp = harness.spawn_stackpeek(["dump", "--format", "json", target.pid], env=HOLD_ENV)
    harness.read_until_line(sp.stderr, HOLD_LINE, timeout=60)
    target.proc.send_signal(signal.SIGTERM)
    sp.send_signal(signal.SIGINT)
    assert sp.wait(timeout=30) == -signal.SIGINT
    try:
        status = target.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the SIGTERM sent while the target was held was lost")
    assert status == -signal.SIGTERM
    assert_no_leftovers()


def test_target_killed_while_held_with_json_and_text(tmp_path):
    """Killed while held, in both output formats: exit 1 with a message, valid output."""
    for fmt in ("json", "text"):
        target = start_stress_target(tmp_path)
        sp = harness.spawn_stackpeek(["dump", "--format", fmt, target.pid], env=HOLD_ENV,
                                     stdout=subprocess.PIPE)
        harness.read_until_line(sp.stderr, HOLD_LINE, timeout=60)
        target.proc.send_signal(signal.SIGKILL)
        out, err = sp.communicate(timeout=60)
        err = err.decode(errors="replace")
        assert sp.returncode == 1, f"{fmt}: exit {sp.returncode}\n{err}"
        assert "exited during the dump" in err
        if fmt == "json":
            import json
            doc = json.loads(out)
            assert doc["pid"] == target.pid and doc["errors"], doc
        target.proc.wait(timeout=30)
        assert_no_leftovers()


# ----------------------------------------------------------------- thread churn


def test_thread_churn_during_dumps(tmp_path):
    """Threads created and joined continuously while the process is dumped."""
    target = start_stress_target(tmp_path, "--churn", 2)
    n = iterations() * 5
    outcomes = {}
    for i in range(n):
        res = run_dump(target.pid)
        check_outcome(res.returncode, res.stderr, {0}, f"dump {i} under thread churn")
        outcomes[res.returncode] = outcomes.get(res.returncode, 0) + 1
        stopped = {t: s for t, s in harness.thread_states(target.pid).items() if s in "tT"}
        assert not stopped, f"dump {i}: threads left stopped: {stopped}"
        target.stats.assert_clean(f"after dump {i}")
    target.stats.wait_progress()
    target.stats.assert_clean("at the end")
    assert_no_leftovers(target.pid)
    churned = target.stats.ops()["churn"] * 4
    print(f"thread churn: {n} dumps, ~{churned} threads created and joined meanwhile")
    record_figures(suite="faults", case="thread-churn", injected=n, survived=n,
                   threads_churned=churned)
