"""The source tree's shape: folders depend one way, and no file grows past
what one reader can hold.

Each folder of src/ has a rank; a file may include headers of its own folder
or of folders with a lower rank only. Two folders of one rank may not include
each other, so the graph has no cycles by construction. A folder missing
from the table fails the test: deciding where it sits is part of adding it.
"""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

# Lower ranks know nothing of higher ones.
RANKS = {
    "text": 0,      # escaping and formatting of plain values
    "model": 0,     # the snapshot every renderer reads
    "process": 0,   # /proc, ptrace, files of the target
    "memory": 1,    # the memory-source interface and its implementations
    "module": 1,    # ELF files and their loads: the one load bias
    "unwind": 2,
    "symbolize": 2,
    "python": 2,
    "profile": 3,
    "render": 3,
    "driver": 4,    # dump and record: the stages put together
    "run": 5,       # stackpeek run: a process tree under a watchdog
}
# Within python/, by concern: the version tables, reading objects, the
# frame decoder, and what a dump shows beyond frames.
PYTHON_RANKS = {"layout": 0, "objects": 1, "frames": 2, "depth": 3}
PYTHON_INCLUDE = re.compile(r'^\s*#\s*include\s+"python/([a-z_]+)/', re.M)
MAX_LINES = 700
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/', re.M)


def source_files():
    return sorted(p for p in SRC.rglob("*") if p.suffix in (".h", ".cpp"))


def test_every_folder_has_a_rank():
    folders = {p.name for p in SRC.iterdir() if p.is_dir()}
    assert folders - RANKS.keys() == set(), "give new folders a rank in RANKS"


def test_folders_include_only_lower_ranks():
    wrong = []
    for path in source_files():
        own = path.relative_to(SRC).parts[0]
        for used in set(INCLUDE.findall(path.read_text(errors="replace"))):
            if used in ("llvm", own) or used not in RANKS:
                continue
            if RANKS[used] >= RANKS[own]:
                wrong.append(f"{path.relative_to(ROOT)} includes {used}/")
    assert wrong == []



def test_python_groups_include_only_lower_ranks():
    python = SRC / "python"
    assert {p.name for p in python.iterdir()} == PYTHON_RANKS.keys(), \
        "python/ holds only its groups; give a new one a rank"
    wrong = []
    for path in source_files():
        parts = path.relative_to(SRC).parts
        own = parts[1] if parts[0] == "python" else None
        for used in set(PYTHON_INCLUDE.findall(path.read_text(errors="replace"))):
            if own is not None and used != own and PYTHON_RANKS[used] >= PYTHON_RANKS[own]:
                wrong.append(f"{path.relative_to(ROOT)} includes python/{used}/")
    assert wrong == []


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_file_fits_one_reading(path):
    lines = path.read_text(errors="replace").count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by concern"
