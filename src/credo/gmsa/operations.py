"""The gMSA verbs on top of a host session: test, show, keytab, run as.

Each mirrors what Windows admins know: ``test`` is Test-ADServiceAccount, ``keytab`` is what a
Windows service gets implicitly, ``run_as`` is ``PsExec -u DOMAIN\\name$ -p ~``.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from credo.errors import CredoError, InputError, NotFoundError, NotPermittedError
from credo.gmsa.account import account_summary, find_managed_account
from credo.gmsa.credentials import (
    AES_ENCTYPES,
    RC4,
    GmsaKeyMaterial,
    acquire_gmsa_tgt,
    allowed_enctypes,
    key_material,
)
from credo.gmsa.gkdi import Gkid, rollover_interval
from credo.gmsa.password_id import ManagedPasswordId
from credo.gmsa.retrieval import ManagedPassword, retrieve_managed_password
from credo.gmsa.runas import ChildResult, RunOptions, run_child
from credo.gmsa.session import HostSession, SessionSettings
from credo.krb.keytab import KeytabEntry, read_keytab, write_keytab_atomically
from credo.krb.tgt import destroy_ccache, new_memory_ccache_name

__all__ = [
    "AccountDisabled",
    "AccountTest",
    "KeptKeys",
    "KeytabReport",
    "RotationFacts",
    "check_account",
    "describe_account",
    "previous_keys_to_carry",
    "run_as",
    "usable_password",
    "write_account_keytab",
    "write_password_keytab",
]


FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


class AccountDisabled(NotPermittedError):
    """The managed service account is disabled."""


@dataclass(frozen=True)
class AccountTest:
    """The answer of ``credo gmsa test``: ok, or the precise reason why not."""

    ok: bool
    account: str
    reason: str | None = None
    hint: str | None = None
    error: str | None = None


def _usable_password(session: HostSession, name: str) -> ManagedPassword:
    password = retrieve_managed_password(session.directory, name)
    if not password.account.enabled:
        raise AccountDisabled(
            f"{password.account.sam_account_name} is disabled",
            hint="enable it (Set-ADServiceAccount -Enabled $true, `samba-tool user enable`)",
        )
    return password


def check_account(settings: SessionSettings, name: str) -> AccountTest:
    """Can this host retrieve the password of ``name`` and obtain a TGT as ``name$`` with it?

    Every failure, from a missing host keytab to a refused TGT, becomes the reason of a negative
    answer, as Test-ADServiceAccount answers False rather than failing.
    """
    try:
        with HostSession(settings) as session:
            account, _ = find_managed_account(session.directory, name)
            if not account.enabled:
                raise AccountDisabled(
                    f"{account.sam_account_name} is disabled",
                    hint="enable it (Set-ADServiceAccount -Enabled $true, `samba-tool user enable`)",
                )
            password = _usable_password(session, name)
            ccache = new_memory_ccache_name("test")
            try:
                acquire_gmsa_tgt(password, session.realm, session.dns_domain, ccache)
            finally:
                destroy_ccache(ccache)
    except CredoError as exc:
        return AccountTest(
            ok=False, account=name, reason=exc.message, hint=exc.hint, error=type(exc).__name__
        )
    return AccountTest(ok=True, account=password.account.sam_account_name)


def describe_account(session: HostSession, name: str) -> dict[str, Any]:
    """What ``credo gmsa show`` prints. Never a secret: the password is not even read."""
    account, _ = find_managed_account(session.directory, name)
    password_id: dict[str, Any] | None = None
    next_rotation: str | None = None
    if account.password_id:
        pid = ManagedPasswordId.unpack(account.password_id)
        password_id = {"root_key_id": str(pid.root_key_id), "l0": pid.l0, "l1": pid.l1, "l2": pid.l2}
        if account.interval_days:
            # The current password's interval starts at its GKID and lasts one rollover (MS-GKDI;
            # Samba gkdi_rollover_interval): the next password is due at the end of it.
            ends = Gkid(pid.l0, pid.l1, pid.l2).start_filetime() + rollover_interval(account.interval_days)
            next_rotation = (FILETIME_EPOCH + timedelta(microseconds=ends // 10)).isoformat()
    return account_summary(session.directory, account) | {
        "kvno": account.kvno,
        "password_id": password_id,
        "password_last_set": account.password_last_set.isoformat() if account.password_last_set else None,
        "next_rotation": next_rotation,
        "previous_password_present": account.previous_password_id is not None,
    }


@dataclass(frozen=True)
class KeytabReport:
    """What ``credo gmsa keytab`` wrote (no key material)."""

    path: str
    principals: list[str]
    kvnos: list[int]
    enctypes: list[int]
    pre_rotation_window: bool
    refresh_after: str
    next_rotation: str


def _owner_ids(owner: str | None) -> tuple[int | None, int | None]:
    if owner is None:
        return None, None
    user, _, group = owner.partition(":")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise InputError(f"no local user {user!r} for --owner") from None
    gid = entry.pw_gid
    if group:
        import grp

        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise InputError(f"no local group {group!r} for --owner") from None
    if os.geteuid() != 0 and entry.pw_uid != os.geteuid():
        raise NotPermittedError("--owner needs root to give a file to another user")
    return entry.pw_uid, gid


def write_account_keytab(
    session: HostSession,
    name: str,
    out: Path,
    *,
    spns: list[str] | tuple[str, ...] = (),
    owner: str | None = None,
    enctypes: tuple[int, ...],
) -> KeytabReport:
    """Write the keys of ``name`` (current, previous, and future inside the window) to ``out``."""
    uid, gid = _owner_ids(owner)
    password = retrieve_managed_password(session.directory, name)
    return write_password_keytab(
        password, session.realm, session.dns_domain, out, spns=spns, uid=uid, gid=gid, enctypes=enctypes
    )


def write_password_keytab(
    password: ManagedPassword,
    realm: str,
    dns_domain: str,
    out: Path,
    *,
    spns: list[str] | tuple[str, ...] = (),
    uid: int | None = None,
    gid: int | None = None,
    mode: int = 0o600,
    enctypes: tuple[int, ...],
) -> KeytabReport:
    """Write the keys of a retrieved password (current, previous, and future inside the window)."""
    material = key_material(password, realm, dns_domain, enctypes=enctypes, spns=spns)
    entries = list(material.entries) + previous_keys_to_carry(_existing_entries(out), material.entries)
    write_keytab_atomically(out, entries, owner_uid=uid, owner_gid=gid, mode=mode)
    return _report(str(out), material.entries, entries, RotationFacts.of(password))


@dataclass(frozen=True)
class RotationFacts:
    """What a keytab report says of the password's rotation (no secret)."""

    pre_rotation_window: bool
    refresh_after: datetime
    next_rotation: datetime

    @classmethod
    def of(cls, password: ManagedPassword) -> RotationFacts:
        return cls(password.in_pre_rotation_window, password.refresh_after, password.next_rotation)


