"""Unit names and the quoting of command lines and assignments (credo.systemd.syntax), read back
with the manual pages' rules (tests.systemd.unitparse) and, where systemd can show it, by systemd."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credo.errors import InputError
from credo.systemd.paths import agent_ccache_path
from credo.systemd.syntax import exec_command_line, quote_assignment, quote_path, unit_name
from tests.systemd.unitparse import environment, exec_argv, split_words

TRICKY = [
    "two words",
    "it's",
    'say "hi"',
    "100%",
    "%n%%",
    "$HOME",
    "${HOME}",
    "$$",
    "back\\slash",
    "trailing\\",
    "",
    ";",
    "\\;",
    "tab\there",
    "new\nline",
    "--flag=a b",
    "-",
    "'",
    '"',
    "ünïcødé ✓",
    "\x01\x7f",
]


def test_tricky_arguments_survive_the_three_passes() -> None:
    argv = ["/usr/bin/printf", "%s\\n", *TRICKY]
    line = exec_command_line(argv)
    assert "\n" not in line and "\r" not in line
    assert exec_argv(line) == argv


def test_plain_words_stay_unquoted() -> None:
    assert exec_command_line(["/usr/bin/ldapwhoami", "-Q", "-H", "ldap://dc1.corp.example.test"]) == (
        "/usr/bin/ldapwhoami -Q -H ldap://dc1.corp.example.test"
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")), max_size=6))
def test_any_argv_round_trips(args: list[str]) -> None:
    argv = ["/bin/echo", *args]
    assert exec_argv(exec_command_line(argv)) == argv


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=["Cs", "Cc"])))
def test_any_environment_value_round_trips(value: str) -> None:
    assert environment([quote_assignment("VAR", value)]) == {"VAR": value}


def test_environment_keeps_dollar_literal() -> None:
    # Environment= has no $ pass (systemd.exec(5)): "$HOME" must not be written "$$HOME".
    assert quote_assignment("A", "$HOME x") == '"A=$HOME x"'
    assert quote_assignment("B", "plain") == "B=plain"


def test_paths_in_a_list() -> None:
    words = split_words(" ".join(quote_path(p) for p in ["/etc/credo", "/srv/a b", '/srv/q"x']))
    assert words == ["/etc/credo", "/srv/a b", '/srv/q"x']


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no command given"),
        (["relative/prog"], "not an absolute path"),
        (["/opt/$x/prog"], "systemd does not take there"),
        (["/opt/it's"], "systemd does not take there"),
        (["/opt/a\\b"], "systemd does not take there"),
        (["/opt/a\tb"], "systemd does not take there"),
        (["/bin/echo", "a\x00b"], "NUL"),
        (["/bin/echo", "\udcff"], "not valid UTF-8"),
    ],
)
def test_bad_command_lines(argv: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        exec_command_line(argv)


def test_bad_assignments() -> None:
    with pytest.raises(InputError, match="invalid environment variable name"):
        quote_assignment("1A", "x")
    with pytest.raises(InputError, match="control character"):
        quote_assignment("A", "x\ny")
    with pytest.raises(InputError, match="not absolute"):
        quote_path("etc/credo")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("nightly", "nightly.service"),
        ("nightly.service", "nightly.service"),
        ("ad:report_2.v1", "ad:report_2.v1.service"),
        ("esc\\x2dd", "esc\\x2dd.service"),
        ("a" * 247, "a" * 247 + ".service"),
    ],
)
def test_valid_unit_names(given: str, expected: str) -> None:
    assert unit_name(given, ".service") == expected


def test_a_timer_name_names_its_service() -> None:
    assert unit_name("nightly.timer", ".service", accept=(".timer",)) == "nightly.service"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "invalid unit name"),
        (".service", "invalid unit name"),
        ("two words", "invalid unit name"),
        ("a/b", "invalid unit name"),
        ("ünï", "invalid unit name"),
        ("x\ny", "invalid unit name"),
        ("getty@tty1", "template or an instance"),
        ("x.socket", "it names a socket unit"),
        ("x.timer", "it names a timer unit"),
        ("a" * 248, "longer than 255"),
    ],
)
def test_invalid_unit_names(given: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        unit_name(given, ".service")


def test_the_ccache_path_convention() -> None:
    expected = Path("/run/credo/ccache/svcauto/credo-runner")
    assert agent_ccache_path("svcauto", "credo-runner") == expected
    assert agent_ccache_path("SvcAuto$", "credo-runner") == expected
    assert agent_ccache_path("svcauto", "u", root=Path("/tmp/x")) == Path("/tmp/x/svcauto/u")
    for bad_gmsa, bad_user in [("a/b", "u"), ("..", "u"), ("svc", "../etc"), ("svc", "a/b"), ("", "u")]:
        with pytest.raises(InputError):
            agent_ccache_path(bad_gmsa, bad_user)


def test_systemd_reads_a_tricky_program_path(tmp_path: Path) -> None:
    """The one word systemd itself shows it parsed: `verify` fails unless the program path, after
    unquoting and specifiers, names an executable file. So a program whose name has spaces, a %
    and non-ASCII checks passes 1 and 2 against systemd (quotes and backslashes systemd refuses
    in a program path, and exec_command_line with it)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is part of the test environment"
    odd = tmp_path / "odd dir" / "a  b 100%n ünï.sh"
    odd.parent.mkdir()
    odd.write_text("#!/bin/sh\nexit 0\n")
    odd.chmod(0o755)
    # An unescaped %Z or a lone ; would fail verify too ("Failed to resolve unit specifiers").
    line = exec_command_line([str(odd), "%Z", "$1", ";"])
    (tmp_path / "odd.service").write_text(f"[Service]\nType=oneshot\nExecStart={line}\n")
    with contextlib.chdir(tmp_path):
        proc = subprocess.run([analyze, "verify", "./odd.service"], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr.strip(), (line, proc.stderr)
    # The same line with the program path written raw fails: the check above means something.
    (tmp_path / "raw.service").write_text(f"[Service]\nType=oneshot\nExecStart={odd}\n")
    with contextlib.chdir(tmp_path):
        proc = subprocess.run([analyze, "verify", "./raw.service"], capture_output=True, text=True)
    assert proc.returncode != 0 or proc.stderr.strip()
    assert os.access(odd, os.X_OK)
