"""The agent's configuration: one TOML file (default /etc/credo/agent.toml), read with tomllib.

Every key is checked at start and on reload (SIGHUP); an error names the file, the key and what
is wrong, in one line, and a reload that fails keeps the running configuration. The layout:

    socket = "/run/credo/agent.sock"       # the local API (CREDO_AGENT_SOCKET overrides)
    state_dir = "/var/lib/credo/agent"     # accepted, unused: the agent keeps its status in memory
    metrics_listen = "127.0.0.1:9464"      # opt-in Prometheus metrics (loopback only)
    log_format = "text"                    # or "json"
    [directory]
    servers = ["ldap://dc1.corp.example.test", "ldap://dc2.corp.example.test"]   # else DNS SRV
    host_keytab = "/etc/krb5.keytab"; host_principal = "HOST$@REALM"
    ca_file = "..."; starttls = false; ldap_timeout = 10; krb5_config = "/etc/krb5.conf"
    [[account]]
    name = "svcauto"                       # the gMSA (with or without $)
    allow_users = ["root", "credo-runner"] # who may ask the socket for its tickets
    allow_groups = []
    export_keytab = ["svc-web", "%web-admins"]  # who may get a keytab (users, %groups); root only if empty
    refresh_jitter = 60                    # refresh 0-60 s into the DC's pre-rotation window
    [[account.keytab]]
    path = "/etc/credo/svcauto.keytab"; owner = "root"; group = "root"; mode = "0600"
    spns = ["HTTP/web.corp.example.test"]; enctypes = ["aes256", "aes128"]
    [[account.ccache]]
    path = "/run/credo/svcauto.ccache"; user = "credo-runner"
    [[account.hook]]
    argv = ["/usr/bin/systemctl", "reload", "nginx"]; timeout = 30
    [[account.token]]                      # a cloud token for a service (issue 14), kept fresh
    path = "/run/credo/web-sync.token"; user = "svc-web"   # 0600, owned by user
    group = "tier1"                        # the worker group whose identity it carries
    audience = "api://AzureADTokenExchange"; service = "web-sync"
    [server]                               # where tokens come from (needed by [[account.token]])
    url = "https://credo.corp.example.test:8443"; ca_file = "/etc/credo/server-ca.pem"
    [events]                               # security events for a SIEM (credo.security_events)
    file = "/var/log/credo/security.jsonl"; syslog = "unix:/dev/log"   # either, both, or none
    [endpoints]                            # restricted endpoints this agent brokers (docs/endpoints.md)
    dir = "/etc/credo/endpoints"           # NAME.toml by name (default $CREDO_ENDPOINTS_DIR or this)
    files = ["/srv/ops/endpoints/db.toml"] # other files `credo endpoint serve --config FILE` may name
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from credo.agent.schedule import DEFAULT_JITTER, MAX_JITTER
from credo.errors import InputError
from credo.names import managed_account_sam
from credo.security_events import EventsSettings
from credo.tomlread import TableReader, read_toml

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_SOCKET",
    "AccountConfig",
    "AgentConfig",
    "CcacheOutput",
    "ConfigError",
    "DirectoryConfig",
    "EndpointsConfig",
    "Hook",
    "KeytabOutput",
    "ServerConfig",
    "TokenOutput",
    "load_config",
    "socket_path",
]

DEFAULT_CONFIG = Path("/etc/credo/agent.toml")
DEFAULT_SOCKET = Path("/run/credo/agent.sock")
DEFAULT_STATE_DIR = Path("/var/lib/credo/agent")
ENCTYPES = {"aes256": 18, "aes128": 17, "rc4": 23}


class ConfigError(InputError):
    """The agent's configuration is invalid: the message names the file and the key."""


def socket_path(configured: Path | None = None) -> Path:
    """CREDO_AGENT_SOCKET, else the configured socket, else /run/credo/agent.sock."""
    env = os.environ.get("CREDO_AGENT_SOCKET")
    return Path(env) if env else (configured or DEFAULT_SOCKET)


@dataclass(frozen=True)
class KeytabOutput:
    path: Path
    uid: int
    gid: int
    mode: int
    spns: tuple[str, ...] = ()
    enctypes: tuple[int, ...] = (18, 17)


@dataclass(frozen=True)
class CcacheOutput:
    path: Path
    user: str
    uid: int
    gid: int


@dataclass(frozen=True)
class TokenOutput:
    """A workload identity token kept fresh in a file for a service (``[[account.token]]``)."""

    path: Path
    user: str
    uid: int
    gid: int
    group: str  # the worker group: subject credo:group:<group>, the same as its jobs'
    audience: str
    service: str  # the token's credo.service claim, for the audit


@dataclass(frozen=True)
class ServerConfig:
    url: str | None = None
    ca_file: str | None = None


