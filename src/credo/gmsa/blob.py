"""MSDS-MANAGEDPASSWORD_BLOB: the value of msDS-ManagedPassword (MS-ADTS 2.2.19).

All integers little-endian::

    Version                          u16   must be 1
    Reserved                         u16   0
    Length                           u32   total length of the blob
    CurrentPasswordOffset            u16
    PreviousPasswordOffset           u16   0 when there is no previous password
    QueryPasswordIntervalOffset      u16
    UnchangedPasswordIntervalOffset  u16

Each password is NUL-terminated UTF-16LE (256 bytes + 2 in practice); each interval is a u64 in
100-ns units. The offsets are authoritative: the parser never assumes positions (padding may
appear between fields). A password runs from its offset to its first NUL code unit, which must
come before the next field that follows it.

Rotation (Samba ``source4/dsdb/gmsa/util.c`` ``gmsa_recalculate_managed_pwd``, gmsad
``doc/gmsa.md``): normally ``Unchanged = Query - 5 min``. In the last five minutes before a
rotation the DC returns the *future* password as "current" and the still-valid one as
"previous", and ``Unchanged = Query + rollover - 5 min`` exceeds ``Query``. See
:func:`rotation_state`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from credo.errors import InputError
from credo.krb.keys import nt_hash, password_utf8

__all__ = [
    "MalformedBlobError",
    "ManagedPasswordBlob",
    "RotationState",
    "nt_hash",
    "password_utf8",
    "rotation_state",
]

_HEADER = struct.Struct("<HHIHHHH")
_INTERVAL = struct.Struct("<Q")
_VERSION = 1
_TERMINATOR = b"\0\0"
_MAX_TICKS = 10_000_000 * 86_400 * 366 * 1000  # a thousand years: anything larger is corrupt
_ONE_MICROSECOND = timedelta(microseconds=1)


class MalformedBlobError(InputError):
    """msDS-ManagedPassword does not follow MS-ADTS 2.2.19 (the message never holds its bytes)."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"malformed msDS-ManagedPassword blob: {reason}",
            hint="the value did not come from a domain controller, or was truncated in transit",
        )


