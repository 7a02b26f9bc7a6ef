"""Matching: each refusal kind with one clear line, the argv to exec, env, paths and pin_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from credo.endpoint.definition import MAX_ARG, MAX_LINE
from credo.endpoint.matching import Granted, Refused, match_argv, match_line, pin_path, tokenize
from credo.endpoint.roles import EffectiveCapability
from credo.errors import NotPermittedError
from tests.endpoint.helpers import capability

BODY = """
[roles]
"CORP\\\\Helpdesk" = ["c"]
[[capability.c.command]]
name = "svc"
path = "/usr/bin/systemctl"
args = ["--no-pager", "restart"]
env = { SYSTEMD_PAGER = "cat" }
env_allow = ["LANG"]
cwd = "/tmp"
timeout = 5
[[capability.c.command.parameter]]
name = "unit"
type = "set"
values = ["cron", "nginx"]
required = true
[[capability.c.command.parameter]]
name = "lines"
option = "--lines"
aliases = ["-n"]
type = "int"
min = -5
max = 100
[[capability.c.command.parameter]]
name = "block"
option = "--no-block"
type = "flag"
[[capability.c.command.parameter]]
name = "host"
option = "--host"
type = "pattern"
pattern = "[a-z0-9.-]+"
joined = true
[[capability.c.command]]
name = "unlock"
path = "/usr/local/bin/unlock"
[[capability.c.command.parameter]]
name = "account"
type = "account"
required = true
[[capability.c.command]]
name = "note"
path = "/usr/bin/logger"
[[capability.c.command.parameter]]
name = "text"
type = "text"
max_length = 20
[[capability.c.command]]
name = "tail"
path = "/usr/bin/tail"
[[capability.c.command.parameter]]
name = "file"
type = "path"
under = "UNDER"
"""


@pytest.fixture
def under(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    (root / "app").mkdir(parents=True)
    (root / "app" / "x.log").write_text("x\n")
    (tmp_path / "secret").write_text("s\n")
    (root / "escape").symlink_to(tmp_path / "secret")
    (root / "inside").symlink_to(root / "app" / "x.log")
    return root


@pytest.fixture
def cap(tmp_path: Path, under: Path) -> EffectiveCapability:
    return capability(tmp_path, BODY.replace("UNDER", str(under)))


def _exists(name: str, kind: str) -> bool:
    return (name, kind) == ("jdoe", "user")


def run(cap: EffectiveCapability, line: str) -> Granted | Refused:
    return match_line(
        cap, line, caller_env={"LANG": "de_DE.UTF-8", "LD_PRELOAD": "/tmp/x.so"}, account_exists=_exists
    )


def test_a_granted_command_builds_the_argv_env_and_cwd(cap: EffectiveCapability) -> None:
    g = run(cap, "svc --no-block -n 7 --host=web1.example cron")
    assert isinstance(g, Granted)
    assert g.argv == ("/usr/bin/systemctl", "--no-pager", "restart", "--lines", "7", "--no-block",
                      "--host=web1.example", "cron")  # fmt: skip
    assert g.roles == ("CORP\\Helpdesk",) and g.capabilities == ("c",)
    assert g.env == {"PATH": g.env["PATH"], "SYSTEMD_PAGER": "cat", "LANG": "de_DE.UTF-8"}  # no LD_PRELOAD
    assert (g.cwd, g.timeout) == ("/tmp", 5.0)
    g = run(cap, "svc cron --lines -5")  # a negative int is a value of an int option
    assert isinstance(g, Granted) and g.argv[-3:] == ("--lines", "-5", "cron")
    g = run(cap, "svc --lines 007 nginx")  # integers are passed canonical
    assert isinstance(g, Granted) and "7" in g.argv


REFUSALS = [
    ("ls /", "not-granted", "'ls' is not a command you may run"),
    ("svc", "missing", "UNIT is required"),
    ("svc apache", "constraint", "not one of: cron, nginx"),
    ("svc cron nginx", "extra", "unexpected argument 'nginx'"),
    ("svc -o cron", "option", "'-o' is not an option"),
    ("svc --lines=3 cron", "option", "write --lines VALUE, not --lines=VALUE"),
    ("svc --no-block=yes cron", "option", "takes no value"),
    ("svc -n 3 --lines 4 cron", "option", "given twice"),
    ("svc -- cron", "option", "'--' is not accepted"),
    ("svc -- -cron", "option", "'--' is not accepted"),
    ("svc --lines", "missing", "--lines needs a value"),
    ("svc --lines 101 cron", "constraint", "outside [-5, 100]"),
    ("svc --lines 0x10 cron", "constraint", "not a decimal integer"),
    ("svc --host=-evil cron", "option", "starts with '-'"),
    ("svc --host=a_b cron", "constraint", "does not match ^([a-z0-9.-]+)$"),
    ("unlock -jdoe", "option", "'-jdoe' is not an option"),
    ("unlock nobody", "constraint", "no AD user 'nobody'"),
    ("unlock 'a*b'", "metachar", "shell metacharacters"),
    ("note 'rm -rf'", "metachar", "whitespace (space)"),
    ("note '" + "x" * 21 + "'", "constraint", "longer than 20"),
    ("note 'a|b'", "metachar", "(|)"),
    ("svc cron; id", "metachar", "';' (a command separator)"),
    ("svc cron | sh", "metachar", "'|' (a pipe)"),
    ("svc cron & id", "metachar", "'&'"),
    ("svc $(id)", "metachar", "'$(...)' (a command substitution)"),
    ("svc `id`", "metachar", "'`' (a command substitution)"),
    ('svc "$(id)"', "metachar", "even in double quotes"),
    ('svc "`id`"', "metachar", "even in double quotes"),
    ("svc cron > /etc/passwd", "metachar", "'>' (a redirection)"),
    ("svc $HOME", "metachar", "'$' (an expansion)"),
    ("svc c*", "metachar", "'*' (a glob)"),
    ("svc ~root", "metachar", "home directory"),
    ("svc 'cron", "syntax", "unterminated single quote"),
    ('svc "cron', "syntax", "unterminated double quote"),
    ("svc cron\x00", "control", "a NUL byte"),
    ("svc cron\nid", "control", "a line break"),
    ("svc cron\rid", "control", "a carriage return"),
    ("svc " + "x" * MAX_LINE, "too-long", f"longer than {MAX_LINE}"),
    ("", "syntax", "no command given"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "kind", "reason"), REFUSALS)
def test_each_refusal_is_one_line_with_its_kind(
    cap: EffectiveCapability, line: str, kind: str, reason: str
) -> None:
    result = run(cap, line)
    assert isinstance(result, Refused), result
    assert (result.kind, reason in result.reason) == (kind, True), result
    assert "\n" not in result.reason and "\n" not in (result.hint or "")
    err = result.error()
    assert isinstance(err, NotPermittedError) and err.exit_code == 5


def test_argv_refusals_without_the_tokenizer(cap: EffectiveCapability) -> None:
    assert match_argv(cap, ["svc", "cron\x00"]).kind == "control"  # type: ignore[union-attr]
    assert match_argv(cap, ["svc", "x" * (MAX_ARG + 1)]).kind == "too-long"  # type: ignore[union-attr]
    assert match_argv(cap, ["svc", *["cron"] * 70]).kind == "too-long"  # type: ignore[union-attr]
    assert match_argv(cap, ["svc", "-"]).kind == "option"  # type: ignore[union-attr]
    # The argv is matched as a vector: a value with a space is one argument, refused as such.
    assert match_argv(cap, ["svc", "cron nginx"]).kind == "constraint"  # type: ignore[union-attr]
    no_resolver = match_argv(cap, ["unlock", "jdoe"])
    assert isinstance(no_resolver, Refused) and "no directory" in no_resolver.reason


def test_tokenizer_quoting_without_expansion() -> None:
    assert tokenize("a 'b c' \"d e\" f\\ g") == ["a", "b c", "d e", "f g"]
    assert tokenize('a \'$(id);|\' "x\\"y"') == ["a", "$(id);|", 'x"y']
    assert tokenize("a#b c~d") == ["a#b", "c~d"]  # only a word-leading # or ~ means something
    assert tokenize("  \t ") == []
    assert tokenize("a ''") == ["a", ""]


def test_quoted_metacharacters_reach_the_parameter_check(cap: EffectiveCapability) -> None:
    result = run(cap, "note 'a;b'")
    assert isinstance(result, Refused) and result.kind == "metachar" and "(;)" in result.reason


def test_paths_are_confined_after_resolving_symlinks(cap: EffectiveCapability, under: Path) -> None:
    g = run(cap, f"tail {under}/inside")
    assert isinstance(g, Granted)
    assert g.argv == ("/usr/bin/tail", str(under / "app" / "x.log"))  # the resolved path is passed
    assert g.paths[0].index == 1 and g.paths[0].under == str(under)
    for bad in (f"{under}/escape", f"{under}/../secret", f"{under}/app/../../secret"):
        result = run(cap, f"tail {bad}")
        assert isinstance(result, Refused) and "resolves outside" in result.reason, bad
    assert "does not exist" in run(cap, f"tail {under}/nope").reason  # type: ignore[union-attr]
    assert "not an absolute path" in run(cap, "tail app/x.log").reason  # type: ignore[union-attr]


def test_pin_path_closes_the_symlink_swap_race(cap: EffectiveCapability, under: Path, tmp_path: Path) -> None:
    g = run(cap, f"tail {under}/app/x.log")
    assert isinstance(g, Granted)
    fd = pin_path(g.paths[0])
    try:
        # The fd pins the checked file: reopening it through /proc reads that file.
        assert Path(f"/proc/self/fd/{fd}").read_text() == "x\n"
        # A swap after pinning does not change what the fd names.
        (under / "app" / "x.log").rename(under / "app" / "old.log")
        (under / "app" / "x.log").symlink_to(tmp_path / "secret")
        assert Path(f"/proc/self/fd/{fd}").read_text() == "x\n"
    finally:
        os.close(fd)
    # Pinning after the swap refuses: the last component became a symlink...
    with pytest.raises(NotPermittedError, match="became a symlink"):
        pin_path(g.paths[0])
    # ...and so does a directory swapped for a symlink in the middle.
    (under / "app").rename(under / "app-old")
    (under / "app").symlink_to(tmp_path)
    with pytest.raises(NotPermittedError, match="app became a symlink"):
        pin_path(g.paths[0])
