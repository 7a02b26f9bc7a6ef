"""credo's configuration file, ``credo.toml``: where clients find the server, how the server runs.

Read here and nowhere else. The files, each optional, later ones overriding earlier ones key by
key: ``/etc/credo/credo.toml``, then ``$XDG_CONFIG_HOME/credo/credo.toml`` (``~/.config/...``);
``CREDO_CONFIG=FILE`` names the one file to read instead. Precedence (docs/architecture.md,
"Conventions"): command-line flags > environment (``CREDO_*``) > these files > the defaults
(``credo.defaults``). The commands apply it: a value from here is used only where no flag or
variable gave one.

    [server]                 # how the CLI reaches `credo server`
    url = "https://credo.corp.example.test:8400"
    ca_file = "/etc/credo/ca.pem"          # to verify its certificate (default: the system's CAs)
    token_file = "/var/lib/credo/server/admin.token"   # the admin token's file (never the token)

    [server_process]         # how `credo server` runs
    data_dir = "/var/lib/credo/server"
    listen = "127.0.0.1:8400"
    database = "postgresql://credo@db.corp.example.test/credo"
    keytab = "/etc/credo/http.keytab"
    oidc_issuer = "https://credo.corp.example.test"
    oidc_key_file = "/var/lib/credo/server/oidc-keys.json"

A file that holds a token path should be 0600; the token itself never goes in it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from credo.tomlread import TableReader, read_toml

__all__ = [
    "SYSTEM_CONFIG",
    "ClientSettings",
    "Config",
    "ServerProcessSettings",
    "config_paths",
    "load_config",
]

SYSTEM_CONFIG = Path("/etc/credo/credo.toml")
_HINT = 'fix the file (its keys: docs/architecture.md, "Configuration"), or name another with CREDO_CONFIG'


@dataclass(frozen=True)
class ClientSettings:
    """``[server]``: how a client reaches the server."""

    url: str | None = None
    ca_file: Path | None = None
    token_file: Path | None = None


@dataclass(frozen=True)
class ServerProcessSettings:
    """``[server_process]``: how ``credo server`` runs."""

    data_dir: Path | None = None
    listen: str | None = None
    database: str | None = None
    keytab: Path | None = None
    oidc_issuer: str | None = None
    oidc_key_file: Path | None = None


@dataclass(frozen=True)
class Config:
    server: ClientSettings = field(default_factory=ClientSettings)
    server_process: ServerProcessSettings = field(default_factory=ServerProcessSettings)
    sources: tuple[Path, ...] = ()  # the files read, in order


def config_paths() -> list[Path]:
    """The files to read, in order (later ones win): CREDO_CONFIG alone, else system then user."""
    explicit = os.environ.get("CREDO_CONFIG")
    if explicit:
        return [Path(explicit)]
    user = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "credo" / "credo.toml"
    return [SYSTEM_CONFIG, user]


class _Reader(TableReader):
    hint = _HINT


def _path(reader: _Reader, key: str, default: Path | None) -> Path | None:
    value = reader.get(key, str)
    if value is None:
        return default
    try:
        path = Path(value).expanduser()
    except (RuntimeError, ValueError):  # ~name of no user (RuntimeError), or with a NUL (ValueError)
        raise reader.fail(key, f"{value!r}: no home directory for its ~") from None
    if not path.is_absolute():  # relative to the file, as a reader of the file expects
        path = reader.path.parent / path
    return path


def _client(reader: _Reader, base: ClientSettings) -> ClientSettings:
    return ClientSettings(
        url=reader.get("url", str, base.url),
        ca_file=_path(reader, "ca_file", base.ca_file),
        token_file=_path(reader, "token_file", base.token_file),
    )


def _server_process(reader: _Reader, base: ServerProcessSettings) -> ServerProcessSettings:
    return ServerProcessSettings(
        data_dir=_path(reader, "data_dir", base.data_dir),
        listen=reader.get("listen", str, base.listen),
        database=reader.get("database", str, base.database),
        keytab=_path(reader, "keytab", base.keytab),
        oidc_issuer=reader.get("oidc_issuer", str, base.oidc_issuer),
        oidc_key_file=_path(reader, "oidc_key_file", base.oidc_key_file),
    )


def load_config(paths: list[Path] | None = None) -> Config:
    """The configuration from ``paths`` (default ``config_paths()``); a missing file is skipped, a
    malformed one is an InputError naming the file and key."""
    explicit = paths is None and bool(os.environ.get("CREDO_CONFIG"))
    config = Config()
    for path in config_paths() if paths is None else paths:
        if not path.exists() and not explicit:
            continue
        document = read_toml(path, missing_hint="CREDO_CONFIG names a file that does not exist")
        top = _Reader(path, document, "")
        client = _Reader(path, top.sub("server"), "server")
        process = _Reader(path, top.sub("server_process"), "server_process")
        top.done()
        server = _client(client, config.server)
        server_process = _server_process(process, config.server_process)
        client.done()
        process.done()
        config = Config(server, server_process, (*config.sources, path))
    return config