@dataclass(frozen=True)
class Hook:
    argv: tuple[str, ...]
    timeout: float = 30.0


@dataclass(frozen=True)
class AccountConfig:
    name: str  # sAMAccountName without the $
    allow_users: frozenset[str] = frozenset()
    allow_groups: frozenset[str] = frozenset()
    refresh_jitter: float = DEFAULT_JITTER
    keytabs: tuple[KeytabOutput, ...] = ()
    export_users: frozenset[str] = frozenset()  # export_keytab: who may get a keytab of it
    export_groups: frozenset[str] = frozenset()
    ccaches: tuple[CcacheOutput, ...] = ()
    hooks: tuple[Hook, ...] = ()
    tokens: tuple[TokenOutput, ...] = ()

    def allows(self, uid: int, gids: set[int]) -> bool:
        """May the local user ``uid`` (in groups ``gids``) have this account's tickets?"""
        return _allowed(uid, gids, self.allow_users, self.allow_groups)

    def allows_export(self, uid: int, gids: set[int]) -> bool:
        """May ``uid`` have a keytab of this account? Keys outlive a removal from ``allow_users``
        (they work until the password rotates), so this is its own list: root, and export_keytab."""
        return _allowed(uid, gids, self.export_users, self.export_groups)


def _allowed(uid: int, gids: set[int], users: frozenset[str], groups: frozenset[str]) -> bool:
    if uid == 0:
        return True
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return False
    if name in users:
        return True
    for group in groups:
        try:
            if grp.getgrnam(group).gr_gid in gids:
                return True
        except KeyError:
            continue
    return False


@dataclass(frozen=True)
class DirectoryConfig:
    servers: tuple[str, ...] = ()
    host_keytab: Path | None = None
    host_principal: str | None = None
    ca_file: str | None = None
    starttls: bool = False
    ldap_timeout: float = 10.0
    krb5_config: Path | None = None  # KRB5_CONFIG for the agent's Kerberos calls (default /etc/krb5.conf)


@dataclass(frozen=True)
class EndpointsConfig:
    """The endpoint definitions the agent serves: NAME.toml in ``directory`` (None: the
    environment's, credo.endpoint.definition.endpoints_dir) and the ``files`` listed here. A
    socket caller names one of these and never a path of its own choosing: the file decides what
    the caller may run as the gMSA, so any local user could otherwise grant itself everything."""

    directory: Path | None = None
    files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class AgentConfig:
    path: Path
    socket: Path = DEFAULT_SOCKET
    state_dir: Path = DEFAULT_STATE_DIR
    metrics_listen: str | None = None
    log_format: str = "text"
    directory: DirectoryConfig = field(default_factory=DirectoryConfig)
    accounts: tuple[AccountConfig, ...] = ()
    server: ServerConfig = field(default_factory=ServerConfig)
    events: EventsSettings = field(default_factory=EventsSettings)
    endpoints: EndpointsConfig = field(default_factory=EndpointsConfig)

    def account(self, name: str) -> AccountConfig | None:
        bare = name.lower().rstrip("$")
        return next((a for a in self.accounts if a.name.lower() == bare), None)


class _Reader(TableReader):
    """The shared TOML table reader (credo.tomlread), raising ConfigError with the reload hint."""

    error = ConfigError
    hint = "fix the key and reload (systemctl reload credo-agent)"


def _absolute(reader: _Reader, key: str) -> Path:
    value = reader.get(key, str, required=True)
    if not value.startswith("/"):
        raise reader.fail(key, f"{value!r} is not an absolute path")
    return Path(value)


def _user(reader: _Reader, key: str, default: str | None = None) -> pwd.struct_passwd:
    name = reader.get(key, str, default, required=default is None)
    try:
        return pwd.getpwnam(name)
    except (KeyError, ValueError):  # ValueError: a name with a NUL, which no user has
        raise reader.fail(key, f"no local user {name!r}") from None


def _group(reader: _Reader, key: str, default: int) -> int:
    name = reader.get(key, str, None)
    if name is None:
        return default
    try:
        return grp.getgrnam(name).gr_gid
    except (KeyError, ValueError):  # ValueError: a name with a NUL, which no group has
        raise reader.fail(key, f"no local group {name!r}") from None


