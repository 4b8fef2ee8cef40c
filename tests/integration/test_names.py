"""Function names as gdb prints them, frame for frame (issue 21, section 4).

Why: C++ users compare stackpeek's stacks with gdb's, and read names the way
gdb and c++filt spell them.  tests/targets/names_target.cpp parks one thread
behind each construct whose name is easy to get wrong: inlined functions
without a linkage name (static inline in a namespace, anonymous namespaces,
libstdc++'s inlined helpers such as std::thread's _Invoker::_M_invoke<0>),
lambdas, std::function, templates and member functions.

The oracle is gdb itself, attached to the same parked process right after
stackpeek has dumped it:
  - a frame stackpeek reports inlined is compared with the name in gdb's
    backtrace, which gdb builds from DWARF: equal as they are, or once the
    return type and parameter list that stackpeek adds from a linkage name
    (and gdb's backtrace leaves out) are removed;
  - a frame that is not inlined is compared with gdb's `info symbol` for its
    call site: the ELF symbol demangled by gdb (libiberty's spelling), exactly,
    parameters included, as stackpeek names these frames from the symbol table.
Compared are the frames whose code is in names_target, in order, with their
addresses and whether they are inlined, for every thread.  libc and libstdc++ frames are left out:
gdb has no debug information for libstdc++ here and presents libc's inlined
frames differently, neither of which is about names.  Frames past main
(_start), which gdb does not show, are left out too.
"""

import os
import re
import shutil
import subprocess
import types

import pytest

import harness

TARGET = "names_target"
THREAD_LINE = re.compile(r'^Thread \d+ \(Thread 0x[0-9a-f]+ \(LWP (\d+)\)')
# With `set print frame-arguments none` the arguments read "(x=..., y=...)".
FRAME_LINE = re.compile(r'^#(\d+)\s+(?:(0x[0-9a-f]+) in )?(.*?) \((?:[\w#@]+=\.\.\.(?:, )?)*\)'
                        r'(?: at (\S+):\d+| from \S+)?$')
INFO_SYMBOL = re.compile(r'^(.*?)(?: \+ \d+)? in section \S+')


# ----------------------------------------------------------------- helpers


def target_range(pid):
    """[start, end) of names_target's mappings in pid."""
    exe = os.path.realpath(f"/proc/{pid}/exe")
    starts, ends = [], []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == exe:
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                starts.append(lo)
                ends.append(hi)
    assert starts, f"no mapping of {exe} in /proc/{pid}/maps"
    return min(starts), max(ends)


def stackpeek_frames(doc, pid):
    """{tid: [frame]}: names_target's frames of each thread, up to main."""
    lo, hi = target_range(pid)
    threads = {}
    for thread in doc["threads"]:
        frames = []
        for frame in thread["frames"]:
            if frame.get("kind") != "native" or not lo <= int(frame["address"], 16) < hi:
                continue
            frames.append(frame)
            if frame.get("function") == "main":
                break
        threads[thread["tid"]] = frames
    return threads


def run_gdb(pid, commands):
    gdb = shutil.which("gdb")
    assert gdb, "gdb is not installed (scripts/setup installs it)"
    argv = [gdb, "-nx", "-batch", "-iex", "set debuginfod enabled off",
            "-ex", "set print frame-arguments none", "-p", str(pid)]
    for command in commands:
        argv += ["-ex", command]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"gdb failed ({res.returncode}):\n{res.stderr}"
    return res.stdout


def parse_backtraces(text, pid):
    """{tid: [frame]} for names_target's frames of gdb's `thread apply all bt`,
    each with .address, .name, .file and .inlined.  gdb prints an address
    once per code location: a frame printed without one is the caller, at the
    same address, of an inlined frame printed above it."""
    lo, hi = target_range(pid)
    threads, frames, last = {}, None, None
    for line in text.splitlines():
        if m := THREAD_LINE.match(line):
            frames, last = threads.setdefault(int(m.group(1)), []), None
            continue
        m = FRAME_LINE.match(line)
        if not m or frames is None:
            continue
        if m.group(2):
            address = int(m.group(2), 16)
        elif last is not None:
            address = last.address
            last.inlined = True
        else:
            address = None  # frame 0 at the start of a line: not one of ours here
        last = types.SimpleNamespace(address=address, name=m.group(3), file=m.group(4),
                                     inlined=False)
        if address is not None and lo <= address < hi:
            frames.append(last)
        else:
            assert not (last.file or "").endswith(TARGET + ".cpp"), \
                f"a frame of the target without a known address in gdb's output: {line}"
    return threads


