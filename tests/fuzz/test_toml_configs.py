"""Fuzzing credo's TOML files: the agent's config, endpoint definitions, credo.toml, and the paths
``credo systemd`` reads from an agent config (all through credo.tomlread).

Three kinds of input: any text or bytes; the repository's example files with TOML's own tokens
inserted, deleted or duplicated; and documents of each file's shape (its keys, nested as it
nests them) whose values are right, of the wrong type, or strange (NUL, ``~nosuchuser``, 400-digit
integers, NaN, a regular expression too big to compile). Every error must be a typed, one-line
InputError naming the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from credo import config as credo_config
from credo.agent import config as agent_config
from credo.endpoint.definition import load_definition
from credo.errors import InputError, NotFoundError
from credo.systemd.config import read_agent_paths
from credo.tomlread import read_toml
from tests.fuzz.helpers import FUZZ, FUZZ_DOCUMENTS, typed_only

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AGENT_EXAMPLE = (EXAMPLES / "agent.toml").read_text()
ENDPOINT_EXAMPLE = (EXAMPLES / "endpoints" / "helpdesk.toml").read_text()
CREDO_EXAMPLE = """\
[server]
url = "https://credo.corp.example.test:8400"
ca_file = "/etc/credo/ca.pem"
token_file = "~/admin.token"

[server_process]
data_dir = "/var/lib/credo/server"
listen = "127.0.0.1:8400"
keytab = "http.keytab"
"""

LOADERS: dict[str, Callable[[Path], object]] = {
    "read_toml": read_toml,
    "agent": agent_config.load_config,
    "endpoint": load_definition,
    "credo.toml": lambda path: credo_config.load_config([path]),
    "systemd": read_agent_paths,
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-toml")


def _load_all(directory: Path, document: str | bytes, loaders: tuple[str, ...] = tuple(LOADERS)) -> None:
    path = directory / "conf.toml"
    if isinstance(document, str):
        path.write_text(document, encoding="utf-8")
    else:
        path.write_bytes(document)
    for name in loaders:
        result = typed_only(LOADERS[name], path)
        if isinstance(result, Exception):
            assert isinstance(result, InputError) and not isinstance(result, NotFoundError), result
            assert str(path) in str(result), result  # the message names the file


# --- TOML text, written here so that any value can be put anywhere ---------------------------


def _string(text: str) -> str:
    # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(table: dict[str, Any]) -> str:
    return "".join(f"{_string(key)} = {toml_value(value)}\n" for key, value in table.items())


STRANGE = [
    "", " ", "/", "/run/credo/x", "relative/path", "~", "~/x", "~root/x", "~nosuchuser/x", "a\x00b", "/a\x00b",
    "root", "nobody", "credo-runner", "%root", "%nosuchgroup", "0600", "0640", "0777", "0o600", "08", "9" * 30,
    "aes256", "rc4", "des", "ldap://dc1", "ldaps://dc1", "https://credo", "http://credo", "127.0.0.1:9464",
    "[::1]:1", "0.0.0.0:1", "svcauto", "svcauto$", "x" * 16, "CORP\\Helpdesk", "S-1-5-32-544", "none",
    "--name", "-n", "--", "set", "pattern", "int", "path", "account", "text", "flag", "user", "group", "any",
    "a\nb", "\u202e", "(" * 300 + ")" * 300, "a{4294967296}", "[", "(?P<x>", "\\",
]  # fmt: skip
leaves = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([10**400, -(10**400)]),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(STRANGE),
)
junk = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=4,
)  # fmt: skip


def _either(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(plausible, plausible, junk)


def shaped(**keys: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A table with any of ``keys`` (each right or junk), sometimes one key nobody reads."""
    table = st.fixed_dictionaries({}, optional={k: _either(v) for k, v in keys.items()})
    extra = st.dictionaries(st.text(max_size=6), junk, max_size=1)
    return st.tuples(table, extra).map(lambda both: {**both[1], **both[0]})


