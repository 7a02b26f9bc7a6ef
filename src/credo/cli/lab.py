"""``credo lab``: a real lab Active Directory domain on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import click

from credo.cli.output import emit_json, emit_mapping, json_option
from credo.errors import InputError
from credo.lab import DEFAULT_REALM, IDENTITIES, USERS, Lab, default_lab_dir

__all__ = ["lab"]

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="CREDO_LAB_DIR",
    help=f"Lab state directory (default: {default_lab_dir()}; env CREDO_LAB_DIR).",
)


@click.group()
def lab() -> None:
    """A lab Active Directory domain (Samba AD DC) on loopback, for trying credo and for tests.

    \b
    Example:
      credo lab up
      eval "$(credo lab env --host worker1)"
      ldapwhoami            # u:CORP\\WORKER1$
    """


@lab.command()
@dir_option
@click.option("--realm", default=None, help=f"Kerberos realm / AD DNS domain (default {DEFAULT_REALM}).")
@click.option("--domain", "netbios", default=None, help="NetBIOS domain name (default: first realm label).")
@click.option(
    "--address",
    default=None,
    help="Loopback address to bind (default 127.0.0.1); another one (127.0.0.2) runs a second lab.",
)
@click.option(
    "--clock-offset",
    default=None,
    help="Start the DC with its clock shifted by libfaketime (+14h, +2d) to see a gMSA rotate; "
    "run Kerberos clients under `faketime -f` with the same offset.",
)
@click.option(
    "--dcs",
    type=click.IntRange(1, 2),
    default=None,
    help="Domain controllers to run: 2 joins a second DC (dc2, on the address with 2 added to its "
    "third byte: 127.0.2.1) replicating with the first. A lab with two keeps both (default).",
)
@json_option
def up(
    directory: Path | None,
    realm: str | None,
    netbios: str | None,
    address: str | None,
    clock_offset: str | None,
    dcs: int | None,
    as_json: bool,
) -> None:
    """Provision (first time) and start the lab DC; return at once if it runs.

    \b
    Seeds OU=Staff (jdoe, asmith, bwong), computers WORKER1$ and WORKER2$ with host keytabs
    in DIR/hosts/, group HybridWorkers = {WORKER1$}, the gMSA svcauto$ readable by
    HybridWorkers (AES only, may write userAccountControl in OU=Staff) and a KDS root key.
    For restricted endpoints: Helpdesk > Tier1 > jdoe (asmith in neither), the SPN
    host/worker1.<domain> with DIR/hosts/worker1.sshd.keytab, user keytabs in DIR/users/.
    Writes DIR/krb5.conf and DIR/ca.pem, and an /etc/hosts line if the DC's name needs one.

    \b
    Example:
      credo lab up --dir /tmp/lab --realm CORP.EXAMPLE.TEST
      credo lab up --dcs 2      # and a second DC, dc2.corp.example.test on 127.0.2.1
    """
    started = time.monotonic()
    status = Lab(directory).up(
        realm=realm, netbios=netbios, address=address, clock_offset=clock_offset, dcs=dcs
    )
    if as_json:
        emit_json(status.to_dict() | {"seconds": round(time.monotonic() - started, 2)})
        return
    click.echo(f"lab {status.realm} is running at {status.ldap_url} (pid {status.pid}, dir {status.dir})")
    for dc in status.dcs[1:]:
        click.echo(f"DC {dc.number} is {dc.state} at {dc.ldap_url} (pid {dc.pid})")


@lab.command()
@dir_option
@json_option
def status(directory: Path | None, as_json: bool) -> None:
    """Show whether the lab runs, and where its files are.

    \b
    Example:
      credo lab status --json
    """
    result = Lab(directory).status()
    if as_json:
        emit_json(result.to_dict())
        return
    data = result.to_dict()
    dcs = data.pop("dcs")
    emit_mapping(data)
    if len(dcs) > 1:
        for dc in dcs:
            click.echo(f"dc{dc['number']}  {dc['state']}  {dc['address']}  {dc['ldap_url']}  pid {dc['pid']}")


@lab.command("stop-dc")
@dir_option
@click.argument("number", type=click.IntRange(1, 2))
def stop_dc(directory: Path | None, number: int) -> None:
    """Stop one DC of a two-DC lab and keep the other running (to try failover).

    \b
    Example:
      credo lab stop-dc 2
      credo lab start-dc 2
    """
    stopped = Lab(directory).stop_dc(number)
    click.echo(f"DC {number} stopped" if stopped else f"DC {number} was not running")


@lab.command("start-dc")
@dir_option
@click.argument("number", type=click.IntRange(1, 2))
def start_dc(directory: Path | None, number: int) -> None:
    """Start one DC of the lab again after `credo lab stop-dc`.

    \b
    Example:
      credo lab start-dc 2
    """
    status = Lab(directory).start_dc(number)
    dc = status.dcs[number - 1]
    click.echo(f"DC {number} is running at {dc.ldap_url} (pid {dc.pid})")


@lab.command()
@dir_option
def down(directory: Path | None) -> None:
    """Stop the lab DC and keep its state (`credo lab up` starts it again).

    \b
    Example:
      credo lab down
    """
    stopped = Lab(directory).down()
    click.echo("lab stopped" if stopped else "lab was not running")


@lab.command()
@dir_option
def destroy(directory: Path | None) -> None:
    """Stop the lab DC, delete its directory, and undo what `up` changed (the /etc/hosts line).

    \b
    Example:
      credo lab destroy --dir /tmp/lab
    """
    removed = Lab(directory).destroy()
    click.echo("lab destroyed" if removed else "no lab to destroy")


@lab.command()
@dir_option
@click.option(
    "--host",
    "identity",
    type=click.Choice(IDENTITIES),
    default=None,
    help="Act as this identity: a lab computer (its keytab) or the domain administrator (a ccache).",
)
@click.option(
    "--user",
    type=click.Choice(USERS),
    default=None,
    help="Act as this lab user (restricted endpoints' tests): a ccache made from its keytab.",
)
@click.option(
    "--dc",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="Point CREDO_LDAP_URL and LDAPURI at this DC of the lab (2: the one of `up --dcs 2`).",
)
@json_option
def env(directory: Path | None, identity: str | None, user: str | None, dc: int, as_json: bool) -> None:
    """Print shell `export` lines that make credo, MIT and OpenLDAP tools use the lab.

    \b
    Example:
      eval "$(credo lab env --host worker1)"
      credo gmsa test svcauto
      eval "$(credo lab env --host admin)"; klist
      eval "$(credo lab env --host worker1 --dc 2)"; credo gmsa test svcauto
      eval "$(credo lab env --user jdoe)"; ssh -p 2222 jdoe@worker1.corp.example.test
    """
    if identity is not None and user is not None:
        raise InputError("--host and --user name two identities", hint="give one of them")
    result = Lab(directory).env(identity or user, dc=dc)
    if as_json:
        emit_json({"identity": result.identity, "set": result.set, "unset": list(result.unset)})
    else:
        click.echo(result.shell(), nl=False)
