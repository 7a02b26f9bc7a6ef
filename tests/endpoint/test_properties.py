"""Hypothesis properties: no accepted argv holds anything the capability does not allow."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credo.endpoint.definition import MAX_ARG, Constraint
from credo.endpoint.matching import METACHARS, Granted, Refused, match_argv, match_line, tokenize
from credo.endpoint.roles import UserToken, effective_capability
from tests.endpoint.helpers import load
from tests.endpoint.test_matching import BODY

_DIR = Path(tempfile.mkdtemp(prefix="credo-endpoint-prop-"))
atexit.register(shutil.rmtree, _DIR, True)
_UNDER = _DIR / "logs"
(_UNDER / "app").mkdir(parents=True)
(_UNDER / "app" / "x.log").write_text("x")
(_UNDER / "escape").symlink_to("/etc")
CAP = effective_capability(
    load(_DIR, BODY.replace("UNDER", str(_UNDER))), UserToken.of("CORP\\jdoe", ["Helpdesk"])
)
SPELLINGS = [
    "--lines",
    "-n",
    "--no-block",
    "--host",
    "--host=a",
    "--",
    "-o",
    "--lines=3",
    "cron",
    "nginx",
    "jdoe",
]
WORDS = st.one_of(
    st.sampled_from(SPELLINGS),
    st.sampled_from(
        [str(_UNDER / "app" / "x.log"), str(_UNDER / "escape" / "passwd"), "/etc/shadow", "-5", "101"]
    ),
    st.text(min_size=0, max_size=30),
)
ARGV = st.tuples(st.sampled_from(["svc", "unlock", "note", "tail", "rm"]), st.lists(WORDS, max_size=8))


def _accepts(c: Constraint, value: str) -> bool:
    """An independent re-check of a value the matcher passed."""
    if any(ch in value for ch in "\x00\n\r") or len(value) > MAX_ARG:
        return False
    if c.kind == "set":
        return value in c.values
    if not c.metachars and any(ch in METACHARS for ch in value):
        return False
    if c.kind == "pattern":
        return c.regex is not None and c.regex.fullmatch(value) is not None
    if c.kind == "int":
        n = int(value)
        return (
            str(n) == value
            and (c.minimum is None or n >= c.minimum)
            and (c.maximum is None or n <= c.maximum)
        )
    if c.kind == "path":
        real = os.path.realpath(value)
        return real == value and os.path.commonpath([real, str(c.under)]) == str(c.under)
    if c.kind == "account":
        return value == "jdoe"
    return c.kind == "text" and len(value) <= c.max_length


def _check(granted: Granted, name: str) -> None:
    effective = CAP.command(name)
    assert effective is not None
    command = effective.command
    fixed = (command.path, *command.args)
    assert granted.argv[: len(fixed)] == fixed
    rest = list(granted.argv[len(fixed) :])
    by_spelling = {p.option: p for p in command.parameters if p.option}
    seen: set[str] = set()
    positionals = list(command.positionals)
    while rest:
        word = rest.pop(0)
        spelling, eq, joined_value = word.partition("=")
        p = by_spelling.get(spelling if eq else word)
        if p is not None:
            assert p.name not in seen  # no option twice
            seen.add(p.name)
            if p.flag:
                continue
            value = joined_value if eq else rest.pop(0)
        else:
            assert positionals, f"an undeclared argument {word!r} reached the argv"
            p = positionals.pop(0)
            value = word
            assert not value.startswith("-")
        assert any(_accepts(c, value) for c in p.constraints), (p.name, value)
    for p in command.parameters:
        assert not p.required or p.name in seen or p.positional


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ARGV)
def test_no_accepted_argv_holds_anything_not_allowed(argv: tuple[str, list[str]]) -> None:
    name, args = argv
    result = match_argv(CAP, [name, *args], account_exists=lambda n, k: n == "jdoe")
    if isinstance(result, Granted):
        _check(result, name)
        assert all("\x00" not in a and "\n" not in a for a in result.argv)
    else:
        assert isinstance(result, Refused) and result.reason and "\n" not in result.reason


@settings(max_examples=600, deadline=None)
@given(st.text(max_size=80))
def test_lines_with_unquoted_operators_are_never_granted(line: str) -> None:
    result = match_line(CAP, line, account_exists=lambda n, k: n == "jdoe")
    words = tokenize(line)
    if isinstance(words, list):
        assert all("\x00" not in w and "\n" not in w for w in words)
    for op in (";", "|", "&", "`", "$(", ">", "<"):
        if op in line and "'" not in line and '"' not in line and "\\" not in line:
            assert isinstance(result, Refused)
    if isinstance(result, Granted):
        _check(result, result.command)