strange = st.sampled_from(STRANGE)
paths = st.sampled_from(
    ["/run/credo/a.keytab", "/run/credo/b.ccache", "/run/credo/c.token", "rel", "/a\x00b"]
)
users = st.sampled_from(["root", "nobody", "nosuchuser", "a\x00b", ""])
groups = st.sampled_from(["root", "%root", "nogroup", "%nosuchgroup", "a\x00b", "%a\x00b", ""])
numbers = st.one_of(st.integers(-5, 4000), st.floats(), st.sampled_from([10**400]))


def tables(table: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(table, max_size=2)


AGENT = shaped(
    socket=paths, state_dir=paths, metrics_listen=strange, log_format=st.sampled_from(["text", "json", "xml"]),
    directory=shaped(servers=st.lists(strange, max_size=2), host_keytab=paths, host_principal=strange,
                     ca_file=paths, starttls=st.booleans(), ldap_timeout=numbers, krb5_config=paths),
    server=shaped(url=strange, ca_file=paths),
    account=tables(shaped(
        name=st.sampled_from(["svcauto", "svcauto$", "svc" * 6, "a/b", "a\x00b"]),
        allow_users=st.lists(users, max_size=2), allow_groups=st.lists(groups, max_size=2),
        export_keytab=st.lists(groups | users, max_size=2), refresh_jitter=numbers,
        keytab=tables(shaped(path=paths, owner=users, group=groups, mode=strange, spns=st.lists(strange, max_size=2),
                             enctypes=st.lists(strange, max_size=2))),
        ccache=tables(shaped(path=paths, user=users)),
        hook=tables(shaped(argv=st.lists(strange, max_size=3), timeout=numbers)),
        token=tables(shaped(path=paths, user=users, group=strange, audience=strange, service=strange)),
    )),
).map(toml_document)  # fmt: skip

group_rules = st.recursive(
    st.sampled_from(["CORP\\Helpdesk", "Helpdesk", "S-1-5-21-1-2-3-1107", "", "a\\b\\c", "x" * 300]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["and", "or", "xor"]),
                                                                 st.lists(inner, max_size=3), max_size=2),
    max_leaves=12,
)  # fmt: skip
PARAMETER = shaped(
    name=st.sampled_from(["service", "account", "x" * 70, "1bad"]), type=strange, option=strange,
    aliases=st.lists(strange, max_size=2), joined=st.booleans(), required=st.booleans(), description=strange,
    metachars=st.booleans(), max_length=numbers, values=st.lists(strange, max_size=3), pattern=strange,
    min=numbers, max=numbers, under=strange, must_exist=st.booleans(), account_kind=strange,
)  # fmt: skip
COMMAND = shaped(
    path=st.sampled_from(["/usr/bin/systemctl", "/usr/bin/", "/usr/../bin/x", "systemctl", "/a\x00b"]),
    name=strange, args=st.lists(strange, max_size=3), env=st.dictionaries(strange, strange, max_size=2),
    env_allow=st.lists(strange, max_size=2), cwd=strange, timeout=numbers, description=strange,
    parameter=tables(PARAMETER),
)  # fmt: skip
ENDPOINT = shaped(
    name=strange, description=strange, user=st.sampled_from(["credo-runner", "root", "Bad", ""]),
    allow_system_user=st.booleans(), run_as=st.sampled_from(["svcauto$", "none", "a/b", "x" * 20]),
    required_groups=group_rules,
    roles=st.dictionaries(group_rules.filter(lambda g: isinstance(g, str)), st.lists(strange, max_size=2), max_size=2),
    capability=st.dictionaries(st.sampled_from(["service-desk", "x", "1bad", ""]),
                               shaped(description=strange, command=tables(COMMAND)), max_size=2),
).map(toml_document)  # fmt: skip
CREDO = shaped(
    server=shaped(url=strange, ca_file=strange, token_file=strange),
    server_process=shaped(data_dir=strange, listen=strange, database=strange, keytab=strange,
                          oidc_issuer=strange, oidc_key_file=strange),
).map(toml_document)  # fmt: skip