def _keytab(path: Path, where: str, table: dict[str, Any]) -> KeytabOutput:
    r = _Reader(path, table, where)
    out = _absolute(r, "path")
    owner = _user(r, "owner", "root")
    gid = _group(r, "group", owner.pw_gid)
    mode_text = r.get("mode", str, "0600")
    try:
        mode = int(mode_text, 8)
    except ValueError:
        raise r.fail("mode", f'{mode_text!r} is not an octal mode such as "0600"') from None
    if mode & ~0o777 or mode & 0o007:
        raise r.fail("mode", f"{mode_text} would let every user read the keys: use 0600 or 0640")
    spns = r.strings("spns")
    enctypes = r.strings("enctypes") or ("aes256", "aes128")
    for name in enctypes:
        if name.lower() not in ENCTYPES:
            raise r.fail(
                "enctypes", f"unknown encryption type {name!r}: use aes256, aes128 (rc4 if you must)"
            )
    r.done()
    return KeytabOutput(out, owner.pw_uid, gid, mode, spns, tuple(ENCTYPES[n.lower()] for n in enctypes))


def _ccache(path: Path, where: str, table: dict[str, Any]) -> CcacheOutput:
    r = _Reader(path, table, where)
    out = _absolute(r, "path")
    user = _user(r, "user")
    r.done()
    return CcacheOutput(out, user.pw_name, user.pw_uid, user.pw_gid)


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


def _token(path: Path, where: str, table: dict[str, Any], account: str) -> TokenOutput:
    r = _Reader(path, table, where)
    out = _absolute(r, "path")
    user = _user(r, "user")
    group = r.get("group", str, required=True)
    if not group or not set(group) <= _NAME_CHARS:
        raise r.fail("group", f"{group!r} is not a worker group's name")
    audience = r.get("audience", str, required=True)
    if not audience or any(c.isspace() for c in audience):
        raise r.fail("audience", f"{audience!r}: give one audience, e.g. api://AzureADTokenExchange")
    service = r.get("service", str, account)
    if not service or not set(service) <= _NAME_CHARS:
        raise r.fail(
            "service", f"{service!r}: letters, digits, . _ - @ only (it names the service in the token)"
        )
    r.done()
    return TokenOutput(out, user.pw_name, user.pw_uid, user.pw_gid, group, audience, service)


def _hook(path: Path, where: str, table: dict[str, Any]) -> Hook:
    r = _Reader(path, table, where)
    argv = r.strings("argv")
    if not argv:
        raise r.fail("argv", 'missing: a command as a list, e.g. ["/usr/bin/systemctl", "reload", "nginx"]')
    if not argv[0].startswith("/"):
        raise r.fail("argv", f"{argv[0]!r}: give the program's absolute path (no shell, no PATH lookup)")
    timeout = r.get("timeout", float, 30.0)
    if not 0 < timeout <= 3600:
        raise r.fail("timeout", "must be between 0 and 3600 seconds")
    r.done()
    return Hook(argv, timeout)


def _account(path: Path, where: str, table: dict[str, Any]) -> AccountConfig:
    r = _Reader(path, table, where)
    name = r.get("name", str, required=True)
    r.check("name", lambda: managed_account_sam(name))
    users = r.strings("allow_users")
    for user in users:
        if not _exists_user(user):
            raise r.fail("allow_users", f"no local user {user!r}")
    groups = r.strings("allow_groups")
    for group in groups:
        if not _exists_group(group):
            raise r.fail("allow_groups", f"no local group {group!r}")
    jitter = r.get("refresh_jitter", float, DEFAULT_JITTER)
    if not 0 <= jitter <= MAX_JITTER:
        raise r.fail(
            "refresh_jitter",
            f"must be between 0 and {MAX_JITTER:g} seconds (the pre-rotation window is 5 minutes)",
        )
    exporters = r.strings("export_keytab")
    for who in exporters:
        if who.startswith("%"):
            if not _exists_group(who[1:]):
                raise r.fail("export_keytab", f"no local group {who[1:]!r}")
        elif not _exists_user(who):
            raise r.fail("export_keytab", f"no local user {who!r} (write a group as %group)")
    account = AccountConfig(
        name=managed_account_sam(name)[:-1],
        allow_users=frozenset(users),
        allow_groups=frozenset(groups),
        refresh_jitter=jitter,
        export_users=frozenset(w for w in exporters if not w.startswith("%")),
        export_groups=frozenset(w[1:] for w in exporters if w.startswith("%")),
        keytabs=tuple(_keytab(path, w, t) for w, t in r.tables("keytab")),
        ccaches=tuple(_ccache(path, w, t) for w, t in r.tables("ccache")),
        hooks=tuple(_hook(path, w, t) for w, t in r.tables("hook")),
        tokens=tuple(_token(path, w, t, managed_account_sam(name)[:-1]) for w, t in r.tables("token")),
    )
    r.done()
    return account


def _exists_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except (KeyError, ValueError):  # ValueError: a name with a NUL, which no user has
        return False
    return True


def _exists_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except (KeyError, ValueError):  # ValueError: a name with a NUL, which no group has
        return False
    return True


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except OSError:  # pathlib lets ENAMETOOLONG and EACCES through: no file credo can read either
        return False


