"""``credo server`` and ``credo worker``: the two long-running processes of runbook automation."""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path
from typing import Any

import click

from credo.automation.leases import DEFAULT_DRAIN_GRACE, DEFAULT_LEASE_SECONDS
from credo.cli.common import (
    WORKER_FLAGS,
    configure_events,
    events_options,
    session_settings,
    worker_session_options,
)
from credo.config import load_config
from credo.defaults import DEFAULT_LISTEN, LOST_AFTER_SECONDS
from credo.errors import EnvironmentProblem, InputError
from credo.server.paths import default_server_dir

__all__ = ["server", "worker"]


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="CREDO_SERVER_DIR",
              default=None, help=f"State directory (default {default_server_dir()}): SQLite file, admin token.")  # fmt: skip
@click.option(
    "--database",
    envvar="CREDO_DATABASE_URL",
    help="postgresql://user@host:port/db (default: SQLite in the data dir).",
)
@click.option("--listen", help=f"HOST:PORT to listen on (default {DEFAULT_LISTEN}).")
@click.option(
    "--tls-cert", type=click.Path(dir_okay=False, exists=True), help="Serve HTTPS with this certificate..."
)
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="...and this key.")
@click.option("--keytab", type=click.Path(dir_okay=False, path_type=Path), envvar="CREDO_SERVER_KEYTAB",
              help="Keytab with the server's HTTP/ keys, to accept workers' Kerberos (Negotiate).")  # fmt: skip
@click.option("--lease-seconds", type=click.FloatRange(min=1), default=DEFAULT_LEASE_SECONDS, show_default=True,
              help="A job's lease: a worker silent this long loses it and the job restarts elsewhere.")  # fmt: skip
@click.option("--lost-after", type=click.FloatRange(min=1), default=LOST_AFTER_SECONDS, show_default=True,
              help="Seconds without heartbeat before a worker is shown as lost.")  # fmt: skip
@click.option("--oidc-issuer", envvar="CREDO_OIDC_ISSUER",
              help="Be an OIDC issuer with this https URL, exactly as clouds will compare it (docs/oidc.md).")  # fmt: skip
@click.option("--oidc-key-file", type=click.Path(dir_okay=False, path_type=Path), envvar="CREDO_OIDC_KEY_FILE",
              help="The issuer's key store (default DATA_DIR/oidc-keys.json, created 0600).")  # fmt: skip
@events_options
def server(
    data_dir: Path | None,
    database: str | None,
    listen: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    keytab: Path | None,
    lease_seconds: float,
    lost_after: float,
    oidc_issuer: str | None,
    oidc_key_file: Path | None,
    events_file: Path | None,
    events_syslog: str | None,
) -> None:
    """Serve the runbook automation API (FastAPI; OpenAPI at /openapi.json).

    Runbooks, worker groups and jobs live in SQLite in the data dir, or in PostgreSQL with
    --database; migrations are applied at start. The admin token is written to
    DATA_DIR/admin.token (0600) on first start; workers authenticate with Kerberos.
    With --oidc-issuer, jobs of groups with token audiences get cloud tokens (docs/oidc.md).

    \b
    Example:
      credo gmsa keytab svccredo --spn HTTP/credo.corp.example.test --out /etc/credo/http.keytab
      credo server --keytab /etc/credo/http.keytab --listen 127.0.0.1:8400
    """
    import uvicorn

    from credo.server.app import ServerConfig, create_app
    from credo.server.database import sqlite_url

    # Flags and CREDO_* variables first, then credo.toml's [server_process], then the defaults.
    settings = load_config().server_process
    data_dir = data_dir or settings.data_dir
    database = database or settings.database
    listen = listen or settings.listen or DEFAULT_LISTEN
    keytab = keytab or settings.keytab
    oidc_issuer = oidc_issuer or settings.oidc_issuer
    oidc_key_file = oidc_key_file or settings.oidc_key_file
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"invalid --listen {listen!r}", hint=f"write HOST:PORT, e.g. {DEFAULT_LISTEN}")
    if bool(tls_cert) != bool(tls_key):
        raise InputError("--tls-cert and --tls-key go together")
    if oidc_issuer is not None:
        from credo.oidc.documents import issuer_warning, validate_issuer

        validate_issuer(oidc_issuer)
        warning = issuer_warning(oidc_issuer)
        if warning:
            click.echo(f"credo: warning: {warning}", err=True)
    configure_events({"events_file": events_file, "events_syslog": events_syslog})
    directory = data_dir or default_server_dir()
    config = ServerConfig(
        data_dir=directory,
        database_url=database or sqlite_url(directory),
        keytab=keytab,
        lease_seconds=lease_seconds,
        lost_after_seconds=lost_after,
        oidc_issuer=oidc_issuer,
        oidc_key_file=oidc_key_file,
    )
    # Bound before anything else starts, and handed to uvicorn: a port in use is one error line.
    sock = _listen_socket(host.strip("[]"), int(port), listen)
    app = create_app(config)
    click.echo(f"credo server on {'https' if tls_cert else 'http'}://{listen} (data {directory})", err=True)
    uvicorn.Server(
        uvicorn.Config(
            app, ssl_certfile=tls_cert, ssl_keyfile=tls_key, log_level="warning", access_log=False,
            # Long-polling workers reconnect on their own: do not wait for their claims to time out.
            timeout_graceful_shutdown=2,
        )
    ).run(sockets=[sock])  # fmt: skip