@dataclass(frozen=True)
class KeptKeys:
    """The keys of one retrieval, never its password: every version the blob had (current,
    previous, future inside the pre-rotation window) in ``enctypes``, for the account itself.

    What a long-running holder (the credential agent) keeps to write the same keytab as
    ``write_password_keytab`` later, for any SPNs, without asking the DC again.
    """

    material: GmsaKeyMaterial = field(repr=False)
    realm: str
    allowed: tuple[int, ...]  # the enctypes the account allows (msDS-SupportedEncryptionTypes)
    rotation: RotationFacts

    @classmethod
    def of(
        cls, password: ManagedPassword, realm: str, dns_domain: str, enctypes: tuple[int, ...]
    ) -> KeptKeys:
        allowed = allowed_enctypes((*AES_ENCTYPES, RC4), password.account.supported_enctypes)
        material = key_material(password, realm, dns_domain, enctypes=enctypes)
        return cls(material, realm, allowed, RotationFacts.of(password))

    def carrying(self, older: KeptKeys | None) -> KeptKeys:
        """These keys plus ``older``'s kvno-1 keys when the DC no longer returned them (after a
        rollover Samba leaves the previous password out for a while)."""
        if older is None:
            return self
        carried = previous_keys_to_carry(older.material.entries, self.material.entries)
        if not carried:
            return self
        entries = self.material.entries + tuple(carried)
        return replace(self, material=replace(self.material, entries=entries))

    def keytab_entries(
        self, enctypes: tuple[int, ...], spns: tuple[str, ...] | list[str], existing: list[KeytabEntry]
    ) -> tuple[GmsaKeyMaterial, list[KeytabEntry]]:
        """What ``write_password_keytab`` would write over a file holding ``existing``: the
        selected keys and the kvno-1 keys to carry from the file (other principals are the
        writer's part). Raises NotFoundError for an allowed enctype these keys do not hold."""
        sam = self.material.principal.split("@", 1)[0]
        usable = tuple(e for e in enctypes if e in self.allowed)
        if not usable:
            raise InputError(
                f"{sam} allows none of the requested encryption types",
                hint="check msDS-SupportedEncryptionTypes of the account and --enctypes",
            )
        held = {e.enctype for e in self.material.entries}
        missing = [e for e in usable if e not in held]
        if missing:
            raise NotFoundError(f"no keys of enctype {missing[0]} of {sam} are kept here")
        material = self.material.select(usable, spns, self.realm)
        return material, list(material.entries) + previous_keys_to_carry(existing, material.entries)

    def report(self, path: str, material: GmsaKeyMaterial, entries: list[KeytabEntry]) -> KeytabReport:
        return _report(path, material.entries, entries, self.rotation)


