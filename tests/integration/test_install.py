"""Installing stackpeek: `cmake --install`, the .deb, the man page and the
shell completions.

The man page and completions are generated at build time from
`stackpeek --cli-model`; these tests hold them to what `--help` prints, so a
new option cannot be left out of either. The .deb is built with cpack from
the same build directory and checked as a user would get it: its files, its
Depends (real shared libraries, no LLVM), lintian when installed, and that
the binary it carries runs.
"""
import gzip
import os
import re
import shutil
import subprocess

import pytest

import harness

BIN = harness.stackpeek_bin()
BUILD = os.path.dirname(BIN)
COMMANDS = ("dump", "record", "run")
LONG_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)")


def help_options(command):
    res = harness.run_stackpeek([command, "--help"])
    assert res.returncode == 0, res.stderr
    # Options are listed before the footer (examples), whose text may
    # mention options too; the listing ends at the first blank line after
    # "Options:".
    listing = res.stdout.split("\nOptions:", 1)[1].split("\n\n", 1)[0]
    return set(LONG_OPTION.findall(listing))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("prefix")
    res = subprocess.run(["cmake", "--install", BUILD, "--prefix", str(prefix)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return prefix


def man_sections(prefix):
    with gzip.open(prefix / "share/man/man1/stackpeek.1.gz", "rt") as f:
        roff = f.read()
    sections = {}
    for part in roff.split('.SS "stackpeek ')[1:]:
        name, body = part.split('"', 1)
        sections[name] = body.split(".SH ", 1)[0]
    return roff, sections


def test_install_puts_every_file_in_place(installed):
    for path in ("bin/stackpeek", "share/man/man1/stackpeek.1.gz",
                 "share/bash-completion/completions/stackpeek",
                 "share/zsh/vendor-completions/_stackpeek",
                 "share/doc/stackpeek/README.md", "share/doc/stackpeek/copyright",
                 "share/doc/stackpeek/docs/json-format.md",
                 "share/stackpeek/pytest-stackpeek/pyproject.toml"):
        assert (installed / path).is_file(), path
    res = subprocess.run([str(installed / "bin/stackpeek"), "--version"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and os.environ["STACKPEEK_VERSION"] in res.stdout, res.stdout


def test_version_says_what_it_was_built_with():
    res = harness.run_stackpeek(["--version"])
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "stackpeek " + os.environ["STACKPEEK_VERSION"], lines
    assert re.match(r"built with LLVM 14\.\d+\.\d+ and libunwind \d+\.\d+", lines[1]), lines
    assert "reads CPython 2.7, 3.6" in lines[2] and "3.15" in lines[2], lines


@pytest.mark.parametrize("command", COMMANDS)
def test_man_page_lists_exactly_the_options_of_help(installed, command):
    _, sections = man_sections(installed)
    labels = [line for line in sections[command].splitlines() if line.startswith("\\fB")]
    plain = re.sub(r"\\f[BIR]", "", "\n".join(labels)).replace("\\-", "-")
    in_page = set(LONG_OPTION.findall(plain))
    assert in_page == help_options(command)


def test_man_page_renders(installed):
    if not shutil.which("man"):
        pytest.skip("man is not installed")
    res = subprocess.run(["man", "-l", str(installed / "share/man/man1/stackpeek.1.gz")],
                         capture_output=True, text=True, env={**os.environ, "MANWIDTH": "80"})
    assert res.returncode == 0, res.stderr
    assert "stackpeek dump" in res.stdout and "--native" in res.stdout.replace("\u2010", "-")
    assert "warning" not in res.stderr.lower(), res.stderr


def bash_complete(prefix, *words):
    script = ('source "%s"\n' % (prefix / "share/bash-completion/completions/stackpeek") +
              'COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()\n'
              '_stackpeek\nprintf "%s\\n" "${COMPREPLY[@]}"\n')
    res = subprocess.run(["bash", "-c", script, "bash", "stackpeek", *words],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return [line for line in res.stdout.splitlines() if line]


@pytest.mark.parametrize("command", COMMANDS)
def test_bash_completes_every_option_of_help(installed, command):
    offered = set(bash_complete(installed, command, "--"))
    assert help_options(command) <= offered, help_options(command) - offered


def test_bash_completes_commands_formats_and_pids(installed, tmp_path):
    assert set(bash_complete(installed, "")) >= set(COMMANDS)
    assert bash_complete(installed, "dump", "--format", "") == ["text", "json"]
    t = harness.start_target(["sleep", "600"])
    offered = bash_complete(installed, "dump", str(t.pid))
    # One process matches: just its pid is offered, ready to insert.
    assert offered == [str(t.pid)] or any(o.startswith("%d sleep" % t.pid) for o in offered), offered
    listed = bash_complete(installed, "record", "--pid", "")
    assert any(o.startswith("%d sleep 600" % t.pid) for o in listed), listed[:5]


def test_zsh_completion_is_valid_and_complete(installed):
    zsh = shutil.which("zsh")
    if not zsh:
        pytest.skip("zsh is not installed")
    path = installed / "share/zsh/vendor-completions/_stackpeek"
    res = subprocess.run([zsh, "-n", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = path.read_text()
    for command in COMMANDS:
        body = text.split("_stackpeek_%s() {" % command, 1)[1].split("\n}", 1)[0]
        assert set(LONG_OPTION.findall(body)) >= help_options(command), command


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    if not shutil.which("cpack") or not shutil.which("dpkg-deb"):
        pytest.skip("cpack or dpkg-deb is not installed")
    out = tmp_path_factory.mktemp("deb")
    res = subprocess.run(["cpack", "-G", "DEB", "-B", str(out)], cwd=BUILD,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    debs = list(out.glob("stackpeek_*.deb"))
    assert len(debs) == 1, res.stdout
    return debs[0]


def test_deb_depends_on_shared_libraries_only(deb):
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Depends"],
                            capture_output=True, text=True, check=True).stdout
    assert "Package: stackpeek" in fields
    assert "Version: " + os.environ["STACKPEEK_VERSION"] in fields, fields
    depends = fields.split("Depends:", 1)[1]
    assert "libc6" in depends and "libunwind8" in depends, depends
    assert "llvm" not in depends.lower(), depends


def test_deb_carries_the_files_and_a_working_binary(deb, tmp_path):
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout
    for path in ("./usr/bin/stackpeek", "./usr/share/man/man1/stackpeek.1.gz",
                 "./usr/share/doc/stackpeek/copyright", "./usr/share/doc/stackpeek/changelog.gz",
                 "./usr/share/bash-completion/completions/stackpeek"):
        assert path in listing, path
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    res = subprocess.run([str(tmp_path / "usr/bin/stackpeek"), "--version"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and os.environ["STACKPEEK_VERSION"] in res.stdout, res.stdout
    t = harness.start_target(["sleep", "600"])
    res = subprocess.run([str(tmp_path / "usr/bin/stackpeek"), "dump", str(t.pid)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "nanosleep" in res.stdout, res.stdout + res.stderr
    harness.assert_running(t.pid)


def test_deb_is_lintian_clean(deb):
    if not shutil.which("lintian"):
        pytest.skip("lintian is not installed")
    res = subprocess.run(["lintian", "--tag-display-limit", "0", str(deb)],
                         capture_output=True, text=True)
    tags = [line for line in (res.stdout + res.stderr).splitlines()
            if re.match(r"^[EW]: ", line)]
    assert tags == [], tags
