"""Every profile format of a real recording, opened by its consumer.

Why: the writers are unit-tested on a hand-built profile and checked by the
consumers on it (tests/profile); this checks what `stackpeek record`
actually writes for a live CPU-bound Python target, with Python, native
and thread-label frames (--native --threads): xmllint and the flame graph
width invariants for the SVG, speedscope's schema, `go tool pprof -raw`
for pprof (skipped when Go is absent), the folded-stack syntax, and the raw
JSON's internal references. The checks are tests/profile/check_formats.py
in its --file mode (no reference profile: each format is recorded
separately, so only consumer acceptance and self-consistency are checked;
content fidelity is the unit tests' and the fixture checks' job).
"""
import os
import subprocess

import pytest

import harness

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(harness._env_path("STACKPEEK_TARGETS_SRC_DIR"), "record", "cpu_split.py")
CHECK = os.path.join(HERE, "..", "profile", "check_formats.py")
SCHEMA = os.path.join(HERE, "..", "data", "speedscope-schema.json")
FILES = {"collapsed": "p.folded", "flamegraph": "p.svg", "speedscope": "p.speedscope.json",
         "pprof": "p.pb.gz", "json": "p.json"}


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_recorded_profile_is_accepted_by_its_consumer(fmt, tmp_path):
    target = harness.start_target([PYTHON, TARGET, "{ready_fd}", "0"])
    out = str(tmp_path / FILES[fmt])
    res = harness.run_stackpeek(["record", "--pid", target.pid, "--duration", "2", "--rate", "200",
                                 "--native", "--threads", "-o", out])
    assert res.returncode == 0, f"record failed ({res.returncode}):\n{res.stderr}"
    assert os.path.getsize(out) > 0
    check = subprocess.run([PYTHON, CHECK, "--file", out, "--schema", SCHEMA, fmt],
                           capture_output=True, text=True, timeout=300)
    if check.returncode == 77:
        pytest.skip(check.stdout.strip())
    assert check.returncode == 0, check.stdout + check.stderr
    harness.assert_running(target.pid)
