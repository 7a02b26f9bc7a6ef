"""Keytab files, read and written through MIT krb5 (pykrb5), replaced atomically.

``write_keytab_atomically`` builds the new keytab in a temporary file in the same directory,
created with ``O_CREAT | O_EXCL`` and mode 0600 (so it is never readable by others, not even
for an instant, and never a file an attacker planted), keeps every entry of principals it is not
writing, fsyncs it, sets the owner, renames it over the target and fsyncs the directory: a reader
sees the old file or the new one, never a half-written one, and a crash leaves the old file.

Principals are compared case-insensitively, as Active Directory does: writing ``HTTP/web@R``
replaces a stale ``http/web@R``. Two concurrent writers of the same file are not serialised: the
last rename wins.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import krb5

from credo.errors import EnvironmentProblem, InputError

__all__ = ["KeytabEntry", "merge_entries", "read_keytab", "write_keytab_atomically", "write_keytab_to_fd"]

# MIT keytab file format version 0x0502: an empty but valid keytab (MIT rejects a 0-byte file).
_KEYTAB_HEADER = b"\x05\x02"


@dataclass(frozen=True)
class KeytabEntry:
    """One keytab entry: ``principal@REALM``, kvno, enctype number and key (never in the repr).

    ``timestamp`` (seconds since the epoch) is kept when an entry is carried over; None means
    "now" when written.
    """

    principal: str
    kvno: int
    enctype: int
    key: bytes = field(repr=False)
    timestamp: int | None = None


def _file_name(path: Path) -> bytes:
    return b"FILE:" + os.fsencode(os.path.abspath(path))


def read_keytab(path: Path | str) -> list[KeytabEntry]:
    """Every entry of the keytab at ``path``, in file order ([] when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    ctx = krb5.init_context()
    keytab = krb5.kt_resolve(ctx, _file_name(path))
    entries: list[KeytabEntry] = []
    try:
        for entry in keytab:
            # Copy everything out now: the entry's principal and key die with the entry.
            name = krb5.unparse_name_flags(ctx, entry.principal).decode("utf-8", "replace")
            entries.append(
                KeytabEntry(name, entry.kvno, entry.key.enctype, bytes(entry.key.data), entry.timestamp)
            )
    except krb5.Krb5Error as exc:
        raise EnvironmentProblem(
            f"cannot read keytab {path}: {exc}",
            hint="move the file away or repair it; credo keeps other principals' entries",
        ) from exc
    return entries


def write_keytab_atomically(
    path: Path | str,
    entries: Iterable[KeytabEntry],
    *,
    keep_other_principals: bool = True,
    owner_uid: int | None = None,
    owner_gid: int | None = None,
    mode: int = 0o600,
) -> None:
    """Replace the entries of the principals in ``entries``; keep those of other principals.

    With ``keep_other_principals=False`` the file holds exactly ``entries``. ``owner_uid`` /
    ``owner_gid`` chown the new file before it is renamed into place (needs privilege).
    """
    path = Path(path)
    new = list(entries)
    all_entries = merge_entries(read_keytab(path), new) if keep_other_principals else new
    directory = path.parent
    tmp = directory / f".{path.name}.credo-{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot create a keytab in {directory}: {exc.strerror}",
            hint="check that the directory exists and is writable by this user",
        ) from exc
    try:
        try:
            os.write(fd, _KEYTAB_HEADER)
        finally:
            os.close(fd)
        _add_entries(tmp, all_entries)
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if owner_uid is not None or owner_gid is not None:
                os.fchown(fd, -1 if owner_uid is None else owner_uid, -1 if owner_gid is None else owner_gid)
            if mode != 0o600:
                os.fchmod(fd, mode)  # after the chown: its group may read, never before
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_directory(directory)
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot write keytab {path}: {exc.strerror}",
            hint="check permissions (changing the owner needs root)",
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def merge_entries(existing: Iterable[KeytabEntry], new: Iterable[KeytabEntry]) -> list[KeytabEntry]:
    """``existing`` entries of principals that ``new`` does not write, then ``new``."""
    new = list(new)
    written = {entry.principal.casefold() for entry in new}
    return [entry for entry in existing if entry.principal.casefold() not in written] + new


def write_keytab_to_fd(fd: int, entries: Iterable[KeytabEntry]) -> None:
    """Make the open regular file ``fd`` a keytab of exactly ``entries`` (for a file a caller
    opened and handed over: the credential agent never opens a caller's path).

    MIT krb5 writes keytabs by name only, so it is given ``/proc/self/fd/N``: the kernel's link
    to this very open file (proc(5)), whatever the caller renames or unlinks meanwhile. Renaming
    the file into place and fsyncing it are the caller's part.
    """
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, _KEYTAB_HEADER, 0)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write a keytab into the given file: {exc.strerror}") from exc
    _add_entries(Path(f"/proc/self/fd/{fd}"), list(entries))


def _add_entries(path: Path, entries: list[KeytabEntry]) -> None:
    ctx = krb5.init_context()
    keytab = krb5.kt_resolve(ctx, _file_name(path))
    now = int(time.time())
    for entry in entries:
        try:
            principal = krb5.parse_name_flags(
                ctx, entry.principal.encode("utf-8"), krb5.PrincipalParseFlags.require_realm
            )
        except krb5.Krb5Error as exc:
            raise InputError(
                f"{entry.principal!r} is not a Kerberos principal name with a realm",
                hint="write it as name@REALM",
            ) from exc
        try:
            block = krb5.init_keyblock(ctx, entry.enctype, entry.key)
            timestamp = now if entry.timestamp is None else entry.timestamp
            krb5.kt_add_entry(ctx, keytab, principal, entry.kvno, timestamp, block)
        except krb5.Krb5Error as exc:
            raise EnvironmentProblem(f"cannot add a key for {entry.principal} to a keytab: {exc}") from exc


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