def symbol_names(pid, addresses):
    """{address: gdb's demangled symbol containing address - 1 (the call)}."""
    addresses = sorted(addresses)
    out = run_gdb(pid, [f"info symbol {a - 1:#x}" for a in addresses])
    lines = [line for line in out.splitlines() if " in section " in line]
    assert len(lines) == len(addresses), f"gdb's info symbol output:\n{out}"
    return {a: INFO_SYMBOL.match(line).group(1) for a, line in zip(addresses, lines)}


def without_signature(name):
    """`void shapes::deep<3>(int)` -> `shapes::deep<3>`: the name without the
    return type, parameter list and qualifiers a demangled name carries."""
    qualifiers = (" const", " volatile", " &&", " &")
    while any(name.endswith(q) for q in qualifiers):
        name = name[:-len(next(q for q in qualifiers if name.endswith(q)))]
    if name.endswith(")"):
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i]
                break
    depth = 0
    for i, c in enumerate(name):
        depth += {"<": 1, "(": 1, ">": -1, ")": -1}.get(c, 0)
        if c == " " and depth == 0:
            return name[i + 1:]
    return name


def describe(frames):
    return "\n".join(f"  {a:#x} {n}{' [inlined]' if i else ''}" for a, i, n in frames)


# ----------------------------------------------------------------- fixture


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    since = harness.mark()
    target = harness.start_target([harness.target_path(TARGET), "--ready-fd", "{ready_fd}"])
    harness.wait_threads_sleeping(target.pid, [target.pid])
    doc = harness.dump_json(target.pid, "--max-frames", "4096")
    ours = stackpeek_frames(doc, target.pid)
    gdbs = parse_backtraces(run_gdb(target.pid, ["thread apply all bt"]), target.pid)
    outer = {int(f["address"], 16) for frames in ours.values() for f in frames if not f["inlined"]}
    symbols = symbol_names(target.pid, outer)
    yield target, ours, gdbs, symbols
    harness.cleanup(since)


# ----------------------------------------------------------------- tests


def test_target_exercises_the_constructs(oracle):
    """Guards the build: gdb sees the frames the target is made of, and the
    ones meant to be inlined are (-O2 and always_inline did their work)."""
    _, _, gdbs, symbols = oracle
    frames = [f for thread in gdbs.values() for f in thread]
    names = [f.name for f in frames] + list(symbols.values())
    for construct in ("{lambda(int)#2}", "std::function<void (int)>::operator()", "_Invoker<"):
        assert any(construct in n for n in names), f"gdb shows no frame with {construct!r}"
    for inlined in ("ns::helper", "(anonymous namespace)::anon_inner", "shapes::deep<3>",
                    "shapes::Widget::rest", "::_M_invoke<0>"):
        assert any(f.inlined and f.name.endswith(inlined) for f in frames), \
            f"gdb shows no inlined frame {inlined!r}"


def test_same_threads(oracle):
    _, ours, gdbs, _ = oracle
    assert sorted(ours) == sorted(gdbs)


def test_names_frame_for_frame(oracle):
    _, ours, gdbs, symbols = oracle
    problems = []
    for tid, gdb_frames in sorted(gdbs.items()):
        mine = ours.get(tid, [])
        got = [(int(f["address"], 16), bool(f["inlined"]), f.get("function") or "??") for f in mine]
        want = [(f.address, f.inlined, f.name) for f in gdb_frames]
        if [(a, i) for a, i, _ in got] != [(a, i) for a, i, _ in want]:
            problems.append(f"thread {tid}: frames differ (address, inlined)\n"
                            f"stackpeek:\n{describe(got)}\ngdb:\n{describe(want)}")
            continue
        for (address, inlined, ours_name), (_, _, gdb_name) in zip(got, want):
            if inlined:
                ok = gdb_name in (ours_name, without_signature(ours_name))
                expected = gdb_name
            else:
                expected = symbols[address]
                ok = ours_name == expected
            if not ok:
                problems.append(f"thread {tid} {address:#x}: stackpeek {ours_name!r}, "
                                f"gdb {expected!r}")
    assert not problems, "\n".join(problems)


def test_target_running_after_gdb_and_dump(oracle):
    target, _, _, _ = oracle
    harness.assert_running(target.pid)
