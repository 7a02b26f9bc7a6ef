"""Retrieve a managed password as the host, and say precisely why when the DC returns none.

The password is read first and msDS-KeyVersionNumber in a second search: reading the password can
itself make the DC roll the keys over (Samba gmsa_tests: retrieving triggers the keys update), and
the kvno must describe the password we hold (gmsa-on-linux.md, gmsad doc/gmsa.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NoReturn

import ldap

from credo.ad.connection import Directory
from credo.ad.names import escape_filter_value, managed_account_sam
from credo.errors import CredoError, NotPermittedError
from credo.gmsa.account import (
    ManagedServiceAccount,
    find_managed_account,
    resolve_sid_names,
    token_group_sids,
)
from credo.gmsa.blob import ManagedPasswordBlob, RotationState, rotation_state

__all__ = [
    "ManagedPassword",
    "NoPasswordReturned",
    "NotPermittedToRetrieve",
    "retrieve_managed_password",
]

PASSWORD_ATTRIBUTE = "msDS-ManagedPassword"  # noqa: S105 - an attribute name
KDS_HINT = "create one (`credo kds add --effective-immediately`, Add-KdsRootKey), or wait until it is usable"


class NotPermittedToRetrieve(NotPermittedError):
    """This host is not among the principals allowed to retrieve the managed password."""

    def __init__(self, message: str, *, allowed: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.allowed = allowed


class NoPasswordReturned(CredoError):
    """The host is allowed, yet the DC returned no password (no usable KDS root key, usually)."""


@dataclass(frozen=True)
class ManagedPassword:
    """A retrieved managed password with the account it belongs to (kvno read after the password).

    In the last five minutes before a rotation the DC returns the *future* password as current and
    the still-valid one as previous, and the unchanged interval then exceeds the query interval
    (MS-ADTS 3.1.1.4.5.39; Samba ``gmsa_recalculate_managed_pwd``).
    """

    account: ManagedServiceAccount
    blob: ManagedPasswordBlob = field(repr=False)
    retrieved_at: datetime

    @property
    def kvno(self) -> int:
        return self.account.kvno or 1

    @property
    def rotation(self) -> RotationState:
        return rotation_state(self.blob, self.retrieved_at)

    @property
    def in_pre_rotation_window(self) -> bool:
        return self.rotation.in_pre_rotation_window

    @property
    def next_rotation(self) -> datetime:
        return self.rotation.next_rotation

    @property
    def refresh_after(self) -> datetime:
        """When a keytab written now should be refreshed (the password may change from then on)."""
        return self.rotation.refresh_at

    def password_versions(self) -> list[tuple[int, bytes]]:
        """(kvno, raw UTF-16LE password) pairs to write to a keytab, newest first.

        Normally: current at kvno and previous at kvno-1. Inside the pre-rotation window: the
        future password at kvno+1 and the still-valid one at kvno.
        """
        current_kvno, previous_kvno = self.rotation.kvnos(self.kvno)
        versions = [(current_kvno, self.blob.current_password)]
        if self.blob.previous_password is not None and previous_kvno >= 1:
            versions.append((previous_kvno, self.blob.previous_password))
        return versions

    def authentication_password(self) -> bytes:
        """The password the KDC accepts right now (the still-valid one inside the window)."""
        if self.in_pre_rotation_window and self.blob.previous_password is not None:
            return self.blob.previous_password
        return self.blob.current_password


def _caller_sids(directory: Directory) -> tuple[str, set[str]]:
    who = directory.whoami()  # "u:CORP\\WORKER2$"
    sam = who.split("\\", 1)[-1] if "\\" in who else who.removeprefix("u:")
    entry = directory.search_one(
        directory.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName={escape_filter_value(sam)})", ["objectSid"]
    )
    return sam, token_group_sids(directory, entry[0]) if entry else set()


def retrieve_managed_password(
    directory: Directory, name: str, *, now: datetime | None = None
) -> ManagedPassword:
    """Read the managed password of ``name`` as the directory's bound identity.

    Raises NotFoundError, NotPermittedToRetrieve (naming the principals that may),
    ConfidentialityRequired (from the connection), or NoPasswordReturned.
    """
    try:
        account, entry = find_managed_account(directory, name, (PASSWORD_ATTRIBUTE,))
    except CredoError as exc:
        # Samba fails the whole search when it cannot compute the password for lack of a root key.
        if type(exc) is CredoError and "root key" in exc.message.lower():
            raise NoPasswordReturned(
                f"the DC cannot compute the managed password of {managed_account_sam(name)}: "
                "the domain has no usable KDS root key",
                hint=KDS_HINT,
            ) from exc
        raise
    retrieved_at = now or datetime.now(UTC)
    raw = entry[1].get(PASSWORD_ATTRIBUTE)
    if not raw:
        _explain_missing_password(directory, account)
    blob = ManagedPasswordBlob.unpack(raw[0])
    # Second search: the kvno after the read that may have rolled the keys over.
    again = directory.search_one(account.dn, ldap.SCOPE_BASE, "(objectClass=*)", ["msDS-KeyVersionNumber"])
    if again is not None and again[1].get("msDS-KeyVersionNumber"):
        kvno = int(again[1]["msDS-KeyVersionNumber"][0])
        account = _with_kvno(account, kvno)
    return ManagedPassword(account=account, blob=blob, retrieved_at=retrieved_at)


def _with_kvno(account: ManagedServiceAccount, kvno: int) -> ManagedServiceAccount:
    from dataclasses import replace

    return replace(account, kvno=kvno)


def _explain_missing_password(directory: Directory, account: ManagedServiceAccount) -> NoReturn:
    caller, sids = _caller_sids(directory)
    names = resolve_sid_names(directory, list(account.allowed_sids))
    allowed = [names[sid] for sid in account.allowed_sids]
    if not account.group_managed:
        raise NotPermittedToRetrieve(
            f"{account.sam_account_name} is a standalone MSA: its password is not retrievable over LDAP",
            allowed=allowed,
            hint="use a gMSA, or install the sMSA on its linked computer",
        )
    if not sids & set(account.allowed_sids):
        shown = ", ".join(allowed) if allowed else "nobody"
        raise NotPermittedToRetrieve(
            f"{caller} is not permitted to retrieve the managed password of {account.sam_account_name}; "
            f"allowed: {shown}",
            allowed=allowed,
            hint=f"add {caller} (or a group it is in): credo account set {account.sam_account_name.rstrip('$')} "
            f"--add-allowed {caller} (Set-ADServiceAccount -PrincipalsAllowedToRetrieveManagedPassword), "
            "then retry",
        )
    raise NoPasswordReturned(
        f"the DC returned no password for {account.sam_account_name} although {caller} is allowed to read it: "
        "the domain has no usable KDS root key",
        hint=KDS_HINT,
    )
