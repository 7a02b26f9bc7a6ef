"""What every fuzz test shares: its settings, the "typed errors only" check, mutations of valid input.

A parser of bytes that come from outside (a DC, a file an operator wrote, an HTTP caller) must
either return or raise one of credo's errors (``CredoError`` and its subclasses): a bare
``IndexError``, ``struct.error``, ``ValueError``, ``UnicodeDecodeError``, ``RecursionError``...
escaping it is a bug, shown to a user as a traceback and, in the server, as a 500. ``typed_only``
lets a credo error through (checked to be one line) and lets anything else fail the test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from credo.errors import CredoError

__all__ = ["FUZZ", "FUZZ_DOCUMENTS", "boundary_values", "mutated", "typed_only"]

T = TypeVar("T")

# No profile in this repository: each test says how much it runs. 200 examples, and 100 for the
# tests that draw whole documents (a TOML file, a JWT, a runbook's declarations), keep the whole
# directory under a minute on a busy 2-core machine.
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_DOCUMENTS = settings(FUZZ, max_examples=100)


def typed_only(parse: Callable[..., T], *args: Any, **kwargs: Any) -> T | CredoError:
    """``parse(*args)``'s result, or the credo error it raised; any other exception escapes."""
    try:
        return parse(*args, **kwargs)
    except CredoError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"not a one-line message: {message!r}"
        return exc


def boundary_values(size: int, length: int) -> list[int]:
    """Values a ``size``-byte length or offset field is worth trying: 0, 1, the input's length
    and its neighbours, the largest signed and unsigned values."""
    top = (1 << (8 * size)) - 1
    candidates = [0, 1, 2, 3, 4, 8, length - 1, length, length + 1, top >> 1, (top >> 1) + 1, top - 1, top]
    return sorted({v for v in candidates if 0 <= v <= top})


@st.composite
def mutated(
    draw: st.DrawFn,
    base: bytes,
    *,
    fields: tuple[tuple[int, int], ...] = (),
    byteorder: Literal["little", "big"] = "little",
    rounds: int = 3,
) -> bytes:
    """``base`` after one to ``rounds`` mutations: a byte overwritten, the input cut short or
    extended, a span deleted or duplicated, or a length/offset field (``(offset, size)`` in
    ``fields``, else any 1, 2 or 4 bytes) set to a boundary value."""
    data = bytearray(base)
    for _ in range(draw(st.integers(min_value=1, max_value=rounds))):
        kind = draw(st.sampled_from(["overwrite", "truncate", "extend", "delete", "duplicate", "field"]))
        if kind == "truncate":
            del data[draw(st.integers(min_value=0, max_value=len(data))) :]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=16))
        elif not data:
            continue
        elif kind == "overwrite":
            data[draw(st.integers(min_value=0, max_value=len(data) - 1))] = draw(st.integers(0, 255))
        elif kind in ("delete", "duplicate"):
            start = draw(st.integers(min_value=0, max_value=len(data) - 1))
            end = draw(st.integers(min_value=start, max_value=min(len(data), start + 64)))
            if kind == "delete":
                del data[start:end]
            else:
                data[start:start] = data[start:end]
        else:
            if fields and draw(st.booleans()):
                offset, size = draw(st.sampled_from(fields))
            else:
                size = draw(st.sampled_from([1, 2, 4]))
                offset = draw(st.integers(min_value=0, max_value=len(data) - 1))
            if offset + size > len(data):
                continue
            value = draw(st.sampled_from(boundary_values(size, len(data))))
            data[offset : offset + size] = value.to_bytes(size, byteorder)
    return bytes(data)
