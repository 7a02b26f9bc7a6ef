"""Matching a user's argv against the effective capability: a Granted argv to exec, or a Refused reason.

Matching is on the argv vector, never on a joined string, and nothing here ever hands user input
to a shell. The user's argv is ``[command name, arguments...]``; the argv to exec is
``[path, *fixed args, *options in declared order, *positionals in declared order]``, every value
checked against its parameter's constraints (any of them, after roles merge) and, for paths and
integers, rewritten to the checked form (the resolved path, the canonical integer).

Refused, each with one line and a hint:

- a command not granted; an argument or line over MAX_ARG / MAX_LINE, more than MAX_ARGS arguments;
- NUL, line breaks and other control characters anywhere;
- option injection: an option the command does not declare (``-o``), ``--`` (end of options is the
  endpoint's business, not the user's), ``--name=VALUE`` for an option not passed joined, a value
  starting with ``-`` (for a positional, or as an option's value unless the parameter is an int),
  a repeated option, a flag given a value;
- shell metacharacters and whitespace in values (``;|&$`<>(){}[]*?~!#\\'"``), unless the
  parameter's type allows them (``metachars = true`` on a pattern or text parameter; a set's own
  values are the administrator's and always match as written);
- a value outside its constraints, a missing required parameter, an extra positional argument.

The interactive-line tokenizer splits like a POSIX shell's quoting (``'...'`` literal, ``"..."``
with ``\\"`` and ``\\\\``, ``\\x`` outside quotes) but interprets nothing: ``;``, ``|``, ``&``,
``$``, backquotes, redirections, globs, ``~``, ``!`` and ``#`` outside quotes are refused as such,
and ``$(`` or a backquote inside double quotes too, with a reason that names what was not done.

Path parameters are confined after resolving symlinks (``os.path.realpath``), and the *resolved*
path is what the command receives, so no symlink the user controls is left to follow. What
remains is a swap of a directory on the resolved path between the check and the program's open;
``pin_path`` closes it for the process that execs: it walks the resolved path from the confining
directory one component at a time with ``O_PATH|O_NOFOLLOW`` (refusing a component that has
become a symlink) and returns an fd to pass to the child (``pass_fds``) as ``/proc/self/fd/N``
(proc(5): opening the magic link reopens the very file the fd pinned).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from credo.endpoint.definition import (
    MAX_ARG,
    MAX_ARGS,
    MAX_LINE,
    Constraint,
    Parameter,
    command_env,
)
from credo.endpoint.roles import EffectiveCapability, EffectiveCommand
from credo.errors import InputError, NotPermittedError
from credo.names import validate_account_name

__all__ = [
    "METACHARS",
    "AccountResolver",
    "ConfinedPath",
    "Granted",
    "Refused",
    "match_argv",
    "match_line",
    "pin_path",
    "tokenize",
    "usage",
]

# (name, kind) -> does the AD account exist? Kind is "user", "computer", "group" or "any".
AccountResolver = Callable[[str, str], bool]
METACHARS = frozenset(";|&$`<>(){}[]*?~!#\\'\" \t")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INT = re.compile(r"^-?[0-9]{1,18}$")
# Unquoted characters the tokenizer refuses, with what a shell would have done with them.
_SHELL_MEANING = {
    ";": "a command separator",
    "|": "a pipe",
    "&": "a background or AND operator",
    "$": "an expansion",
    "`": "a command substitution",
    ">": "a redirection",
    "<": "a redirection",
    "(": "a subshell",
    ")": "a subshell",
    "{": "a brace expansion",
    "}": "a brace expansion",
    "*": "a glob",
    "?": "a glob",
    "[": "a glob",
    "]": "a glob",
    "~": "a home directory expansion",
    "!": "a history expansion",
    "#": "a comment",
}


@dataclass(frozen=True)
class ConfinedPath:
    """A path value that was checked to be under ``under``: what ``pin_path`` re-checks."""

    parameter: str
    path: str  # resolved, as passed in the argv
    under: str  # the confining directory, resolved
    index: int  # its position in Granted.argv


@dataclass(frozen=True)
class Granted:
    command: str
    argv: tuple[str, ...]
    roles: tuple[str, ...]
    capabilities: tuple[str, ...]
    timeout: float
    env: Mapping[str, str] = field(hash=False)
    cwd: str = "/"
    paths: tuple[ConfinedPath, ...] = ()


@dataclass(frozen=True)
class Refused:
    reason: str
    hint: str | None = None
    kind: str = (
        "refused"  # not-granted, control, too-long, metachar, option, constraint, missing, extra, syntax
    )

    def error(self) -> NotPermittedError:
        return NotPermittedError(self.reason, hint=self.hint)


def _shown(value: str, limit: int = 40) -> str:
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)


def _control(value: str, what: str) -> Refused | None:
    bad = _CONTROL.search(value)
    if bad is None:
        return None
    char = bad.group(0)
    name = {"\x00": "a NUL byte", "\n": "a line break", "\r": "a carriage return"}.get(
        char, f"U+{ord(char):04X}"
    )
    return Refused(f"{what} contains {name}", "one line, printable characters only", "control")


def tokenize(line: str) -> list[str] | Refused:
    """Split an interactive line into words, quoting as a POSIX shell does but expanding nothing."""
    if len(line) > MAX_LINE:
        return Refused(f"the line is longer than {MAX_LINE} characters", kind="too-long")
    bad = _control(line.rstrip("\n").replace("\t", " "), "the line")  # a tab separates words
    if bad is not None:
        return bad
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i, n = 0, len(line.rstrip("\n"))
    while i < n:
        c = line[i]
        if c in " \t":
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            i += 1
            continue
        in_word = True
        if c == "'":
            end = line.find("'", i + 1, n)
            if end < 0:
                return Refused("unterminated single quote", "close the quote", "syntax")
            current.append(line[i + 1 : end])
            i = end + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    return Refused("unterminated double quote", "close the quote", "syntax")
                d = line[i]
                if d == '"':
                    i += 1
                    break
                if d == "\\" and i + 1 < n and line[i + 1] in '"\\$`':
                    current.append(line[i + 1])
                    i += 2
                    continue
                if d == "`" or line.startswith("$(", i):
                    what = "`...`" if d == "`" else "$(...)"
                    return Refused(
                        f"{what} (command substitution) is not interpreted here, even in double quotes",
                        "give the value itself; nothing on this line is run by a shell",
                        "metachar",
                    )
                current.append(d)
                i += 1
        elif c == "\\":
            if i + 1 >= n:
                return Refused("a line may not end with '\\'", kind="syntax")
            current.append(line[i + 1])
            i += 2
        elif c in _SHELL_MEANING and not (c in "#~" and current):
            shown = "$(...)" if line.startswith("$(", i) else c
            meaning = "a command substitution" if shown == "$(...)" else _SHELL_MEANING[c]
            return Refused(
                f"{shown!r} ({meaning}) is not interpreted here",
                "one command per line, no shell: quote the character if it is part of a value",
                "metachar",
            )
        else:
            current.append(c)
            i += 1
    if in_word:
        words.append("".join(current))
    return words


def _check_value(
    value: str, c: Constraint, resolver: AccountResolver | None
) -> tuple[str, ConfinedPath | None] | str:
    """The value to pass (and its confinement), or why ``c`` refuses it."""
    if len(value) > c.max_length:
        return f"longer than {c.max_length} characters"
    if c.kind == "set":
        return (value, None) if value in c.values else "not one of: " + ", ".join(c.values)
    if not c.metachars:
        # A computer's or gMSA's sAMAccountName ends in '$' (WORKER1$): allowed there, and only
        # there, for an account (no shell ever sees it; validate_account_name checks the rest).
        checked = value[:-1] if c.kind == "account" and value.endswith("$") else value
        bad = sorted({ch for ch in checked if ch in METACHARS})
        if bad:
            shown = " ".join("space" if ch == " " else "tab" if ch == "\t" else ch for ch in bad)
            return (
                f"contains shell metacharacters or whitespace ({shown}), which this parameter does not allow"
            )
    if c.kind == "pattern":
        assert c.regex is not None
        return (value, None) if c.regex.fullmatch(value) else f"does not match ^({c.pattern})$"
    if c.kind == "int":
        if not _INT.match(value):
            return "not a decimal integer"
        number = int(value)
        if (c.minimum is not None and number < c.minimum) or (c.maximum is not None and number > c.maximum):
            return f"outside [{c.minimum}, {c.maximum}]"
        return (str(number), None)
    if c.kind == "path":
        assert c.under is not None
        if not value.startswith("/"):
            return "not an absolute path"
        under = os.path.realpath(c.under)
        try:
            resolved = os.path.realpath(value, strict=c.must_exist)
        except OSError:
            return "does not exist"
        if os.path.commonpath([resolved, under]) != under:
            return f"resolves outside {c.under}"
        return (resolved, ConfinedPath("", resolved, under, -1))
    if c.kind == "account":
        try:
            validate_account_name(value)
        except InputError as exc:
            return exc.message
        if resolver is None:
            return "cannot check that the account exists (no directory)"
        if not resolver(value, c.account_kind):
            return f"no AD {c.account_kind if c.account_kind != 'any' else 'account'} {value!r}"
        return (value, None)
    if c.kind == "text":
        return (value, None)
    return "a flag takes no value"


def _value(
    command: str, p: Parameter, value: str, resolver: AccountResolver | None
) -> tuple[str, ConfinedPath | None] | Refused:
    what = f"{command}: {p.option or p.name}"
    bad = _control(value, f"{what}: the value")
    if bad is not None:
        return bad
    if len(value) > MAX_ARG:
        return Refused(f"{what}: the value is longer than {MAX_ARG} characters", kind="too-long")
    if value.startswith("-") and not (not p.positional and all(c.kind == "int" for c in p.constraints)):
        return Refused(
            f"{what}: the value {_shown(value)} starts with '-', which would read as an option",
            "values may not start with '-'",
            "option",
        )
    reasons = []
    for c in p.constraints:
        result = _check_value(value, c, resolver)
        if isinstance(result, tuple):
            return result
        reasons.append(result)
    return Refused(
        f"{what}: {_shown(value)} " + "; or ".join(dict.fromkeys(reasons)),
        f"allowed: {' or '.join(c.describe() for c in p.constraints)}",
        "metachar" if all("metacharacters" in r for r in reasons) else "constraint",
    )


def usage(granted: EffectiveCommand) -> str:
    parts = [granted.name]
    for p in granted.command.parameters:
        word = p.name.upper() if p.positional else (p.option or "") + ("" if p.flag else f" {p.name.upper()}")
        parts.append(word if p.required else f"[{word}]")
    return "usage: " + " ".join(parts)


def match_argv(
    capability: EffectiveCapability,
    argv: Sequence[str],
    *,
    caller_env: Mapping[str, str] | None = None,
    account_exists: AccountResolver | None = None,
) -> Granted | Refused:
    """Match ``argv`` (``[command name, args...]``) against ``capability``."""
    if not capability.admitted:
        return Refused(capability.reason or "not admitted to this endpoint", kind="not-granted")
    if not argv:
        return Refused("no command given", "type `help` for the commands you may run", "syntax")
    if len(argv) > MAX_ARGS + 1:
        return Refused(f"more than {MAX_ARGS} arguments", kind="too-long")
    for i, arg in enumerate(argv):
        bad = _control(arg, f"argument {i}")
        if bad is not None:
            return bad
        if len(arg) > MAX_ARG:
            return Refused(f"argument {i} is longer than {MAX_ARG} characters", kind="too-long")
    name = argv[0]
    granted = capability.command(name)
    if granted is None:
        return Refused(
            f"{_shown(name)} is not a command you may run on endpoint {capability.endpoint}",
            "type `help` for the commands you may run",
            "not-granted",
        )
    command = granted.command
    by_spelling = {s: p for p in command.parameters for s in p.spellings}
    positionals = list(command.positionals)
    values: dict[str, str | None] = {}
    paths: dict[str, ConfinedPath] = {}
    i = 1
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return Refused(
                f"{name}: '--' is not accepted: the endpoint places options and values itself",
                usage(granted),
                "option",
            )
        if word.startswith("-") and len(word) > 1:
            spelling, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
            p = by_spelling.get(spelling)
            if p is None:
                return Refused(
                    f"{name}: {_shown(spelling)} is not an option of this command", usage(granted), "option"
                )
            if p.name in values:
                return Refused(f"{name}: {spelling} is given twice", usage(granted), "option")
            if p.flag:
                if eq:
                    return Refused(f"{name}: {spelling} takes no value", usage(granted), "option")
                values[p.name] = None
                i += 1
                continue
            if eq and not p.joined:
                return Refused(
                    f"{name}: write {spelling} VALUE, not {spelling}=VALUE", usage(granted), "option"
                )
            if not eq:
                if i + 1 >= len(argv):
                    return Refused(f"{name}: {spelling} needs a value", usage(granted), "missing")
                inline = argv[i + 1]
                i += 1
            checked = _value(name, p, inline, account_exists)
            if isinstance(checked, Refused):
                return checked
            values[p.name] = checked[0]
            if checked[1] is not None:
                paths[p.name] = checked[1]
            i += 1
            continue
        if not positionals:
            return Refused(f"{name}: unexpected argument {_shown(word)}", usage(granted), "extra")
        p = positionals.pop(0)
        checked = _value(name, p, word, account_exists)
        if isinstance(checked, Refused):
            return checked
        values[p.name] = checked[0]
        if checked[1] is not None:
            paths[p.name] = checked[1]
        i += 1
    for p in command.parameters:
        if p.required and p.name not in values:
            return Refused(f"{name}: {p.option or p.name.upper()} is required", usage(granted), "missing")
    out = [command.path, *command.args]
    confined: list[ConfinedPath] = []
    ordered = [p for p in command.parameters if not p.positional] + list(command.positionals)
    for p in ordered:
        if p.name not in values:
            continue
        value = values[p.name]
        assert p.option is not None or value is not None
        if p.flag:
            out.append(str(p.option))
        elif p.positional:
            out.append(str(value))
        elif p.joined:
            out.append(f"{p.option}={value}")
        else:
            out.extend([str(p.option), str(value)])
        if p.name in paths:
            confined.append(ConfinedPath(p.name, paths[p.name].path, paths[p.name].under, len(out) - 1))
    return Granted(
        command=name,
        argv=tuple(out),
        roles=granted.roles,
        capabilities=granted.capabilities,
        timeout=command.timeout,
        env=command_env(command, caller_env),
        cwd=command.cwd,
        paths=tuple(confined),
    )


def match_line(
    capability: EffectiveCapability,
    line: str,
    *,
    caller_env: Mapping[str, str] | None = None,
    account_exists: AccountResolver | None = None,
) -> Granted | Refused:
    """Tokenize an interactive (or ``ssh host 'command'``) line, then ``match_argv``."""
    words = tokenize(line)
    if isinstance(words, Refused):
        return words
    return match_argv(capability, words, caller_env=caller_env, account_exists=account_exists)


def pin_path(confined: ConfinedPath) -> int:
    """An ``O_PATH`` fd on ``confined.path``, reached from ``confined.under`` without following
    any symlink: raise NotPermittedError if a component was swapped for a symlink (or removed)
    since the check. The caller passes the fd to the child and ``/proc/self/fd/N`` in the argv;
    fstat(2) of an ``O_PATH|O_NOFOLLOW`` fd describes the link itself, which is how a swapped-in
    symlink as the last component is seen; one in the middle makes the next openat fail."""
    relative = os.path.relpath(confined.path, confined.under)
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(confined.under, flags | os.O_DIRECTORY)
    except OSError as exc:
        raise NotPermittedError(
            f"{confined.under}: cannot open the confining directory: {exc.strerror}"
        ) from None
    if relative == ".":
        return fd
    try:
        for part in relative.split("/"):
            if part in ("", ".", ".."):
                raise NotPermittedError(f"{confined.path}: not a resolved path under {confined.under}")
            nxt = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
            if os.stat(fd).st_mode & 0o170000 == 0o120000:  # S_IFLNK: O_NOFOLLOW|O_PATH opens the link itself
                raise NotPermittedError(
                    f"{confined.path}: {part} became a symlink since it was checked",
                    hint="run the command again",
                )
    except NotPermittedError:
        os.close(fd)
        raise
    except OSError as exc:
        os.close(fd)
        raise NotPermittedError(f"{confined.path}: changed since it was checked: {exc.strerror}") from None
    return fd
