"""Reading a TOML configuration file key by key, each complaint one line naming the file and key.

Shared by every TOML file credo reads (the agent's configuration, endpoint definitions): the file
is parsed with tomllib, then each table is read through a ``TableReader`` that checks types, names
the full key path (``account[0].keytab[1].mode``) in its error, and refuses keys nobody read.
The error class and the hint are the caller's, so each file type names its own fix.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from credo.errors import InputError

__all__ = ["TableReader", "read_toml"]

T = TypeVar("T")


def read_toml(
    path: Path, error: type[InputError] = InputError, *, missing_hint: str | None = None
) -> dict[str, Any]:
    """Parse ``path``; a missing, unreadable or malformed file raises ``error`` (one line)."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: no such file", hint=missing_hint) from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise error(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
    except ValueError:  # tomllib lets int()'s refusal of more than 4300 digits through
        raise error(f"{path}: not valid TOML: an integer has too many digits") from None


class TableReader:
    """Reads one table, naming every key it complains about as ``file: key.path: ...``.

    Subclasses (or instances) set ``error`` and ``hint`` to the error class and the fix that
    their kind of file calls for.
    """

    error: type[InputError] = InputError
    hint: str | None = None

    def __init__(self, path: Path, table: dict[str, Any], where: str) -> None:
        self.path, self.table, self.where = path, table, where
        self.used: set[str] = set()

    def key(self, key: str) -> str:
        """The full dotted path of ``key`` in this table."""
        if not key:
            return self.where
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, what: str) -> InputError:
        where = self.key(key)
        if not where.isprintable():  # keys come from the file, and a quoted one may hold a line break
            where = where.encode("unicode_escape").decode()
        return self.error(f"{self.path}: {where}: {what}", hint=self.hint)

    def get(self, key: str, kind: type[T], default: T | None = None, *, required: bool = False) -> T:
        self.used.add(key)
        if key not in self.table:
            if required:
                raise self.fail(key, "missing")
            return default  # type: ignore[return-value]
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:  # TOML integers are unbounded in tomllib, floats are not
                raise self.fail(key, "the number is out of range") from None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        if not all(isinstance(v, str) and v for v in values):
            raise self.fail(key, "expected a list of non-empty strings")
        return tuple(values)

    def tables(self, key: str) -> list[tuple[str, dict[str, Any]]]:
        values = self.get(key, list, [])
        if not all(isinstance(v, dict) for v in values):
            raise self.fail(key, "expected tables ([[...]])")
        prefix = self.key(key)
        return [(f"{prefix}[{i}]", v) for i, v in enumerate(values)]

    def sub(self, key: str) -> dict[str, Any]:
        return self.get(key, dict, {})

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.fail(unknown[0], "unknown key")

    def check(self, key: str, ok: Callable[[], object]) -> None:
        try:
            ok()
        except InputError as exc:
            raise self.fail(key, exc.message) from None