def _shown(path: str) -> str:
    """A path as a message shows it: as written, or quoted and escaped when it holds a line break
    or another unprintable character (a message is one line)."""
    return path if path.isprintable() else repr(path)


def load_config(path: Path) -> AgentConfig:
    """Read and check ``path``; raise ConfigError (one line: file, key, what) on any fault."""
    data = read_toml(path, ConfigError, missing_hint="write it (see examples/agent.toml) or give --config")
    r = _Reader(path, data, "")
    socket = Path(r.get("socket", str, str(DEFAULT_SOCKET)))
    state_dir = Path(r.get("state_dir", str, str(DEFAULT_STATE_DIR)))
    metrics = r.get("metrics_listen", str, None)
    if metrics is not None:
        host, _, port = metrics.rpartition(":")
        if host not in ("127.0.0.1", "[::1]", "localhost") or not port.isdigit():
            raise r.fail("metrics_listen", f"{metrics!r}: give a loopback HOST:PORT such as 127.0.0.1:9464")
    log_format = r.get("log_format", str, "text")
    if log_format not in ("text", "json"):
        raise r.fail("log_format", f"{log_format!r}: use text or json")
    d = _Reader(path, r.sub("directory"), "directory")
    servers = d.strings("servers")
    for server in servers:
        if not server.startswith(("ldap://", "ldaps://")):
            raise d.fail("servers", f"{server!r} is not an ldap:// or ldaps:// URL")
    keytab = d.get("host_keytab", str, None)
    krb5_config = d.get("krb5_config", str, None)
    if krb5_config is not None and not _is_file(krb5_config):
        raise d.fail("krb5_config", f"{_shown(krb5_config)}: no such file")
    directory = DirectoryConfig(
        servers=servers,
        host_keytab=Path(keytab) if keytab else None,
        host_principal=d.get("host_principal", str, None),
        ca_file=d.get("ca_file", str, None),
        starttls=d.get("starttls", bool, False),
        ldap_timeout=d.get("ldap_timeout", float, 10.0),
        krb5_config=Path(krb5_config) if krb5_config else None,
    )
    d.done()
    s = _Reader(path, r.sub("server"), "server")
    credo_server = ServerConfig(url=s.get("url", str, None), ca_file=s.get("ca_file", str, None))
    if credo_server.url is not None and not credo_server.url.startswith("https://"):
        raise s.fail("url", f"{credo_server.url!r} is not an https:// URL (the credo server)")
    if credo_server.ca_file is not None and not _is_file(credo_server.ca_file):
        raise s.fail("ca_file", f"{_shown(credo_server.ca_file)}: no such file")
    s.done()
    e = _Reader(path, r.sub("events"), "events")
    events_file = e.get("file", str, None)
    if events_file is not None and not Path(events_file).is_absolute():
        raise e.fail("file", f"{_shown(events_file)}: give an absolute path")
    syslog = e.get("syslog", str, None)
    if syslog is not None and not syslog.startswith(("udp://", "tcp://", "unix:")):
        raise e.fail("syslog", f"{syslog!r}: use udp://HOST:PORT, tcp://HOST:PORT or unix:/dev/log")
    events = EventsSettings(Path(events_file) if events_file else None, syslog)
    e.done()
    n = _Reader(path, r.sub("endpoints"), "endpoints")
    endpoints_dir = n.get("dir", str, None)
    endpoint_files = n.strings("files")
    for key, value in [("dir", endpoints_dir), *(("files", f) for f in endpoint_files)]:
        if value is not None and not Path(value).is_absolute():
            raise n.fail(key, f"{_shown(value)}: give an absolute path")
    endpoints = EndpointsConfig(
        Path(endpoints_dir) if endpoints_dir else None, tuple(Path(f) for f in endpoint_files)
    )
    n.done()
    accounts = tuple(_account(path, w, t) for w, t in r.tables("account"))
    seen: set[str] = set()
    outputs: set[Path] = set()
    for i, account in enumerate(accounts):
        if account.name.lower() in seen:
            raise ConfigError(f"{path}: account[{i}].name: {account.name} is configured twice")
        seen.add(account.name.lower())
        if account.tokens and credo_server.url is None:
            raise ConfigError(
                f"{path}: server.url: missing: account[{i}] has token outputs, which the credo server gives",
                hint='add [server] url = "https://credo.example:8443" (and ca_file if its CA is private)',
            )
        paths = [*(k.path for k in account.keytabs), *(c.path for c in account.ccaches)]
        for out_path in [*paths, *(t.path for t in account.tokens)]:
            if out_path in outputs:
                raise ConfigError(f"{path}: account[{i}]: output {out_path} is written by another output too")
            outputs.add(out_path)
    r.done()
    return AgentConfig(
        path, socket, state_dir, metrics, log_format, directory, accounts, credo_server, events, endpoints
    )
