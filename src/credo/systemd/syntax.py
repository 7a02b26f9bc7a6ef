"""The syntax of unit files, as far as credo writes them: unit names, command lines, assignments.

Pure rules, no I/O. Sources: systemd.unit(5) ("Description": unit names; "Specifiers"),
systemd.syntax(7) (quoting and C-style escapes), systemd.service(5) ("Command lines": how
``ExecStart=`` is split, specifiers, ``$`` substitution) and systemd.exec(5) (``Environment=``).

systemd reads a command line in three passes, and a literal argument must survive all three:
1. it splits the line into words, removing ``"..."`` quotes and decoding C escapes (``\\"``,
   ``\\\\``, ``\\n``, ``\\xNN``);
2. it expands specifiers in each word (``%n``, ``%h``...): a literal ``%`` is written ``%%``;
3. when the service starts, it substitutes ``$NAME`` and ``${NAME}`` in the arguments (not in the
   program path): a literal ``$`` is written ``$$``.
``Environment=`` assignments go through passes 1 and 2 only: a ``$`` there is already literal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from credo.errors import InputError

__all__ = [
    "MAX_UNIT_NAME",
    "escape_specifiers",
    "exec_command_line",
    "quote_assignment",
    "quote_path",
    "unit_name",
    "validate_env_name",
]

# systemd.unit(5): "The total length of the unit name including the suffix must not exceed 255".
MAX_UNIT_NAME = 255
# systemd.unit(5): the unit name prefix is "one or more valid characters (ASCII letters, digits,
# ":", "-", "_", ".", and "\")". "@" marks a template or an instance: credo writes neither.
_UNIT_PREFIX = re.compile(r"^[A-Za-z0-9:_.\\-]+$")
# systemd.unit(5): the unit types. "x.socket" as a service name is legal ("x.socket.service") but
# almost surely a mistake.
_UNIT_TYPES = (".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target", ".path",
               ".timer", ".slice", ".scope")  # fmt: skip
# A word that needs no quoting: nothing that passes 1-3 above would change, no whitespace.
_BARE_WORD = re.compile(r"^[A-Za-z0-9_./:=,+@-]+$")
# POSIX environment variable names as systemd accepts them (env_name_is_valid: no "=", not empty,
# not starting with a digit); credo asks for the portable subset.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# systemd.syntax(7) C escapes that credo writes; anything else below 0x20 (and DEL) as \xNN.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def unit_name(name: str, suffix: str, *, accept: Sequence[str] = ()) -> str:
    """``backup`` or ``backup.service`` -> ``backup.service`` (for ``suffix`` ``.service``), validated.

    ``accept``: other suffixes the caller may give and that are replaced (``credo systemd timer
    nightly.timer`` names the service ``nightly.service`` too).
    """
    prefix = name
    for known in (suffix, *accept):
        if name.endswith(known):
            prefix = name[: -len(known)]
            break
    if "@" in prefix:
        raise InputError(
            f"invalid unit name {name!r}: '@' makes a template or an instance",
            hint="give a plain name, e.g. nightly-report",
        )
    if not prefix or not _UNIT_PREFIX.match(prefix) or prefix in {".", ".."}:
        raise InputError(
            f"invalid unit name {name!r}",
            hint="use ASCII letters, digits and ':', '-', '_', '.' (systemd.unit(5))",
        )
    if prefix.endswith(_UNIT_TYPES):
        raise InputError(
            f"invalid unit name {name!r}: it names a {prefix.rsplit('.', 1)[1]} unit",
            hint=f"give the name without a suffix, or with {' or '.join((suffix, *accept))}",
        )
    full = prefix + suffix
    if len(full) > MAX_UNIT_NAME:
        raise InputError(f"invalid unit name {name!r}: longer than {MAX_UNIT_NAME} characters with {suffix}")
    return full


def validate_env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise InputError(
            f"invalid environment variable name {name!r}",
            hint="letters, digits and '_', not starting with a digit",
        )
    return name


def escape_specifiers(value: str) -> str:
    """``%`` -> ``%%`` in a setting that expands specifiers (Description=, OnCalendar=, paths)."""
    _check_text(value)
    return value.replace("%", "%%")


def quote_assignment(name: str, value: str) -> str:
    """One ``Environment=`` word: ``NAME=VALUE``, quoted when needed (no ``$`` pass here)."""
    validate_env_name(name)
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        # systemd.exec(5) refuses such values (env_value_is_valid): say so now, not at start.
        raise InputError(f"the value of {name} contains a control character")
    return _quote(f"{name}={value}", dollar=False)


def quote_path(path: str) -> str:
    """One absolute path in a space-separated list of paths (``ReadWritePaths=``)."""
    if not path.startswith("/"):
        raise InputError(f"the path {path!r} is not absolute")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        raise InputError(f"the path {path!r} contains a control character")
    return _quote(path, dollar=False)


def exec_command_line(argv: Sequence[str]) -> str:
    """The value of ``ExecStart=`` that makes systemd run exactly ``argv``.

    ``argv[0]`` must be an absolute path; it is the program path, which systemd does not pass
    through ``$`` substitution, so a ``$`` in it could not be written at all.
    """
    if not argv:
        raise InputError("no command given", hint="put the command after --, e.g. -- /usr/bin/true")
    program = argv[0]
    if not program.startswith("/"):
        raise InputError(f"the program {program!r} is not an absolute path")
    # systemd refuses quotes, backslashes and control characters in the program path ("Executable
    # name contains special characters", string_is_safe() in config_parse_exec), and does not pass
    # it through the $ pass, so a "$" there could not be written at all.
    bad = [char for char in program if char in "\"'\\$" or ord(char) < 0x20 or ord(char) == 0x7F]
    if bad:
        raise InputError(
            f"the program path {program!r} contains {bad[0]!r}, which systemd does not take there",
            hint="use a path (or a symlink to it) without quotes, backslashes, '$' or control characters",
        )
    words = [_quote(program, dollar=False)]
    words += [_quote(arg, dollar=True) for arg in argv[1:]]
    return " ".join(words)


def _check_text(value: str) -> None:
    """Unit files are UTF-8 text, and a command line cannot carry a NUL byte."""
    if "\x00" in value:
        raise InputError("an argument contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"an argument is not valid UTF-8 ({value!r})", hint="unit files are UTF-8 text"
        ) from exc


def _quote(word: str, *, dollar: bool) -> str:
    _check_text(word)
    if _BARE_WORD.match(word):
        return word
    out = []
    for char in word:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        elif char == "%":
            out.append("%%")
        elif char == "$" and dollar:
            out.append("$$")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