def _interval(data: bytes, offset: int, name: str) -> timedelta:
    if offset < _HEADER.size or offset + _INTERVAL.size > len(data):
        raise MalformedBlobError(f"{name} offset {offset} is out of range")
    (ticks,) = _INTERVAL.unpack_from(data, offset)
    if ticks > _MAX_TICKS:
        raise MalformedBlobError(f"{name} is implausibly large")
    return timedelta(microseconds=ticks // 10)


def _password(data: bytes, offset: int, end: int, name: str) -> bytes:
    """The UTF-16LE password at ``offset``, up to its NUL terminator (before ``end``)."""
    if offset < _HEADER.size or offset >= end:
        raise MalformedBlobError(f"{name} offset {offset} is out of range")
    for cursor in range(offset, end - 1, 2):
        if data[cursor : cursor + 2] == _TERMINATOR:
            if cursor == offset:
                raise MalformedBlobError(f"{name} is empty")
            return data[offset:cursor]
    raise MalformedBlobError(f"{name} at offset {offset} has no NUL terminator before offset {end}")


def _check_password(value: bytes, name: str) -> None:
    if not value or len(value) % 2:
        raise ValueError(f"{name} must be non-empty UTF-16LE (even length)")
    if any(value[i : i + 2] == _TERMINATOR for i in range(0, len(value), 2)):
        raise ValueError(f"{name} contains a NUL code unit")


def _ticks(interval: timedelta, name: str) -> int:
    if interval < timedelta(0):
        raise ValueError(f"{name} cannot be negative")
    microseconds: int = interval // _ONE_MICROSECOND
    return microseconds * 10


@dataclass(frozen=True)
class ManagedPasswordBlob:
    """A parsed msDS-ManagedPassword (MS-ADTS 2.2.19).

    Passwords are the raw UTF-16LE bytes without their terminator and never appear in the repr;
    see :func:`nt_hash` and :func:`password_utf8` for the forms Kerberos needs. Intervals are
    relative to the moment the DC answered, truncated to microseconds.
    """

    current_password: bytes = field(repr=False)
    previous_password: bytes | None = field(repr=False)
    query_password_interval: timedelta
    unchanged_password_interval: timedelta

    @classmethod
    def unpack(cls, data: bytes) -> ManagedPasswordBlob:
        """Parse and validate a blob; raises :class:`MalformedBlobError`."""
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise MalformedBlobError(f"{len(data)} bytes is shorter than the 16-byte header")
        version, _reserved, length, cur, prev, query, unchanged = _HEADER.unpack_from(data)
        if version != _VERSION:
            raise MalformedBlobError(f"version {version}, expected 1")
        if length != len(data):
            raise MalformedBlobError(f"length field says {length} bytes but the value has {len(data)}")
        if cur == 0:
            raise MalformedBlobError("there is no current password")
        # A password ends before the next field that follows it (or the end of the blob).
        boundaries: list[int] = sorted({o for o in (cur, prev, query, unchanged) if o} | {length})

        def end_of(offset: int) -> int:
            return next((b for b in boundaries if b > offset), length)

        current = _password(data, cur, end_of(cur), "current password")
        previous = _password(data, prev, end_of(prev), "previous password") if prev else None
        return cls(
            current_password=current,
            previous_password=previous,
            query_password_interval=_interval(data, query, "query password interval"),
            unchanged_password_interval=_interval(data, unchanged, "unchanged password interval"),
        )

    def pack(self) -> bytes:
        """The layout Windows and Samba write: header, current, previous, query, unchanged.

        Raises ``ValueError`` for a value no DC could send (empty or odd-length password, a NUL
        code unit inside a password, a negative interval).
        """
        _check_password(self.current_password, "the current password")
        if self.previous_password is not None:
            _check_password(self.previous_password, "the previous password")
        query_ticks = _ticks(self.query_password_interval, "the query password interval")
        unchanged_ticks = _ticks(self.unchanged_password_interval, "the unchanged password interval")
        current = self.current_password + _TERMINATOR
        previous = b"" if self.previous_password is None else self.previous_password + _TERMINATOR
        cur = _HEADER.size
        prev = cur + len(current) if previous else 0
        query = cur + len(current) + len(previous)
        unchanged = query + _INTERVAL.size
        length = unchanged + _INTERVAL.size
        if length > 0xFFFF:
            raise ValueError("the passwords are too long for 16-bit offsets")
        return b"".join(
            (
                _HEADER.pack(_VERSION, 0, length, cur, prev, query, unchanged),
                current,
                previous,
                _INTERVAL.pack(query_ticks),
                _INTERVAL.pack(unchanged_ticks),
            )
        )


@dataclass(frozen=True)
class RotationState:
    """Where a blob retrieved at ``retrieved_at`` stands in the password rotation.

    ``in_pre_rotation_window``: the DC answered inside the last five minutes before a rotation,
    so the blob's *current* password is the future one (valid from ``next_rotation``) and its
    *previous* password is the one the KDC still accepts now.
    ``next_rotation``: ``retrieved_at + QueryPasswordInterval``.
    ``refresh_at``: when to read the blob again: when the window opens (``retrieved_at +
    UnchangedPasswordInterval``), or, inside the window, right after the rotation.
    """

    retrieved_at: datetime
    in_pre_rotation_window: bool
    next_rotation: datetime
    refresh_at: datetime

    def kvnos(self, key_version_number: int) -> tuple[int, int]:
        """(kvno of the blob's current password, kvno of its previous password).

        ``msDS-KeyVersionNumber`` (read after the password) names the password the KDC uses now:
        normally current = kvno and previous = kvno - 1; inside the window the future password
        gets kvno + 1 and the still-valid previous one kvno (gmsad ``doc/gmsa.md``).
        """
        if self.in_pre_rotation_window:
            return key_version_number + 1, key_version_number
        return key_version_number, key_version_number - 1


def rotation_state(blob: ManagedPasswordBlob, retrieved_at: datetime) -> RotationState:
    """The rotation state of ``blob`` as the DC answered it at ``retrieved_at`` (timezone-aware)."""
    if retrieved_at.tzinfo is None:
        raise ValueError("retrieved_at must be timezone-aware")
    query = blob.query_password_interval
    unchanged = blob.unchanged_password_interval
    return RotationState(
        retrieved_at=retrieved_at,
        in_pre_rotation_window=unchanged > query,
        next_rotation=retrieved_at + query,
        refresh_at=retrieved_at + min(query, unchanged),
    )