# TOML's own syntax, and values at the edge of what a parser converts.
TOKENS = [
    "[", "]", "[[", "]]", "{", "}", '"', "'", '"""', "=", ",", ".", "\n", "#", "\\", "\\u0000", "\\n", "\r",
    "true", "nan", "inf", "1e999", "0x", "1979-05-27T07:32:00Z", "24:61:00", "9" * 400, "9" * 5000,
    "0x" + "f" * 5000, '"~nosuchuser/x"', '"\\u0000"', "[" * 1200, "{a=" * 400, "\ufeff", "\x00",
]  # fmt: skip


@st.composite
def edited(draw: st.DrawFn, base: str) -> str:
    """``base`` with TOML tokens inserted, spans deleted or duplicated, or characters replaced."""
    text = base
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "duplicate", "replace"]))
        if kind == "insert":
            text = text[:position] + draw(st.sampled_from(TOKENS) | st.text(max_size=4)) + text[position:]
        elif kind == "replace":
            text = text[:position] + draw(st.characters()) + text[position + 1 :]
        else:
            end = draw(st.integers(position, min(len(text), position + 80)))
            text = text[:end] + text[position:] if kind == "duplicate" else text[:position] + text[end:]
    return text


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), st.sampled_from(TOKENS)))
@example("a = " + "[" * 1200 + "]" * 1200)  # tomllib recurses per nesting level: RecursionError
@example("a = " + "9" * 5000)  # tomllib's int() of more than 4300 digits: a bare ValueError
def test_any_text(workdir: Path, document: str | bytes) -> None:
    _load_all(workdir, document)


@FUZZ
@given(st.one_of(edited(AGENT_EXAMPLE), edited(ENDPOINT_EXAMPLE), edited(CREDO_EXAMPLE)))
def test_edited_examples(workdir: Path, document: str) -> None:
    _load_all(workdir, document)


@FUZZ_DOCUMENTS
@given(AGENT)
@example('[[account]]\nname = "svcauto"\nrefresh_jitter = 1' + "0" * 400)  # float(int): OverflowError
@example('[[account]]\nname = "svcauto"\n[[account.keytab]]\npath = "/k"\nowner = "a\\u0000b"\n')  # getpwnam
@example('[[account]]\nname = "svcauto"\nallow_groups = ["a\\u0000b"]\n')  # getgrnam: ValueError
@example(f'[directory]\nkrb5_config = "/{"x" * 300}"\n')  # Path.is_file: OSError ENAMETOOLONG
@example('[directory]\nkrb5_config = "\\n/nonexistent"\n')  # a line break in the one-line message
def test_agent_configs(workdir: Path, document: str) -> None:
    _load_all(workdir, document, ("agent", "systemd"))


@FUZZ_DOCUMENTS
@given(ENDPOINT)
@example('user = "credo-runner"\n[roles]\n"G" = ["c"]\n[[capability.c.command]]\npath = "/bin/x"\n'
         '[[capability.c.command.parameter]]\nname = "p"\ntype = "pattern"\npattern = "a{4294967296}"\n')  # fmt: skip
@example('user = "credo-runner"\n[roles]\n"G" = ["c"]\n[[capability.c.command]]\npath = "/bin/x"\n'
         '[[capability.c.command.parameter]]\nname = "p"\ntype = "pattern"\n'
         f'pattern = "{"(" * 1200}{")" * 1200}"\n')  # fmt: skip
def test_endpoint_definitions(workdir: Path, document: str) -> None:
    _load_all(workdir, document, ("endpoint",))


@FUZZ_DOCUMENTS
@given(CREDO)
@example('[server]\nca_file = "~nosuchuser/ca.pem"\n')  # Path.expanduser: RuntimeError
@example('[server_process]\nkeytab = "~a\\u0000b/x"\n')  # Path.expanduser: ValueError
@example('"\\n" = 1\n')  # an unknown key with a line break in the one-line message
def test_credo_toml(workdir: Path, document: str) -> None:
    _load_all(workdir, document, ("credo.toml",))


def test_the_examples_load(workdir: Path) -> None:
    for document, loader in ((ENDPOINT_EXAMPLE, "endpoint"), (CREDO_EXAMPLE, "credo.toml")):
        path = workdir / "conf.toml"
        path.write_text(document)
        assert not isinstance(LOADERS[loader](path), Exception)