def _report(
    path: str, new: tuple[KeytabEntry, ...], written: list[KeytabEntry], rotation: RotationFacts
) -> KeytabReport:
    return KeytabReport(
        path=path,
        principals=sorted({e.principal for e in new}),
        kvnos=sorted({e.kvno for e in written}, reverse=True),
        enctypes=sorted({e.enctype for e in new}, reverse=True),
        pre_rotation_window=rotation.pre_rotation_window,
        refresh_after=rotation.refresh_after.astimezone(UTC).isoformat(),
        next_rotation=rotation.next_rotation.astimezone(UTC).isoformat(),
    )


def _existing_entries(path: Path) -> list[KeytabEntry]:
    try:
        return read_keytab(path)
    except CredoError:
        return []


def previous_keys_to_carry(existing: Iterable[KeytabEntry], new: Iterable[KeytabEntry]) -> list[KeytabEntry]:
    """Keys at kvno-1 in ``existing`` for the principals of ``new``, when ``new`` has none.

    A DC does not always include the previous password (Samba leaves it out for a while after a
    rollover), yet tickets issued before the rollover still need it: keep what the file had.
    """
    new = list(new)
    principals = {e.principal.lower() for e in new}
    newest = max(e.kvno for e in new)
    if any(e.kvno == newest - 1 for e in new):
        return []
    return [e for e in existing if e.principal.lower() in principals and e.kvno == newest - 1]


def usable_password(session: HostSession, name: str) -> ManagedPassword:
    """The managed password of an enabled account, for ``run_as``."""
    return _usable_password(session, name)


def run_as(password: ManagedPassword, realm: str, dns_domain: str, options: RunOptions) -> ChildResult:
    """Run ``options.command`` with a TGT for the account in a fresh private ccache.

    The host session can be closed before: only the password (in memory) is needed.
    """

    def write_ccache(path: Path) -> None:
        acquire_gmsa_tgt(password, realm, dns_domain, f"FILE:{path}")

    return run_child(options, write_ccache)
