"""Endpoint definitions: ``/etc/credo/endpoints/NAME.toml``, loaded with tomllib and checked key by key.

One file is one endpoint, its role definitions and the capabilities they name (inline, under
``[capability.NAME]``: one file is one unit of review, and there is no search path in which two
capabilities of one name could shadow each other, as JEA's ``.psrc`` lookup allows). The layout
(docs/endpoints.md has the full reference)::

    description = "Helpdesk tasks"
    run_as = "svcauto$"                 # the gMSA commands run as; "none" or absent: no AD identity
    user = "credo-runner"               # the local user the commands run as
    required_groups = { and = ["CORP\\\\Staff", { or = ["Helpdesk", "S-1-5-21-...-1107"] }] }

    [roles]                             # AD group (DOMAIN\\name, name, or SID) -> capability names
    "CORP\\\\Helpdesk" = ["service-desk"]

    [[capability.service-desk.command]]
    name = "restart-service"            # what the user types (default: the program's base name)
    path = "/usr/bin/systemctl"         # absolute; never looked up in PATH, never run by a shell
    args = ["--no-pager", "restart"]    # fixed leading arguments
    env = { SYSTEMD_PAGER = "cat" }     # fixed environment
    env_allow = ["LANG"]                # variables the caller may pass through
    cwd = "/"                           # working directory
    timeout = 60                        # seconds
    [[capability.service-desk.command.parameter]]
    name = "service"                    # positional (no `option`), or option = "--name", aliases = ["-n"]
    type = "set"                        # set | pattern | int | path | account | text | flag
    values = ["cron", "nginx"]
    required = true

Every error is one line ``FILE: key.path: what is wrong`` (an InputError, exit code 2).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from credo.ad.sids import is_sid
from credo.errors import InputError
from credo.names import managed_account_sam, validate_account_name, validate_local_user_name
from credo.tomlread import TableReader, read_toml

__all__ = [
    "DEFAULT_ENDPOINTS_DIR",
    "DEFAULT_PATH",
    "MAX_ARG",
    "MAX_ARGS",
    "MAX_LINE",
    "UNSAFE_ENV",
    "Capability",
    "Command",
    "Constraint",
    "DefinitionError",
    "EndpointDefinition",
    "GroupRule",
    "Parameter",
    "RoleDefinition",
    "definition_path",
    "endpoints_dir",
    "list_endpoints",
    "load_definition",
]

DEFAULT_ENDPOINTS_DIR = Path("/etc/credo/endpoints")
# The PATH every command gets (it runs by absolute path; PATH only matters to what it runs itself).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Limits on what a user may send: one argument, one interactive line, arguments per command.
MAX_ARG = 1024
MAX_LINE = 4096
MAX_ARGS = 64
MAX_TIMEOUT = 86400.0
# Environment variables that change what a program loads or runs, which a caller must never set:
# glibc's list of variables dropped for set-uid programs (sysdeps/generic/unsecvars.h) plus the
# start-up hooks of shells and interpreters (bash(1) BASH_ENV, ENV; python(1), perl(1), ruby(1),
# node(1)) and Kerberos' own (the agent sets KRB5CCNAME).
UNSAFE_ENV = frozenset({
    "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LD_AUDIT", "LD_DEBUG",
    "LD_DEBUG_OUTPUT", "LD_DYNAMIC_WEAK", "LD_HWCAP_MASK", "LD_LIBRARY_PATH", "LD_ORIGIN_PATH",
    "LD_PRELOAD", "LD_PROFILE", "LD_SHOW_AUXV", "LD_USE_LOAD_BIAS", "LOCALDOMAIN", "LOCPATH",
    "MALLOC_TRACE", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR",
    "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "CDPATH", "PATH", "HOME", "SHELL",
    "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PERL5LIB", "PERL5OPT", "PERLLIB", "RUBYLIB",
    "RUBYOPT", "NODE_OPTIONS", "NODE_PATH", "EDITOR", "VISUAL", "PAGER", "SYSTEMD_PAGER", "LESSOPEN",
    "KRB5CCNAME", "KRB5_CONFIG", "KRB5_KTNAME", "KRB5_CLIENT_KTNAME",
})  # fmt: skip
_UNSAFE_ENV_PREFIXES = ("LD_", "DYLD_", "PYTHON", "PERL", "RUBY", "BASH_FUNC_", "GIT_", "KRB5")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_COMMAND_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_CAPABILITY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
_ENDPOINT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
# -n, --name (no bundling, no attached values: one declared spelling is one token).
_OPTION = re.compile(r"^(-[A-Za-z0-9]|--[A-Za-z0-9][A-Za-z0-9_-]*)$")
_GROUP_NAME = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9.-]{0,14}\\)?[^\\]+$")

Kind = Literal["set", "pattern", "int", "path", "account", "text", "flag"]
KINDS: tuple[Kind, ...] = ("set", "pattern", "int", "path", "account", "text", "flag")
AccountKind = Literal["user", "computer", "group", "any"]


class DefinitionError(InputError):
    """An endpoint definition is invalid: the message names the file and the key."""


class _Reader(TableReader):
    error = DefinitionError
    hint = "fix the key (docs/endpoints.md describes each), then `credo endpoint lint FILE`"


def endpoints_dir() -> Path:
    """CREDO_ENDPOINTS_DIR, else /etc/credo/endpoints."""
    env = os.environ.get("CREDO_ENDPOINTS_DIR")
    return Path(env) if env else DEFAULT_ENDPOINTS_DIR


def definition_path(name: str, config: Path | None = None) -> Path:
    """``config`` when given, else ``endpoints_dir()/NAME.toml`` (the name checked first)."""
    if config is not None:
        return config
    if not _ENDPOINT_NAME.match(name):
        raise InputError(
            f"invalid endpoint name {name!r}",
            hint="lower-case letters, digits, '_' and '-', starting with a letter (the file NAME.toml)",
        )
    return endpoints_dir() / f"{name}.toml"


def list_endpoints(directory: Path | None = None) -> list[Path]:
    """The definition files in ``directory`` (default ``endpoints_dir()``), sorted by name."""
    where = directory or endpoints_dir()
    if not where.is_dir():
        return []
    return sorted(p for p in where.glob("*.toml") if p.is_file() and _ENDPOINT_NAME.match(p.stem))


@dataclass(frozen=True)
class Constraint:
    """What one parameter's value may be. After roles merge, a parameter may hold several, any of
    which accepts a value (see credo.endpoint.roles)."""

    kind: Kind
    where: str  # the key path in the file, for lint and `capability`
    values: tuple[str, ...] = ()  # set
    pattern: str | None = None  # pattern: matched in full (re.fullmatch), as JEA's ^(...)$
    minimum: int | None = None  # int
    maximum: int | None = None
    under: str | None = None  # path: the prefix, as written
    must_exist: bool = True  # path
    account_kind: AccountKind = "user"  # account
    metachars: bool = False  # pattern/text: allow shell metacharacters and whitespace in values
    max_length: int = MAX_ARG
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        """One phrase, as `credo endpoint capability` shows it."""
        if self.kind == "set":
            return "one of " + ", ".join(self.values)
        if self.kind == "pattern":
            return f"matching ^({self.pattern})$"
        if self.kind == "int":
            low = "-inf" if self.minimum is None else str(self.minimum)
            high = "inf" if self.maximum is None else str(self.maximum)
            return f"an integer in [{low}, {high}]"
        if self.kind == "path":
            return f"a path under {self.under} (symlinks resolved)"
        if self.kind == "account":
            return f"an existing AD {self.account_kind if self.account_kind != 'any' else 'account'} name"
        if self.kind == "text":
            return f"any text up to {self.max_length} characters"
        return "a flag"


@dataclass(frozen=True)
class Parameter:
    name: str
    constraints: tuple[Constraint, ...]
    option: str | None = None  # None: positional
    aliases: tuple[str, ...] = ()
    required: bool = False
    joined: bool = False  # pass as --name=VALUE instead of --name VALUE
    description: str = ""

    @property
    def positional(self) -> bool:
        return self.option is None

    @property
    def flag(self) -> bool:
        return self.constraints[0].kind == "flag"

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.option, *self.aliases) if self.option else ()


@dataclass(frozen=True)
class Command:
    name: str
    path: str
    where: str
    args: tuple[str, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    env_allow: tuple[str, ...] = ()
    cwd: str = "/"
    timeout: float = 60.0
    description: str = ""

    def same_program(self, other: Command) -> bool:
        """Everything but the parameters is equal (what must hold for two roles' entries to merge)."""
        return (self.path, self.args, self.env, self.env_allow, self.cwd, self.timeout) == (
            other.path, other.args, other.env, other.env_allow, other.cwd, other.timeout,
        )  # fmt: skip

    @property
    def positionals(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.positional)


@dataclass(frozen=True)
class Capability:
    name: str
    commands: tuple[Command, ...]
    description: str = ""


@dataclass(frozen=True)
class GroupRule:
    """JEA's RequiredGroups: a group (name or SID), or ``and``/``or`` over nested rules."""

    op: Literal["group", "and", "or"]
    group: str | None = None
    items: tuple[GroupRule, ...] = ()

    def describe(self) -> str:
        if self.op == "group":
            return str(self.group)
        return "(" + f" {self.op} ".join(item.describe() for item in self.items) + ")"


@dataclass(frozen=True)
class RoleDefinition:
    group: str  # DOMAIN\\name, name, or S-1-5-...
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class EndpointDefinition:
    path: Path
    name: str
    user: str
    run_as: str | None  # NAME$ of the gMSA, or None: the local user only
    roles: tuple[RoleDefinition, ...]
    capabilities: tuple[Capability, ...]
    required_groups: GroupRule | None = None
    description: str = ""

    def capability(self, name: str) -> Capability:
        return next(c for c in self.capabilities if c.name == name)


def _text_value(r: _Reader, key: str, value: str) -> None:
    if "\x00" in value or "\n" in value or "\r" in value:
        raise r.fail(key, "NUL and line breaks are not allowed")


def _env_name(r: _Reader, key: str, name: str, *, from_caller: bool) -> None:
    if not _ENV_NAME.match(name):
        raise r.fail(key, f"{name!r} is not an environment variable name")
    if from_caller and (name.upper() in UNSAFE_ENV or name.upper().startswith(_UNSAFE_ENV_PREFIXES)):
        raise r.fail(
            key,
            f"{name} may not come from the caller: it changes what the program loads or runs "
            "(set a fixed value in env if the program needs one)",
        )


def _constraint(r: _Reader, kind: Kind) -> Constraint:
    where = r.where
    metachars = r.get("metachars", bool, False)
    max_length = r.get("max_length", int, MAX_ARG)
    if not 1 <= max_length <= MAX_ARG:
        raise r.fail("max_length", f"must be between 1 and {MAX_ARG}")
    if metachars and kind not in ("pattern", "text"):
        raise r.fail("metachars", f"only pattern and text parameters take it, not {kind}")
    if kind == "set":
        values = r.strings("values")
        if not values:
            raise r.fail("values", 'missing: the allowed values, e.g. values = ["cron", "nginx"]')
        for value in values:
            _text_value(r, "values", value)
            if value.startswith("-"):
                raise r.fail(
                    "values", f"{value!r}: a value may not start with '-' (it would read as an option)"
                )
        return Constraint(kind, where, values=values, max_length=max_length)
    if kind == "pattern":
        source = r.get("pattern", str, required=True)
        _text_value(r, "pattern", source)
        try:
            regex = re.compile(source)
        except (re.error, OverflowError) as exc:  # OverflowError: a repeat count over sre's limit
            raise r.fail("pattern", f"not a valid regular expression: {exc}") from None
        except RecursionError:  # sre parses and compiles nested groups recursively
            raise r.fail("pattern", "not a valid regular expression: groups nested too deeply") from None
        return Constraint(
            kind, where, pattern=source, regex=regex, metachars=metachars, max_length=max_length
        )
    if kind == "int":
        low = r.get("min", int, None)
        high = r.get("max", int, None)
        if low is not None and high is not None and low > high:
            raise r.fail("min", f"{low} is above max {high}")
        return Constraint(kind, where, minimum=low, maximum=high, max_length=max_length)
    if kind == "path":
        under = r.get("under", str, required=True)
        if not under.startswith("/") or "\x00" in under:
            raise r.fail("under", f"{under!r} is not an absolute path")
        if os.path.normpath(under) == "/":
            raise r.fail("under", "'/' confines nothing: name the directory the values must be under")
        must_exist = r.get("must_exist", bool, True)
        return Constraint(
            kind, where, under=os.path.normpath(under), must_exist=must_exist, max_length=max_length
        )
    if kind == "account":
        account_kind = r.get("account_kind", str, "user")
        if account_kind not in ("user", "computer", "group", "any"):
            raise r.fail("account_kind", f"{account_kind!r}: use user, computer, group or any")
        return Constraint(kind, where, account_kind=account_kind, max_length=min(max_length, 20))  # type: ignore[arg-type]
    if kind == "text":
        return Constraint(kind, where, metachars=metachars, max_length=max_length)
    return Constraint("flag", where)


def _parameter(path: Path, where: str, table: dict[str, Any]) -> Parameter:
    r = _Reader(path, table, where)
    name = r.get("name", str, required=True)
    if not _PARAM_NAME.match(name):
        raise r.fail("name", f"{name!r}: letters, digits, '_' and '-', starting with a letter")
    kind = r.get("type", str, required=True)
    if kind not in KINDS:
        raise r.fail("type", f"{kind!r}: use one of {', '.join(KINDS)}")
    option = r.get("option", str, None)
    aliases = r.strings("aliases")
    for key, spelling in [("option", option), *(("aliases", a) for a in aliases)]:
        if spelling is not None and not _OPTION.match(spelling):
            raise r.fail(key, f"{spelling!r}: write -x or --long-name (no '=', no bundling)")
    if aliases and option is None:
        raise r.fail("aliases", 'only an option (option = "--name") has aliases')
    if kind == "flag" and option is None:
        raise r.fail("type", 'a flag is an option: give option = "--name"')
    joined = r.get("joined", bool, False)
    if joined and (option is None or kind == "flag"):
        raise r.fail("joined", "only an option that takes a value can be passed joined (--name=VALUE)")
    required = r.get("required", bool, False)
    if required and kind == "flag":
        raise r.fail("required", "a required flag would be a fixed argument: put it in the command's args")
    description = r.get("description", str, "")
    constraint = _constraint(r, kind)
    r.done()
    return Parameter(name, (constraint,), option, aliases, required, joined, description)


def _command(path: Path, where: str, table: dict[str, Any]) -> Command:
    r = _Reader(path, table, where)
    program = r.get("path", str, required=True)
    if not program.startswith("/") or os.path.normpath(program) != program or program.endswith("/"):
        raise r.fail("path", f"{program!r}: give the program's absolute, normalised path (no PATH lookup)")
    name = r.get("name", str, os.path.basename(program))
    if not _COMMAND_NAME.match(name):
        raise r.fail("name", f"{name!r}: letters, digits, '.', '_' and '-', starting with a letter")
    args = r.strings("args") if "args" in table else ()
    for arg in args:
        _text_value(r, "args", arg)
    env_table = r.sub("env")
    env: list[tuple[str, str]] = []
    for key, value in sorted(env_table.items()):
        _env_name(r, "env", key, from_caller=False)
        if not isinstance(value, str):
            raise r.fail(f"env.{key}", f"expected a string, got {type(value).__name__}")
        _text_value(r, f"env.{key}", value)
        env.append((key, value))
    env_allow = r.strings("env_allow")
    for key in env_allow:
        _env_name(r, "env_allow", key, from_caller=True)
    cwd = r.get("cwd", str, "/")
    if not cwd.startswith("/") or "\x00" in cwd:
        raise r.fail("cwd", f"{cwd!r} is not an absolute path")
    timeout = r.get("timeout", float, 60.0)
    if not 0 < timeout <= MAX_TIMEOUT:
        raise r.fail("timeout", f"must be more than 0 and at most {MAX_TIMEOUT:.0f} seconds")
    description = r.get("description", str, "")
    parameters = tuple(_parameter(path, w, t) for w, t in r.tables("parameter"))
    _check_parameters(r, parameters)
    r.done()
    return Command(name, program, where, args, parameters, tuple(env), env_allow, cwd, timeout, description)


def _check_parameters(r: _Reader, parameters: tuple[Parameter, ...]) -> None:
    names: set[str] = set()
    spellings: set[str] = set()
    optional_seen = False
    for i, p in enumerate(parameters):
        key = f"parameter[{i}]"
        if p.name in names:
            raise r.fail(f"{key}.name", f"{p.name!r} is declared twice")
        names.add(p.name)
        for s in p.spellings:
            if s in spellings:
                raise r.fail(f"{key}.option", f"{s} is already the spelling of another parameter")
            spellings.add(s)
        if p.positional:
            if p.required and optional_seen:
                raise r.fail(
                    f"{key}.required", "a required positional parameter may not follow an optional one"
                )
            optional_seen = optional_seen or not p.required
    if len(parameters) > MAX_ARGS // 2:
        raise r.fail("parameter", f"more than {MAX_ARGS // 2} parameters")


def _capability(path: Path, name: str, table: dict[str, Any]) -> Capability:
    where = f"capability.{name}"
    r = _Reader(path, table, where)
    if not _CAPABILITY_NAME.match(name):
        raise r.fail("", f"{name!r} is not a capability name (letters, digits, '.', '_', '-')")
    description = r.get("description", str, "")
    commands = tuple(_command(path, w, t) for w, t in r.tables("command"))
    seen: set[str] = set()
    for command in commands:
        if command.name in seen:
            raise DefinitionError(
                f"{path}: {command.where}.name: command {command.name!r} is defined twice in {where}",
                hint=_Reader.hint,
            )
        seen.add(command.name)
    r.done()
    return Capability(name, commands, description)


def _group_name(r: _Reader, key: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise r.fail(key, f"expected a group name or SID, got {value!r}")
    if is_sid(value):
        return value
    if not _GROUP_NAME.match(value):
        raise r.fail(key, f"{value!r}: write DOMAIN\\name, name, or a SID S-1-5-...")
    bare = value.rsplit("\\", 1)[-1]
    try:
        validate_account_name(bare, max_length=256, what="group name")
    except InputError as exc:
        raise r.fail(key, exc.message) from None
    return value


def _group_rule(r: _Reader, key: str, value: object, depth: int = 0) -> GroupRule:
    if depth > 8:
        raise r.fail(key, "nested more than 8 levels")
    if isinstance(value, str):
        return GroupRule("group", _group_name(r, key, value))
    if isinstance(value, list):  # a plain list means "all of these", as JEA's array does
        value = {"and": value}
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("and", "or"):
        raise r.fail(key, 'expected a group, or a table with one key "and" or "or" over a list')
    op = next(iter(value))
    items = value[op]
    if not isinstance(items, list) or not items:
        raise r.fail(f"{key}.{op}", "expected a non-empty list of groups or nested tables")
    rules = tuple(_group_rule(r, f"{key}.{op}[{i}]", item, depth + 1) for i, item in enumerate(items))
    return GroupRule(op, items=rules)


def _check_merge(path: Path, capabilities: tuple[Capability, ...]) -> None:
    """Commands of one name in several capabilities must run the same program the same way, and
    parameters of one name must be the same kind of argument: only then can roles merge them."""
    first: dict[str, Command] = {}
    for cap in capabilities:
        for command in cap.commands:
            other = first.setdefault(command.name, command)
            if other is command:
                continue

            def fail(what: str, cmd: Command = command, oth: Command = other) -> DefinitionError:
                return DefinitionError(f"{path}: {cmd.where}: {what} (see {oth.where})", hint=_Reader.hint)

            if not command.same_program(other):
                raise fail(
                    f"command {command.name!r} differs from its namesake in path, args, env, env_allow, "
                    "cwd or timeout: give it another name"
                )
            theirs = {p.name: p for p in other.parameters}
            for p in command.parameters:
                q = theirs.get(p.name)
                if q is not None and (p.option, p.flag, p.joined) != (q.option, q.flag, q.joined):
                    raise fail(f"parameter {p.name!r} is spelt or passed differently from its namesake")
            mine, their_pos = command.positionals, other.positionals
            for a, b in zip(mine, their_pos, strict=False):
                if a.name != b.name:
                    raise fail(f"positional parameter {a.name!r} stands where its namesake has {b.name!r}")


def load_definition(path: Path) -> EndpointDefinition:
    """Read and check an endpoint file; raise DefinitionError (one line: file, key, what) on any fault."""
    data = read_toml(path, DefinitionError, missing_hint="write it (see examples/endpoints/helpdesk.toml)")
    r = _Reader(path, data, "")
    name = r.get("name", str, path.stem)
    if not _ENDPOINT_NAME.match(name):
        raise r.fail("name", f"{name!r}: lower-case letters, digits, '_' and '-', starting with a letter")
    description = r.get("description", str, "")
    user = r.get("user", str, required=True)
    allow_system = r.get("allow_system_user", bool, False)
    r.check("user", lambda: validate_local_user_name(user, allow_system=allow_system))
    run_as_text = r.get("run_as", str, "none")
    run_as = None
    if run_as_text.lower() != "none":
        try:
            run_as = managed_account_sam(run_as_text)
        except InputError as exc:
            raise r.fail("run_as", exc.message) from None
    required = (
        _group_rule(r, "required_groups", data["required_groups"]) if "required_groups" in data else None
    )
    r.used.add("required_groups")
    caps_table = r.sub("capability")
    capabilities = []
    for cap_name, cap_table in caps_table.items():
        if not isinstance(cap_table, dict):
            raise r.fail(f"capability.{cap_name}", "expected a table [capability.NAME]")
        capabilities.append(_capability(path, cap_name, cap_table))
    known = {c.name for c in capabilities}
    roles_table = r.sub("roles")
    roles = []
    for group, caps in roles_table.items():
        key = f'roles."{group}"'
        _group_name(r, key, group)
        if isinstance(caps, str):
            caps = [caps]
        if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
            raise r.fail(key, "expected a list of capability names")
        for cap in caps:
            if cap not in known:
                raise r.fail(key, f"no capability {cap!r} in this file (define [capability.{cap}])")
        roles.append(RoleDefinition(group, tuple(dict.fromkeys(caps))))
    if not roles:
        raise r.fail(
            "roles", 'missing: map an AD group to capabilities, e.g. [roles] "CORP\\\\Helpdesk" = ["x"]'
        )
    _check_merge(path, tuple(capabilities))
    r.done()
    return EndpointDefinition(
        path=path,
        name=name,
        user=user,
        run_as=run_as,
        roles=tuple(roles),
        capabilities=tuple(capabilities),
        required_groups=required,
        description=description,
    )


def command_env(command: Command, caller_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a command runs with: PATH, the fixed ``env``, and the caller's values of
    the ``env_allow`` names (values with NUL or a line break, or longer than MAX_ARG, are dropped)."""
    env = {"PATH": DEFAULT_PATH, **dict(command.env)}
    for name in command.env_allow:
        value = (caller_env or {}).get(name)
        if value is not None and len(value) <= MAX_ARG and not any(c in value for c in "\x00\n\r"):
            env[name] = value
    return env
