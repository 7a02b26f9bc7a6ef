"""Options shared by the commands that act against the directory: as this host, or as an administrator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from credo.ad.admin import AdminSettings
from credo.ad.connection import DEFAULT_TIMEOUT
from credo.ad.discovery import DEFAULT_FLAGS, DirectoryFlags
from credo.gmsa.session import SessionSettings

__all__ = [
    "WORKER_FLAGS",
    "admin_session_options",
    "admin_settings",
    "host_session_options",
    "session_settings",
    "worker_session_options",
]

F = TypeVar("F", bound=Callable[..., Any])
# `credo worker --server` is the credo server: the worker's DC option is --dc.
WORKER_FLAGS = DirectoryFlags(server="--dc")


def host_session_options(func: F) -> F:
    """--host-keytab, --host-principal, --server, --ca-file, --starttls, --ldap-timeout."""
    return _host_session_options("--server")(func)


def worker_session_options(func: F) -> F:
    """The same, with the DC as --dc: `credo worker --server` names the credo server."""
    return _host_session_options(WORKER_FLAGS.server)(func)


def admin_session_options(func: F) -> F:
    """--keytab, --principal (default: your ccache), --server, --ca-file, --starttls, --ldap-timeout."""
    identity = [
        click.option(
            "--keytab",
            "admin_keytab",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="CREDO_ADMIN_KEYTAB",
            help="Act with this keytab instead of your ccache (env CREDO_ADMIN_KEYTAB).",
        ),
        click.option(
            "--principal",
            "admin_principal",
            envvar="CREDO_ADMIN_PRINCIPAL",
            help="NAME@REALM in --keytab (env CREDO_ADMIN_PRINCIPAL).",
        ),
    ]
    return _identity_options(identity, "--server")(func)


def _directory_params(params: dict[str, Any]) -> dict[str, Any]:
    """The options every directory command shares (--server, --ca-file, --starttls, --ldap-timeout)."""
    return {
        "server": params.pop("server"),
        "ca_file": params.pop("ca_file"),
        "starttls": params.pop("starttls"),
        "timeout": params.pop("ldap_timeout"),
    }


def admin_settings(params: dict[str, Any]) -> AdminSettings:
    return AdminSettings(
        keytab=params.pop("admin_keytab"),
        principal=params.pop("admin_principal"),
        **_directory_params(params),
    )


def _host_session_options(dc_flag: str) -> Callable[[F], F]:
    identity = [
        click.option(
            "--host-keytab",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="CREDO_HOST_KEYTAB",
            help="The computer account's keytab (default /etc/krb5.keytab; env CREDO_HOST_KEYTAB).",
        ),
        click.option(
            "--host-principal",
            envvar="CREDO_HOST_PRINCIPAL",
            help="NAME$@REALM in that keytab (default: its first computer principal; env CREDO_HOST_PRINCIPAL).",
        ),
    ]
    return _identity_options(identity, dc_flag)


def _identity_options(identity: list[Callable[[Any], Any]], dc_flag: str) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        options: list[Callable[[Any], Any]] = [
            *identity,
            click.option(
                dc_flag,
                "server",
                envvar="CREDO_LDAP_URL",
                help="DC URL(s), comma separated, tried in order (default: DNS SRV; env CREDO_LDAP_URL).",
            ),
            click.option(
                "--ca-file",
                envvar="CREDO_CA_FILE",
                type=click.Path(dir_okay=False),
                help="CA certificate for ldaps:// and --starttls (env CREDO_CA_FILE).",
            ),
            click.option(
                "--starttls", is_flag=True, help="Use StartTLS instead of GSSAPI sealing on ldap://."
            ),
            click.option(
                "--ldap-timeout",
                "ldap_timeout",
                envvar="CREDO_LDAP_TIMEOUT",
                type=click.FloatRange(min=0.1),
                default=DEFAULT_TIMEOUT,
                show_default=True,
                help="Seconds to wait for a DC before trying the next one.",
            ),
        ]
        decorated: Any = func
        for option in reversed(options):
            decorated = option(decorated)
        return decorated  # type: ignore[no-any-return]

    return decorate


def session_settings(params: dict[str, Any], flags: DirectoryFlags = DEFAULT_FLAGS) -> SessionSettings:
    """``flags``: the names the command gave the directory options (``WORKER_FLAGS`` for the worker)."""
    return SessionSettings(
        host_keytab=params.pop("host_keytab"),
        host_principal=params.pop("host_principal"),
        flags=flags,
        **_directory_params(params),
    )


def events_options(func: F) -> F:
    """``--events-file`` and ``--events-syslog``: where security events go (docs/siem.md)."""
    func = click.option(
        "--events-syslog", envvar="CREDO_EVENTS_SYSLOG", metavar="URL",
        help="Send security events to syslog (RFC 5424): udp://HOST:PORT, tcp://HOST:PORT or unix:/dev/log.",
    )(func)  # fmt: skip
    return click.option(
        "--events-file", envvar="CREDO_EVENTS_FILE", type=click.Path(dir_okay=False, path_type=Path),
        help="Append security events as JSON lines to this file (created 0600).",
    )(func)  # fmt: skip


def configure_events(params: dict[str, Any]) -> None:
    """Take ``events_file`` and ``events_syslog`` out of ``params`` and send this process's
    security events there (credo.security_events)."""
    from credo import security_events

    settings = security_events.EventsSettings(
        params.pop("events_file", None), params.pop("events_syslog", None)
    )
    if settings.file is not None or settings.syslog is not None:
        security_events.configure(settings.sinks())
