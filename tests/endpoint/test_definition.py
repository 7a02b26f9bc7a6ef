"""Endpoint definitions: the example loads; each bad key is one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from credo.endpoint.definition import DefinitionError, definition_path, list_endpoints, load_definition
from credo.errors import InputError
from tests.endpoint.helpers import HEAD, write

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "endpoints" / "helpdesk.toml"

GOOD_CAP = """
[roles]
"CORP\\\\Helpdesk" = ["c"]
[[capability.c.command]]
path = "/usr/bin/true"
"""


def test_the_example_loads() -> None:
    d = load_definition(EXAMPLE)
    assert (d.name, d.run_as, d.user) == ("helpdesk", "svcauto$", "credo-runner")
    assert d.required_groups is not None and d.required_groups.describe() == "CORP\\Helpdesk"
    assert [c.name for c in d.capability("service-desk").commands] == [
        "restart-service",
        "unlock-account",
        "whoami",
    ]
    restart = d.capability("service-desk").commands[0]
    assert restart.parameters[0].constraints[0].values == (
        "cron.service",
        "ssh.service",
        "credo-agent.service",
    )


def test_defaults_and_nested_required_groups(tmp_path: Path) -> None:
    body = (
        'required_groups = { and = ["Staff", { or = ["CORP\\\\Helpdesk", "S-1-5-21-1-2-3-1107"] }] }\n'
        + GOOD_CAP
    )
    d = load_definition(write(tmp_path, body))
    cmd = d.capability("c").commands[0]
    assert (cmd.name, cmd.args, cmd.cwd, cmd.timeout) == ("true", (), "/", 60.0)
    assert d.required_groups is not None
    assert d.required_groups.describe() == "(Staff and (CORP\\Helpdesk or S-1-5-21-1-2-3-1107))"


def test_run_as_none(tmp_path: Path) -> None:
    d = load_definition(write(tmp_path, GOOD_CAP, head='user = "credo-runner"\nrun_as = "none"\n'))
    assert d.run_as is None


PARAM = """
[roles]
"CORP\\\\Helpdesk" = ["c"]
[[capability.c.command]]
path = "/usr/bin/true"
[[capability.c.command.parameter]]
name = "p"
"""

BAD = [
    # (body appended to HEAD or replacing it, the key the message must name, a word of the reason)
    ('user = "root"\n' + GOOD_CAP, "user", "system account", True),
    ('user = "Bad User"\n' + GOOD_CAP, "user", "invalid local user", True),
    ('user = "credo-runner"\nrun_as = "a/b"\n' + GOOD_CAP, "run_as", "contains", True),
    ('run_as = "svcauto$"\n' + GOOD_CAP, "user", "missing", True),
    ("colour = 1\n" + GOOD_CAP, "colour", "unknown key", False),
    ('required_groups = { xor = ["A"] }\n' + GOOD_CAP, "required_groups", '"and" or "or"', False),
    ("required_groups = { or = [] }\n" + GOOD_CAP, "required_groups.or", "non-empty", False),
    ('required_groups = { or = ["A", 3] }\n' + GOOD_CAP, "required_groups.or[1]", "expected a group", False),
    ("[roles]\n", "roles", "missing", False),
    ('[roles]\n"CORP\\\\Helpdesk" = ["nope"]\n', 'roles."CORP\\Helpdesk"', "no capability 'nope'", False),
    ('[roles]\n"a*b" = ["c"]\n[[capability.c.command]]\npath="/bin/true"\n', 'roles."a*b"', "contains", False),
    (GOOD_CAP.replace('"/usr/bin/true"', '"true"'), "capability.c.command[0].path", "absolute", False),
    (GOOD_CAP.replace('"/usr/bin/true"', '"/usr/bin/../bin/true"'), "capability.c.command[0].path", "normalised", False),
    (GOOD_CAP + "timeout = 0\n", "capability.c.command[0].timeout", "more than 0", False),
    (GOOD_CAP + 'cwd = "tmp"\n', "capability.c.command[0].cwd", "absolute", False),
    (GOOD_CAP + 'env_allow = ["LD_PRELOAD"]\n', "capability.c.command[0].env_allow", "may not come from the caller", False),
    (GOOD_CAP + 'env_allow = ["PYTHONSTARTUP"]\n', "capability.c.command[0].env_allow", "may not come", False),
    (GOOD_CAP + 'env = { "A B" = "x" }\n', "capability.c.command[0].env", "not an environment variable name", False),
    (GOOD_CAP + 'args = ["a\\nb"]\n', "capability.c.command[0].args", "line breaks", False),
    (GOOD_CAP + 'name = "two words"\n', "capability.c.command[0].name", "letters", False),
    (GOOD_CAP + 'surprise = "x"\n', "capability.c.command[0].surprise", "unknown key", False),
    (PARAM, "capability.c.command[0].parameter[0].type", "missing", False),
    (PARAM + 'type = "glob"\n', "capability.c.command[0].parameter[0].type", "use one of", False),
    (PARAM + 'type = "set"\n', "capability.c.command[0].parameter[0].values", "missing", False),
    (PARAM + 'type = "set"\nvalues = ["-rf"]\n', "capability.c.command[0].parameter[0].values", "start with '-'", False),
    (PARAM + 'type = "pattern"\npattern = "(["\n', "capability.c.command[0].parameter[0].pattern", "regular expression", False),
    (PARAM + 'type = "int"\nmin = 5\nmax = 1\n', "capability.c.command[0].parameter[0].min", "above max", False),
    (PARAM + 'type = "path"\nunder = "var"\n', "capability.c.command[0].parameter[0].under", "absolute", False),
    (PARAM + 'type = "path"\nunder = "/"\n', "capability.c.command[0].parameter[0].under", "confines nothing", False),
    (PARAM + 'type = "path"\n', "capability.c.command[0].parameter[0].under", "missing", False),
    (PARAM + 'type = "account"\naccount_kind = "ou"\n', "capability.c.command[0].parameter[0].account_kind", "use user", False),
    (PARAM + 'type = "flag"\n', "capability.c.command[0].parameter[0].type", "a flag is an option", False),
    (PARAM + 'type = "text"\noption = "-name=x"\n', "capability.c.command[0].parameter[0].option", "write -x or --long", False),
    (PARAM + 'type = "text"\naliases = ["-n"]\n', "capability.c.command[0].parameter[0].aliases", "only an option", False),
    (PARAM + 'type = "int"\nmetachars = true\n', "capability.c.command[0].parameter[0].metachars", "only pattern and text", False),
    (PARAM + 'type = "int"\nvalues = ["1"]\n', "capability.c.command[0].parameter[0].values", "unknown key", False),
    (PARAM + 'type = "text"\n[[capability.c.command.parameter]]\nname = "p"\ntype = "text"\n',
     "capability.c.command[0].parameter[1].name", "declared twice", False),
    (PARAM + 'type = "text"\n[[capability.c.command.parameter]]\nname = "q"\ntype = "text"\nrequired = true\n',
     "capability.c.command[0].parameter[1].required", "may not follow an optional", False),
    (GOOD_CAP + '[[capability.c.command]]\npath = "/usr/bin/true"\n', "capability.c.command[1].name", "defined twice", False),
    (GOOD_CAP + '[[capability.d.command]]\npath = "/usr/bin/true"\nargs = ["x"]\n', "capability.d.command[0]",
     "differs from its namesake", False),
]  # fmt: skip


@pytest.mark.parametrize(("body", "key", "reason", "replace_head"), BAD)
def test_bad_definitions_are_one_line_naming_the_key(
    tmp_path: Path, body: str, key: str, reason: str, replace_head: bool
) -> None:
    path = write(tmp_path, body, head="" if replace_head else HEAD)
    with pytest.raises(DefinitionError) as caught:
        load_definition(path)
    message = caught.value.message
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: "), message
    assert reason in message
    assert caught.value.exit_code == 2


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="no such file"):
        load_definition(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("user = \n")
    with pytest.raises(DefinitionError, match="not valid TOML"):
        load_definition(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(DefinitionError, match="not UTF-8"):
        load_definition(binary)


def test_definition_path_and_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDO_ENDPOINTS_DIR", str(tmp_path))
    assert definition_path("helpdesk") == tmp_path / "helpdesk.toml"
    assert definition_path("x", tmp_path / "other.toml") == tmp_path / "other.toml"
    with pytest.raises(InputError, match="invalid endpoint name"):
        definition_path("../etc/passwd")
    write(tmp_path, GOOD_CAP, name="b")
    write(tmp_path, GOOD_CAP, name="a")
    (tmp_path / "Not-An-Endpoint.toml").write_text("")
    assert [p.name for p in list_endpoints()] == ["a.toml", "b.toml"]
