"""``credo gmsa``: use a group managed service account from this host, with no stored secret."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from credo.cli.common import host_session_options, session_settings
from credo.cli.output import emit_json, emit_mapping, json_option
from credo.gmsa.credentials import parse_enctypes
from credo.gmsa.operations import check_account, describe_account, write_account_keytab
from credo.gmsa.session import HostSession

__all__ = ["gmsa"]


@click.group()
def gmsa() -> None:
    """Use a gMSA from this Linux host, as the computer account allowed to retrieve it.

    \b
    Example:
      eval "$(credo lab env --host worker1)"
      credo gmsa test svcauto
      credo gmsa keytab svcauto --out /etc/svcauto.keytab
    """


@gmsa.command("test")
@click.argument("name")
@host_session_options
@json_option
def test_command(name: str, as_json: bool, **params: Any) -> None:
    """Say whether this host can use NAME (Test-ADServiceAccount).

    Prints True (exit 0) when this host can retrieve the managed password of NAME and obtain a
    Kerberos TGT as NAME$ with it; otherwise False with the precise reason (exit 1).

    \b
    Example:
      credo gmsa test svcauto
    """
    result = check_account(session_settings(params), name)
    _print_test(asdict(result), as_json)
    if not result.ok:
        raise SystemExit(1)


def _print_test(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    click.echo("True" if result["ok"] else "False")
    if not result["ok"]:
        click.echo(f"credo: {result['reason']}", err=True)
        if result.get("hint"):
            click.echo(f"credo: hint: {result['hint']}", err=True)


@gmsa.command()
@click.argument("name")
@host_session_options
@json_option
def show(name: str, as_json: bool, **params: Any) -> None:
    """Describe NAME: DN, SID, who may retrieve its password, enctypes, kvno, rotation. No secret.

    \b
    Example:
      credo gmsa show svcauto --json
    """
    with HostSession(session_settings(params)) as session:
        data = describe_account(session, name)
    if as_json:
        emit_json(data)
        return
    shown = dict(data)
    shown["principals_allowed_to_retrieve_password"] = ", ".join(
        p["name"] for p in data["principals_allowed_to_retrieve_password"]
    )
    shown["service_principal_names"] = ", ".join(data["service_principal_names"]) or "-"
    shown["supported_encryption_types"] = ", ".join(data["supported_encryption_types"]) or "-"
    pid = data["password_id"]
    shown["password_id"] = (
        f"root key {pid['root_key_id']}, L0={pid['l0']} L1={pid['l1']} L2={pid['l2']}" if pid else "-"
    )
    emit_mapping(shown)


@gmsa.command()
@click.argument("name")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Keytab file to write."
)
@click.option(
    "--spn",
    "spns",
    multiple=True,
    help="Also write entries for this SPN (repeatable), e.g. HTTP/web.corp.example.com.",
)
@click.option("--owner", help="USER[:GROUP] to own the keytab (root only for another user).")
@click.option(
    "--enctypes",
    default="aes256,aes128",
    show_default=True,
    help="Comma-separated: aes256, aes128, rc4 (rc4 only if the account allows it).",
)
@host_session_options
@json_option
def keytab(
    name: str,
    out: Path,
    spns: tuple[str, ...],
    owner: str | None,
    enctypes: str,
    as_json: bool,
    **params: Any,
) -> None:
    """Write NAME's keys to a keytab, atomically (0600): current, previous, and future when due.

    Entries of other principals already in the file are kept. Run it again when `refresh_after`
    has passed (a timer or cron job), or use it before starting a service.

    \b
    Example:
      credo gmsa keytab svcauto --out /etc/krb5.svcauto.keytab --spn HTTP/app.corp.example.test
    """
    wanted = parse_enctypes(enctypes)
    with HostSession(session_settings(params)) as session:
        report = write_account_keytab(session, name, out, spns=spns, owner=owner, enctypes=wanted)
    if as_json:
        emit_json(asdict(report))
        return
    click.echo(
        f"wrote {report.path}: {', '.join(report.principals)} at kvno {', '.join(map(str, report.kvnos))}; "
        f"refresh after {report.refresh_after}"
    )
