"""The options of the commands that talk to ``credo server``, and the client they build.

Where the server is: ``--url`` > ``CREDO_SERVER_URL`` > ``[server] url`` in credo.toml
(credo.config) > http://127.0.0.1:8400. The credentials: ``CREDO_TOKEN`` (an API token or the
admin token) > ``--token-file`` > ``[server] token_file`` > ``admin.token`` in ``CREDO_SERVER_DIR``
or the default data dir, if readable > the user's own Kerberos ticket (HTTP Negotiate).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from credo.client import Client, bearer, negotiating
from credo.config import load_config
from credo.defaults import DEFAULT_SERVER_URL
from credo.errors import NotPermittedError
from credo.server.paths import default_server_dir

__all__ = ["client_from", "server_url", "with_api"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option(
        "--url",
        envvar="CREDO_SERVER_URL",
        help=f"Server URL (default: credo.toml's [server] url, else {DEFAULT_SERVER_URL}).",
    ),
    click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), help="Admin token file."),
]


def with_api(func: F) -> F:
    """--url and --token-file; the command passes its ``**params`` to ``client_from``."""
    decorated: Any = func
    for option in reversed(_OPTIONS):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def server_url(url: str | None) -> str:
    """The server's URL: the flag or CREDO_SERVER_URL (``url``), else credo.toml, else the default."""
    return (url or load_config().server.url or DEFAULT_SERVER_URL).rstrip("/")


def client_from(params: dict[str, Any]) -> Client:
    """The client for a command's ``--url`` and ``--token-file`` (popped from ``params``)."""
    settings = load_config().server
    url = server_url(params.pop("url", None))
    token_file: Path | None = params.pop("token_file", None)
    token = os.environ.get("CREDO_TOKEN")
    if not token:
        named = token_file or settings.token_file
        path = named or Path(os.environ.get("CREDO_SERVER_DIR") or default_server_dir()) / "admin.token"
        try:
            token = path.read_text().strip()
        except OSError as exc:
            if named is None:
                # No token configured and none readable here: sign in as the user (Kerberos).
                return Client(url, auth=negotiating(url), ca_file=settings.ca_file)
            raise NotPermittedError(
                f"cannot read the token file {path} ({exc.strerror})",
                hint="fix its permissions, or unset it and sign in with Kerberos (kinit)",
            ) from None
    return Client(url, headers=bearer(token), ca_file=settings.ca_file)
