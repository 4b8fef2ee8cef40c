#!/usr/bin/python3
"""Checks each profile format with the program that consumes it.

Why: the unit tests check what the writers produce; this checks that the
real consumers accept it and read back the same profile: xmllint for the
flame graph SVG (well-formed XML), speedscope's JSON schema (vendored in
tests/data, validated with python3-jsonschema), and `go tool pprof -raw`
for the pprof file (golang-go). The reference for "the same profile" is the
raw-samples JSON of the same fixture, whose own fidelity to the Profile the
unit tests pin down (tests/unit/profile_json_test.cpp).

Usage: check_formats.py --fixture BIN --schema FILE FORMAT
       check_formats.py --file FILE --schema FILE FORMAT
The second form checks a file written elsewhere (e.g. by `stackpeek
record`) with its consumer and for internal consistency only, as there is
no reference to compare with.
Exit 0 ok, 1 mismatch, 77 a consumer tool is missing (ctest: skipped).
"""
import argparse
import collections
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SKIP = 77
FILE_NAMES = {"collapsed": "profile.folded", "flamegraph": "profile.svg",
              "speedscope": "profile.speedscope.json", "pprof": "profile.pb.gz",
              "json": "profile.json"}


class Mismatch(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Mismatch(what)


def skip(tool):
    print(f"SKIP: {tool} is not installed (scripts/setup installs it)")
    sys.exit(SKIP)


# --- labels, as ProfileWriterSupport makes them (from the JSON's frames) ---

def plain(text):
    """Control characters made visible, as escapeForTerminal does."""
    out = []
    for ch in text:
        cp = ord(ch)
        if ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif cp < 0x20 or cp == 0x7F:
            out.append("\\x%02x" % cp)
        elif 0x80 <= cp < 0xA0:
            out.append("\\u{%02x}" % cp)
        else:
            out.append(ch)
    return "".join(out) or "??"


def label(frame):
    """Profile::label, then plain()."""
    fn = frame["function"]
    if frame["kind"] == "synthetic":
        return plain(fn)
    if frame["kind"] == "python" and frame["file"] is not None:
        line = f":{frame['line']}" if frame["line"] is not None else ""
        return plain(f"{fn} ({frame['file']}{line})")
    if frame["module"] is not None:
        return plain(f"{fn} ({os.path.basename(frame['module'])})")
    return plain(fn)


class Reference:
    """The raw-samples JSON: what every other format must agree with."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = json.load(f, parse_constant=lambda c: Mismatch(f"non-JSON constant {c}"))
        self.frames = self.doc["frames"]
        self.samples = self.doc["samples"]
        self.labels = [label(f) for f in self.frames]

    def label_stack(self, sample):  # outermost first
        return tuple(self.labels[i] for i in reversed(sample["frames"]))


# --- the checks, one per format ---

def check_json(ref, path):
    doc = ref.doc
    for key in ("rate_hz", "duration_ns", "processes", "threads", "frames", "samples"):
        expect(key in doc, f"json: no {key}")
    for f in ref.frames:
        expect(f["kind"] in ("python", "native", "synthetic"), f"json: kind {f['kind']}")
    for s in ref.samples:
        expect(all(0 <= i < len(ref.frames) for i in s["frames"]), f"json: bad frame index in {s}")
        expect(isinstance(s["t_ns"], int) and isinstance(s["tid"], int), f"json: types in {s}")
    expect(len(ref.samples) > 0, "json: no samples")


def check_collapsed(ref, path):
    got, lines = collections.Counter(), open(path, encoding="utf-8").read().splitlines()
    for line in lines:
        stack, _, count = line.rpartition(" ")
        expect(count.isdigit() and int(count) > 0 and stack, f"collapsed: malformed {line!r}")
        got[stack] += int(count)
    expect(lines == sorted(lines, key=lambda l: l.encode()), "collapsed: lines not sorted")
    expect(len(got) == len(lines), "collapsed: a stack has two lines")
    if ref is None:
        return
    expected = collections.Counter()
    for s in ref.samples:
        if s["frames"]:
            expected[";".join(l.replace(";", ":") for l in ref.label_stack(s))] += 1
    expect(got == expected, f"collapsed: stacks differ\n got {got}\nwant {expected}")


def check_flamegraph(ref, path):
    if not shutil.which("xmllint"):
        skip("xmllint (libxml2-utils)")
    run = subprocess.run(["xmllint", "--noout", path], capture_output=True, text=True)
    expect(run.returncode == 0, f"flamegraph: xmllint rejects it: {run.stderr}")
    ns = "{http://www.w3.org/2000/svg}"
    root = ET.parse(path).getroot()
    expect(len(root.findall(f".//{ns}script")) == 1, "flamegraph: not exactly one <script>")
    gs = [g for g in root.iter(f"{ns}g") if g.get("class") == "f"]
    total = int(root.get("data-total-samples"))
    expect(int(gs[0].get("data-n")) == total, "flamegraph: root count")
    expect(ref is None or total == len(ref.samples), "flamegraph: total samples")
    width = float(root.get("data-width")) - 2 * float(root.get("data-pad"))
    paths, children = {}, collections.defaultdict(list)
    for i, g in enumerate(gs):
        n, x = int(g.get("data-n")), int(g.get("data-x"))
        rect_w = float(g.find(f"{ns}rect").get("width"))
        expect(abs(rect_w - n * width / total) < 0.01, f"flamegraph: width of frame {i}")
        title = g.find(f"{ns}title").text.split("\n")[0]
        if i == 0:
            paths[0] = ()
            continue
        p = int(g.get("data-p"))
        expect(p < i, f"flamegraph: frame {i} before its parent")
        parent = gs[p]
        px, pn = int(parent.get("data-x")), int(parent.get("data-n"))
        expect(px <= x and x + n <= px + pn, f"flamegraph: frame {i} outside its parent")
        expect(int(g.get("data-d")) == int(parent.get("data-d")) + 1, f"flamegraph: depth of {i}")
        children[p].append((x, n))
        paths[i] = paths[p] + (title,)
    for p, spans in children.items():
        spans.sort()
        expect(sum(n for _, n in spans) <= int(gs[p].get("data-n")), f"flamegraph: children of {p}")
        expect(all(a[0] + a[1] <= b[0] for a, b in zip(spans, spans[1:])), f"flamegraph: overlap {p}")
    if ref is None:
        return
    expected = collections.Counter()
    not_xml = str.maketrans({"\ufffe": "\ufffd", "\uffff": "\ufffd"})  # not XML characters
    for s in ref.samples:
        stack = tuple(l.translate(not_xml) for l in ref.label_stack(s))
        for depth in range(1, len(stack) + 1):
            expected[stack[:depth]] += 1
    got = {paths[i]: int(g.get("data-n")) for i, g in enumerate(gs) if i}
    diff = set(got.items()) ^ set(expected.items())
    expect(not diff, f"flamegraph: tree differs in {sorted(diff)}")


def check_speedscope(ref, path, schema_path):
    try:
        import jsonschema
    except ImportError:
        skip("python3-jsonschema")
    doc = json.load(open(path, encoding="utf-8"))
    schema = json.load(open(schema_path, encoding="utf-8"))
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))
    expect(not errors, "speedscope: schema: " + "; ".join(e.message for e in errors[:5]))
    names = [f["name"] for f in doc["shared"]["frames"]]
    for prof in doc["profiles"]:
        expect(len(prof["samples"]) == len(prof["weights"]), "speedscope: samples vs weights")
        expect(all(0 <= i < len(names) for s in prof["samples"] for i in s), "speedscope: index")
        expect(prof["endValue"] - prof["startValue"] == sum(prof["weights"]), "speedscope: endValue")
    if ref is None:
        return
    expect(names == ref.labels, "speedscope: frame names differ")
    by_thread = collections.defaultdict(list)
    for s in sorted(ref.samples, key=lambda s: s["t_ns"]):
        by_thread[(s["pid"], s["tid"])].append(s)
    expect(len(doc["profiles"]) == len(by_thread), "speedscope: one profile per thread")
    for prof, (key, samples) in zip(doc["profiles"], sorted(by_thread.items())):
        expect(prof["name"].startswith(f"pid {key[0]} tid {key[1]}"), f"speedscope: {prof['name']}")
        expect(prof["unit"] == "nanoseconds", "speedscope: unit")
        expect(len(prof["samples"]) == len(prof["weights"]), "speedscope: samples vs weights")
        want = [list(reversed(s["frames"])) for s in samples]
        expect(prof["samples"] == want, f"speedscope: samples of {key}")
        expect(prof["weights"] == [s["weight_ns"] for s in samples], f"speedscope: weights {key}")
        expect(prof["endValue"] - prof["startValue"] == sum(prof["weights"]), "speedscope: endValue")


LOCATION = re.compile(r"^\s*(\d+): 0x[0-9a-f]+ (?:M=\d+ )?(.*) (\S*):(\d+) s=\d+$")


def read_pprof_raw(path):
    """go tool pprof -raw: ({location id: (name, file, line)}, [(values, [ids])])."""
    go = shutil.which("go")
    if not go:
        skip("go (golang-go)")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, HOME=tmp, GOCACHE=tmp, GOPATH=tmp, PPROF_TMPDIR=tmp)
        run = subprocess.run([go, "tool", "pprof", "-raw", "-symbolize=none", path],
                             capture_output=True, text=True, env=env, timeout=120)
    expect(run.returncode == 0, f"pprof: go tool pprof failed: {run.stderr}")
    section, samples, locations, header = None, [], {}, []
    for line in run.stdout.splitlines():
        if line in ("Samples:", "Locations", "Mappings"):
            section = line
        elif section is None:
            header.append(line)
        elif section == "Samples:" and ":" in line and not line.startswith(" " * 16):
            values, _, ids = line.partition(":")
            if values.strip().replace(" ", "").isdigit():
                samples.append(([int(v) for v in values.split()], [int(i) for i in ids.split()]))
        elif section == "Locations" and line.strip():
            m = LOCATION.match(line)
            expect(m, f"pprof: unexpected location line {line!r}")
            locations[int(m[1])] = (m[2], m[3], int(m[4]))
    return header, locations, samples


def check_pprof(ref, path):
    with gzip.open(path) as f:
        f.read()  # a valid gzip stream, whatever pprof says next
    header, locations, samples = read_pprof_raw(path)
    expect(all(i in locations for _, ids in samples for i in ids), "pprof: undefined location")
    expect(all(len(values) == 2 for values, _ in samples), "pprof: two values per sample")
    expect("PeriodType: wall nanoseconds" in header, f"pprof: period type in {header}")
    if ref is None:
        return
    rate = ref.doc["rate_hz"]
    expect(f"Period: {round(1e9 / rate)}" in header, f"pprof: period in {header}")
    expect("PeriodType: wall nanoseconds" in header, f"pprof: period type in {header}")
    got = collections.Counter()
    got_wall = collections.Counter()
    for values, ids in samples:
        stack = tuple(locations[i] for i in ids)
        got[stack] += values[0]
        got_wall[stack] += values[1]
    want, want_wall = collections.Counter(), collections.Counter()
    for s in ref.samples:
        if not s["frames"]:
            continue  # pprof drops samples without locations
        stack = []
        for i in s["frames"]:  # innermost first, as pprof lists them
            f = ref.frames[i]
            name = label(f) if f["kind"] == "synthetic" else plain(f["function"])
            stack.append((name, plain(f["file"]) if f["file"] is not None else "", f["line"] or 0))
        want[tuple(stack)] += 1
        want_wall[tuple(stack)] += s["weight_ns"]
    expect(got == want, f"pprof: stacks differ\n got {got}\nwant {want}")
    expect(got_wall == want_wall, "pprof: wall time differs")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture")
    ap.add_argument("--file")
    ap.add_argument("--schema", required=True)
    ap.add_argument("format", choices=sorted(FILE_NAMES))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ref, path = None, args.file
        if args.fixture:
            for fmt in {"json", args.format}:
                subprocess.run([args.fixture, fmt, os.path.join(tmp, FILE_NAMES[fmt])], check=True)
            ref = Reference(os.path.join(tmp, FILE_NAMES["json"]))
            path = os.path.join(tmp, FILE_NAMES[args.format])
        try:
            if args.format == "speedscope":
                check_speedscope(ref, path, args.schema)
            elif args.format == "json":
                check_json(ref or Reference(path), path)
            else:
                globals()[f"check_{args.format}"](ref, path)
        except Mismatch as e:
            print(f"FAIL: {e}")
            return 1
    print(f"ok: {args.format} {path if args.file else '(fixture)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