def _listen_socket(host: str, port: int, listen: str) -> socket.socket:
    """A socket bound to HOST:PORT, as uvicorn binds it (SO_REUSEADDR), or an error that says why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise InputError(
            f"invalid --listen {listen!r}: {exc.strerror}", hint=f"write HOST:PORT, e.g. {DEFAULT_LISTEN}"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hints = {
            errno.EADDRINUSE: f"another process listens there (see `ss -ltnp 'sport = :{port}'`), or choose another --listen",
            errno.EACCES: "ports below 1024 need root (or CAP_NET_BIND_SERVICE): choose another --listen",
            errno.EADDRNOTAVAIL: f"{host} is no address of this machine: choose another --listen",
        }
        raise EnvironmentProblem(
            f"cannot listen on {listen}: {exc.strerror}",
            hint=hints.get(exc.errno or 0, "choose another --listen"),
        ) from None
    sock.set_inheritable(True)
    return sock


@click.group(invoke_without_command=True)
@click.option("--server", "server_urls", envvar="CREDO_SERVER_URL", multiple=True,
              help="The server's URL, by the name of its HTTP/ principal: http://credo.corp.example.test:8400."
                   " Repeat it (or separate by commas) for replicas: a failure moves to the next.")  # fmt: skip
@click.option("--group", help="The worker group to serve.")
@click.option("--slots", type=click.IntRange(1, 64), default=4, show_default=True, help="Jobs run at once.")
@click.option(
    "--server-ca", type=click.Path(dir_okay=False, exists=True), help="CA of the server's HTTPS certificate."
)
@click.option("--drain-grace", type=click.FloatRange(min=0), default=DEFAULT_DRAIN_GRACE, show_default=True,
              help="On SIGTERM, seconds running jobs get to finish before they are handed back.")  # fmt: skip
@worker_session_options
@click.pass_context
def worker(
    ctx: click.Context,
    /,
    server_urls: tuple[str, ...],
    group: str | None,
    slots: int,
    server_ca: str | None,
    drain_grace: float,
    **params: Any,
) -> None:
    """Pull jobs of GROUP from the server and run each as the group's gMSA.

    Outbound connections only. Authenticates as this host's computer account (Kerberos); gets
    the group's gMSA ticket through the host's right to retrieve its password: no stored secret.
    SIGTERM drains: no new jobs; running jobs get --drain-grace seconds to finish, then are handed
    back to run elsewhere; an idle worker exits at once. A second SIGTERM stops the running jobs.

    \b
    Example:
      eval "$(credo lab env --host worker1)"
      credo worker --server http://credo.corp.example.test:8400 --group tier1
      credo worker --server http://credo1.corp.example.test:8400,http://credo2.corp.example.test:8400 --group tier1
      credo worker list          # the registered workers (admin)
    """
    if ctx.invoked_subcommand is not None:
        return
    urls = [u for value in server_urls for u in value.replace(",", " ").split()]
    if not urls or not group:
        raise InputError(
            "credo worker needs --server and --group",
            hint="e.g. --server http://credo.corp.example.test:8400 --group tier1",
        )
    from credo.krb.host import HostIdentity
    from credo.worker.client import ServerClient
    from credo.worker.loop import Worker

    logging.getLogger("credo").setLevel(min(logging.getLogger().level, logging.INFO))
    settings = session_settings(params, WORKER_FLAGS)
    host = HostIdentity.resolve(settings.host_keytab, settings.host_principal)
    client = ServerClient(urls, host, group, slots, ca_file=server_ca)
    loop = Worker(client, settings, slots, drain_grace)
    loop.install_signal_handlers()
    try:
        loop.run()
    finally:
        client.close()


def _attach_list() -> None:
    from credo.cli.automation import workers_list

    worker.add_command(workers_list, "list")


_attach_list()
