"""Install-/Uninstall-ADServiceAccount on this Linux host: check, then record in credo's local configuration.

``install`` proves the account usable by this host before recording it: for a gMSA, the check of
``credo gmsa test`` (retrieve the managed password as this computer and get a TGT with it); for an
sMSA, that it is restricted to this computer (msDS-HostServiceAccount), linking it as this
computer when it is not yet linked (Install-ADServiceAccount does the same for an sMSA).

The record is ``/etc/credo/accounts.json`` (``CREDO_ACCOUNTS_FILE`` overrides it): which accounts
this host uses, never a secret. It is written atomically (temp file, fsync, rename), mode 0644.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ldap

from credo.ad.names import managed_account_sam
from credo.errors import CredoError, EnvironmentProblem, NotFoundError, NotPermittedError
from credo.gmsa.account import find_managed_account
from credo.gmsa.operations import check_account
from credo.gmsa.session import HostSession, SessionSettings

__all__ = [
    "DEFAULT_ACCOUNTS_FILE",
    "accounts_file",
    "install_account",
    "installed_accounts",
    "uninstall_account",
]

DEFAULT_ACCOUNTS_FILE = Path("/etc/credo/accounts.json")


def accounts_file() -> Path:
    return Path(os.environ.get("CREDO_ACCOUNTS_FILE") or DEFAULT_ACCOUNTS_FILE)


def installed_accounts(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or accounts_file()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise EnvironmentProblem(f"cannot read {path}: {exc}", hint="fix or remove the file") from exc
    accounts = data.get("accounts", []) if isinstance(data, dict) else []
    return [a for a in accounts if isinstance(a, dict)]


def _write(path: Path, accounts: list[dict[str, Any]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".accounts.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"accounts": accounts}, handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot write {path}: {exc}", hint="run as root, or set CREDO_ACCOUNTS_FILE"
        ) from exc


def _link_smsa_to_host(session: HostSession, name: str) -> dict[str, Any]:
    account, _ = find_managed_account(session.directory, name)
    host = session.directory.search_one(
        session.directory.base_dn,
        ldap.SCOPE_SUBTREE,
        f"(sAMAccountName={ldap.filter.escape_filter_chars(session.host.sam_account_name)})",
        ["objectClass"],
    )
    if host is None:
        raise NotFoundError(
            f"this host's computer account {session.host.sam_account_name} is not in the directory"
        )
    if not any(dn.lower() == host[0].lower() for dn in account.linked_computers):
        if account.linked_computers:
            raise NotPermittedError(
                f"{account.sam_account_name} is restricted to another computer ({account.linked_computers[0]})",
                hint="unlink it there first (`credo account unlink`)",
            )
        try:
            session.directory.modify(
                host[0], [(ldap.MOD_ADD, "msDS-HostServiceAccount", [account.dn.encode()])]
            )
        except NotPermittedError as exc:
            raise NotPermittedError(
                f"this computer may not link {account.sam_account_name} to itself ({exc.message})",
                hint=f"as an administrator: credo account link {account.sam_account_name} --computer "
                f"{session.host.sam_account_name}",
            ) from exc
    return {
        "sam_account_name": account.sam_account_name,
        "dn": account.dn,
        "sid": account.sid,
        "type": "sMSA",
    }


def install_account(settings: SessionSettings, name: str, path: Path | None = None) -> dict[str, Any]:
    """Check ``name`` as this host, then record it. Raises with the check's reason when it fails."""
    sam = managed_account_sam(name)
    path = path or accounts_file()
    installed_accounts(path)  # a broken file is reported before any directory work
    with HostSession(settings) as session:
        account, _ = find_managed_account(session.directory, sam)
        host = session.host.principal
        if account.group_managed:
            record = {
                "sam_account_name": account.sam_account_name,
                "dn": account.dn,
                "sid": account.sid,
                "type": "gMSA",
            }
        else:
            record = _link_smsa_to_host(session, sam)
    if account.group_managed:
        result = check_account(settings, sam)
        if not result.ok:
            error = CredoError(f"{sam} cannot be used by this host: {result.reason}", hint=result.hint)
            if result.error in ("NotPermittedToRetrieve", "AccountDisabled", "NotPermittedError"):
                error = NotPermittedError(error.message, hint=result.hint)
            raise error
    record |= {"host": host, "installed_at": datetime.now(UTC).isoformat()}
    accounts = [
        a for a in installed_accounts(path) if str(a.get("sam_account_name", "")).lower() != sam.lower()
    ]
    accounts.append(record)
    _write(path, accounts)
    return record | {"file": str(path)}


def uninstall_account(name: str, path: Path | None = None) -> dict[str, Any]:
    """Forget ``name`` on this host (Uninstall-ADServiceAccount); the directory is not touched."""
    sam = managed_account_sam(name)
    path = path or accounts_file()
    accounts = installed_accounts(path)
    kept = [a for a in accounts if str(a.get("sam_account_name", "")).lower() != sam.lower()]
    if len(kept) == len(accounts):
        raise NotFoundError(
            f"{sam} is not installed on this host ({path})",
            hint="`credo account install NAME` records an account; nothing to undo here",
        )
    _write(path, kept)
    removed = next(a for a in accounts if a not in kept)
    return removed | {"file": str(path)}
