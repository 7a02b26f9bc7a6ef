"""``credo kds`` and ``credo account``: KDS root keys and managed service accounts, as an administrator."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from credo.accounts.install import install_account, uninstall_account
from credo.accounts.kds import audit_root_key_reads, create_root_key, list_root_keys
from credo.accounts.service_accounts import (
    AccountChanges,
    NewAccount,
    create_account,
    get_account,
    iter_accounts,
    link_account,
    remove_account,
    update_account,
)
from credo.accounts.validation import DEFAULT_ENCTYPES, enctype_names, parse_account_enctypes
from credo.ad.admin import AdminSession
from credo.cli.common import admin_session_options, admin_settings, host_session_options, session_settings
from credo.cli.output import emit_json, emit_mapping, json_option
from credo.errors import InputError

__all__ = ["account", "kds"]

F = TypeVar("F", bound=Callable[..., Any])


def _warn(message: str) -> None:
    click.echo(f"credo: warning: {message}", err=True)


def _local(value: str | None) -> str:
    """An ISO 8601 UTC time shown in local time for people (docs/architecture.md, conventions)."""
    if not value:
        return "-"
    return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


# --- credo kds -----------------------------------------------------------------------------------


@click.group()
def kds() -> None:
    """KDS root keys, from which DCs derive gMSA passwords (Add-/Get-KdsRootKey).

    \b
    Example:
      eval "$(credo lab env --host admin)"
      credo kds list
      credo kds add --effective-immediately
    """


@kds.command("add")
@click.option(
    "--effective-immediately", is_flag=True, help="Usable at once (start dated back one 10-hour key cycle)."
)
@click.option(
    "--effective-time", help="ISO 8601 time with zone from which the key counts (usable 10 h later)."
)
@admin_session_options
@json_option
def kds_add(effective_immediately: bool, effective_time: str | None, as_json: bool, **params: Any) -> None:
    """Create a KDS root key (Add-KdsRootKey). The key data is never shown.

    Without an option the key becomes usable 10 hours from now, as on Windows, so that it has
    replicated to every DC before one derives a password from it.

    \b
    Example:
      credo kds add --effective-immediately
      credo kds add --effective-time 2026-01-01T00:00:00Z --json
    """
    when = None
    if effective_time is not None:
        try:
            when = datetime.fromisoformat(effective_time.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(
                f"invalid --effective-time {effective_time!r}", hint="use ISO 8601, e.g. 2026-01-01T00:00:00Z"
            ) from None
    settings = admin_settings(params)
    with AdminSession(settings) as session:
        key = create_root_key(
            session.directory, effective_immediately=effective_immediately, effective_time=when
        )
    data = key.as_dict()
    if as_json:
        emit_json(data)
        return
    state = "usable now" if data["usable_now"] else f"usable from {_local(str(data['usable_from']))}"
    click.echo(f"created KDS root key {key.guid}, {state}")


@kds.command("list")
@admin_session_options
@json_option
def kds_list(as_json: bool, **params: Any) -> None:
    """List the KDS root keys (Get-KdsRootKey): GUID, created, usable from, usable now. No key data.

    \b
    Example:
      credo kds list --json
    """
    with AdminSession(admin_settings(params)) as session:
        keys = [key.as_dict() for key in list_root_keys(session.directory)]
    if as_json:
        emit_json(keys)
        return
    if not keys:
        click.echo("no KDS root key: gMSAs cannot get passwords (credo kds add)")
        return
    click.echo(f"{'GUID':36}  {'CREATED':23}  {'USABLE FROM':23}  USABLE NOW")
    for key in keys:
        click.echo(
            f"{key['guid']:36}  {_local(str(key['created'])):23}  {_local(str(key['usable_from'])):23}  "
            f"{'yes' if key['usable_now'] else 'no'}"
        )


@kds.command("audit-reads")
@admin_session_options
@json_option
def kds_audit_reads(as_json: bool, **params: Any) -> None:
    """Make DCs log every read of the root keys' data: a SACL audit ACE on each key.

    Adds (OU;SA;RP;26627c27-08a2-0a40-a1b1-8dce85b42993;;WD) to each key's SACL unless reads are
    audited already: a "Golden gMSA" read of msKds-RootKeyData then leaves event 4662 on the DC
    (with "Audit Directory Service Access" on in its audit policy). Needs a Domain Admin.

    \b
    Example:
      credo kds audit-reads
    """
    with AdminSession(admin_settings(params)) as session:
        results = audit_root_key_reads(session.directory)
    if as_json:
        emit_json([{"guid": key.guid, "added": added} for key, added in results])
        return
    for key, added in results:
        click.echo(f"{key.guid}: {'audit ACE added' if added else 'reads were audited already'}")


# --- credo account -------------------------------------------------------------------------------


@click.group()
def account() -> None:
    """Create and maintain gMSAs and sMSAs (New-/Get-/Set-/Remove-/Install-ADServiceAccount).

    \b
    Example:
      eval "$(credo lab env --host admin)"
      credo account new svcweb --dns-host-name svcweb.corp.example.test --allowed HybridWorkers
      credo account get svcweb --json
    """


def _enctypes_option(default: str | None) -> Callable[[F], F]:
    option: Callable[[F], F] = click.option(
        "--enctypes",
        default=default,
        show_default=default is not None,
        help="Comma-separated: AES128, AES256 (RC4, DES only with --allow-weak-crypto).",
    )
    return option


def _allow_weak(func: F) -> F:
    return click.option(
        "--allow-weak-crypto", is_flag=True, help="Allow RC4/DES in --enctypes (with a warning)."
    )(func)


def _parse_enctypes(value: str, allow_weak: bool) -> int:
    bits, warnings = parse_account_enctypes(value, allow_weak=allow_weak)
    for warning in warnings:
        _warn(warning)
    return bits


def _print_account(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(data)
        return
    shown = dict(data)
    shown["principals_allowed_to_retrieve_password"] = (
        ", ".join(p["name"] for p in data["principals_allowed_to_retrieve_password"]) or "-"
    )
    shown["service_principal_names"] = ", ".join(data["service_principal_names"]) or "-"
    shown["supported_encryption_types"] = ", ".join(data["supported_encryption_types"]) or "-"
    shown["linked_computers"] = ", ".join(data["linked_computers"]) or None
    shown["when_created"] = _local(data["when_created"]) if data.get("when_created") else None
    emit_mapping(shown)


@account.command("new")
@click.argument("name")
@click.option("--dns-host-name", help="The account's DNS host name (required for a gMSA).")
@click.option(
    "--allowed",
    multiple=True,
    help="Principal allowed to retrieve the password: group, computer, DN or SID (repeatable).",
)
@_enctypes_option("AES128,AES256")
@_allow_weak
@click.option(
    "--spn",
    "spns",
    multiple=True,
    help="Service principal name, e.g. HTTP/web.corp.example.test (repeatable).",
)
@click.option(
    "--interval-days", type=int, help="Password change interval in days (default 30; fixed after creation)."
)
@click.option("--description", help="Description.")
@click.option("--path", help="Container DN (default: CN=Managed Service Accounts).")
@click.option("--disabled", is_flag=True, help="Create it disabled.")
@click.option("--standalone", is_flag=True, help="Create a standalone MSA (sMSA) restricted to --computer.")
@click.option("--computer", help="With --standalone: the computer the sMSA is restricted to.")
@admin_session_options
@json_option
def account_new(
    name: str,
    dns_host_name: str | None,
    allowed: tuple[str, ...],
    enctypes: str,
    allow_weak_crypto: bool,
    spns: tuple[str, ...],
    interval_days: int | None,
    description: str | None,
    path: str | None,
    disabled: bool,
    standalone: bool,
    computer: str | None,
    as_json: bool,
    **params: Any,
) -> None:
    """Create a gMSA NAME (New-ADServiceAccount), enabled unless --disabled.

    Everything is checked before the account is written: the name (at most 15 characters), the
    DNS host name, the interval (1 day or more), the encryption types, the SPNs (not already in
    use) and every principal (which must exist).

    \b
    Example:
      credo account new svcweb --dns-host-name svcweb.corp.example.test \\
          --allowed HybridWorkers --allowed 'worker2$' --spn HTTP/web.corp.example.test
      credo account new svclocal --standalone --computer worker1
    """
    spec = NewAccount(
        name=name,
        dns_host_name=dns_host_name,
        allowed=allowed,
        enctypes=_parse_enctypes(enctypes, allow_weak_crypto) if enctypes is not None else DEFAULT_ENCTYPES,
        spns=spns,
        interval_days=interval_days,
        description=description,
        path=path,
        disabled=disabled,
        standalone=standalone,
        computer=computer,
    )
    with AdminSession(admin_settings(params)) as session:
        created = create_account(session.directory, spec)
        data = get_account(session.directory, created.sam_account_name)
    if as_json:
        emit_json(data)
        return
    click.echo(
        f"created {data['type']} {data['sam_account_name']} ({data['dn']}), {'enabled' if data['enabled'] else 'disabled'}"
    )


@account.command("get")
@click.argument("name")
@admin_session_options
@json_option
def account_get(name: str, as_json: bool, **params: Any) -> None:
    """Show NAME (Get-ADServiceAccount): who may retrieve its password, by name and as SDDL.

    \b
    Example:
      credo account get svcauto --json
    """
    with AdminSession(admin_settings(params)) as session:
        data = get_account(session.directory, name)
    _print_account(data, as_json)


@account.command("list")
@click.option(
    "--filter", "ldap_filter", help="An LDAP filter to narrow the list, e.g. '(dNSHostName=*web*)'."
)
@admin_session_options
@json_option
def account_list(ldap_filter: str | None, as_json: bool, **params: Any) -> None:
    """List gMSAs and sMSAs.

    \b
    Example:
      credo account list --filter '(servicePrincipalName=HTTP/*)' --json
    """
    with AdminSession(admin_settings(params)) as session:
        accounts = sorted(
            iter_accounts(session.directory, ldap_filter), key=lambda a: a.sam_account_name.lower()
        )
    rows = [
        {
            "sam_account_name": a.sam_account_name,
            "type": "gMSA" if a.group_managed else "sMSA",
            "enabled": a.enabled,
            "dns_host_name": a.dns_host_name,
            "dn": a.dn,
            "supported_encryption_types": enctype_names(a.supported_enctypes),
        }
        for a in accounts
    ]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(
            f"{row['sam_account_name']:17} {row['type']:5} {'enabled ' if row['enabled'] else 'disabled'} "
            f"{row['dns_host_name'] or '-'}"
        )


@account.command("set")
@click.argument("name")
@click.option("--allowed", multiple=True, help="Replace the allowed principals (repeatable).")
@click.option("--add-allowed", multiple=True, help="Add an allowed principal (repeatable).")
@click.option("--remove-allowed", multiple=True, help="Remove an allowed principal (repeatable).")
@click.option("--spn", "spns", multiple=True, help="Replace the SPNs (repeatable).")
@click.option("--add-spn", multiple=True, help="Add an SPN (repeatable).")
@click.option("--remove-spn", multiple=True, help="Remove an SPN (repeatable).")
@_enctypes_option(None)
@_allow_weak
@click.option("--dns-host-name", help="New DNS host name.")
@click.option("--description", help="New description ('' clears it).")
@click.option("--enable/--disable", "enabled", default=None, help="Enable or disable the account.")
@click.option(
    "--audit-reads",
    is_flag=True,
    help="Make DCs log every read of the password (a SACL audit ACE; Domain Admin).",
)
@click.option("--interval-days", type=int, hidden=True)
@admin_session_options
@json_option
def account_set(
    name: str,
    allowed: tuple[str, ...],
    add_allowed: tuple[str, ...],
    remove_allowed: tuple[str, ...],
    spns: tuple[str, ...],
    add_spn: tuple[str, ...],
    remove_spn: tuple[str, ...],
    enctypes: str | None,
    allow_weak_crypto: bool,
    dns_host_name: str | None,
    description: str | None,
    enabled: bool | None,
    audit_reads: bool,
    interval_days: int | None,
    as_json: bool,
    **params: Any,
) -> None:
    """Change NAME (Set-ADServiceAccount) in one write, after every check.

    The password interval is fixed at creation, as on Windows.

    \b
    Example:
      credo account set svcweb --add-allowed 'worker2$' --add-spn HTTP/web2.corp.example.test
      credo account set svcweb --disable
      credo account set svcweb --audit-reads
    """
    if interval_days is not None:
        raise InputError(
            "the password interval cannot be changed after creation",
            hint="create a new account with --interval-days (ManagedPasswordIntervalInDays is immutable)",
        )
    changes = AccountChanges(
        allowed=allowed or None,
        add_allowed=add_allowed,
        remove_allowed=remove_allowed,
        spns=spns or None,
        add_spns=add_spn,
        remove_spns=remove_spn,
        enctypes=_parse_enctypes(enctypes, allow_weak_crypto) if enctypes is not None else None,
        dns_host_name=dns_host_name,
        description=description,
        enabled=enabled,
        audit_reads=audit_reads,
    )
    with AdminSession(admin_settings(params)) as session:
        updated = update_account(session.directory, name, changes)
        data = get_account(session.directory, updated.sam_account_name)
    if as_json:
        emit_json(data)
        return
    click.echo(f"updated {data['sam_account_name']}")


@account.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@admin_session_options
@json_option
def account_remove(name: str, yes: bool, as_json: bool, **params: Any) -> None:
    """Delete NAME (Remove-ADServiceAccount).

    \b
    Example:
      credo account remove svcweb --yes
    """
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"refusing to remove {name} without confirmation", hint="add --yes")
        click.confirm(f"Remove the managed service account {name}?", abort=True)
    with AdminSession(admin_settings(params)) as session:
        removed = remove_account(session.directory, name)
    if as_json:
        emit_json({"removed": removed.sam_account_name, "dn": removed.dn})
        return
    click.echo(f"removed {removed.sam_account_name} ({removed.dn})")


def _link(name: str, computer: str, as_json: bool, params: dict[str, Any], link: bool) -> None:
    with AdminSession(admin_settings(params)) as session:
        updated, host = link_account(session.directory, name, computer, link=link)
    data = {
        "account": updated.sam_account_name,
        "computer": host.sam_account_name,
        "linked_computers": list(updated.linked_computers),
    }
    if as_json:
        emit_json(data)
        return
    click.echo(
        f"{'linked' if link else 'unlinked'} {updated.sam_account_name} {'to' if link else 'from'} {host.sam_account_name}"
    )


@account.command("link")
@click.argument("name")
@click.option("--computer", required=True, help="Computer account (name, name$, DN or SID).")
@admin_session_options
@json_option
def account_link(name: str, computer: str, as_json: bool, **params: Any) -> None:
    """Link NAME to a computer (Add-ADComputerServiceAccount: msDS-HostServiceAccount).

    \b
    Example:
      credo account link svclocal --computer worker1
    """
    _link(name, computer, as_json, params, True)


@account.command("unlink")
@click.argument("name")
@click.option("--computer", required=True, help="Computer account (name, name$, DN or SID).")
@admin_session_options
@json_option
def account_unlink(name: str, computer: str, as_json: bool, **params: Any) -> None:
    """Unlink NAME from a computer (Remove-ADComputerServiceAccount).

    \b
    Example:
      credo account unlink svclocal --computer worker1
    """
    _link(name, computer, as_json, params, False)


@account.command("install")
@click.argument("name")
@host_session_options
@json_option
def account_install(name: str, as_json: bool, **params: Any) -> None:
    """Check NAME as this host, then record it in credo's local configuration (Install-ADServiceAccount).

    A gMSA must pass `credo gmsa test`; an sMSA is linked to this computer if it is not yet.
    The record (CREDO_ACCOUNTS_FILE, default /etc/credo/accounts.json) holds no secret.

    \b
    Example:
      credo account install svcauto
    """
    record = install_account(session_settings(params), name)
    if as_json:
        emit_json(record)
        return
    click.echo(f"installed {record['sam_account_name']} for {record['host']} in {record['file']}")


@account.command("uninstall")
@click.argument("name")
@json_option
def account_uninstall(name: str, as_json: bool) -> None:
    """Remove NAME from credo's local configuration (Uninstall-ADServiceAccount).

    \b
    Example:
      credo account uninstall svcauto
    """
    record = uninstall_account(name)
    if as_json:
        emit_json(record)
        return
    click.echo(f"uninstalled {record['sam_account_name']} from {record['file']}")
