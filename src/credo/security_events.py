"""Security events for a SIEM: one schema, written as JSON lines to a file or sent to syslog.

What the agent, the server and ``credo audit`` see that a security team watches for: password
retrievals, refused socket callers, endpoint sessions, sign-ins, access refusals, audit findings.
Each is a ``SecurityEvent``; ``emit`` hands it to the sinks the process was configured with
(``configure``), and to none by default. A sink that fails is reported once on the process's log
and never stops the work that emitted the event.

JSON line (the schema, ``credo.security/1``; docs/siem.md):
``{"schema", "time", "host", "source", "kind", "outcome", "severity", "actor", "target", "details"}``,
keys sorted, one object a line, UTF-8. ``details`` holds names and ids, never a secret
(``SecurityEvent`` refuses keys that name one, as the audit log does).

Syslog: RFC 5424 (the header ``<PRI>1 TIME HOST APP PROCID MSGID``, one structured data element
``[credo@32473 kind= outcome= actor= target=]``, the JSON line as the message, after a BOM,
§6.4). Transports: ``udp://HOST:PORT`` (RFC 5426: a datagram a message), ``tcp://HOST:PORT``
(RFC 6587 octet counting: ``LEN SP MSG``), ``unix:PATH`` (a datagram socket such as /dev/log).
32473 is the example enterprise number of RFC 5612: SD-IDs with "@" need one, and credo has none
registered; receivers match on the SD-ID text.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from credo.errors import InputError

__all__ = [
    "SCHEMA",
    "EventsSettings",
    "JsonLinesSink",
    "Outcome",
    "SecurityEvent",
    "Severity",
    "Sink",
    "SyslogSink",
    "configure",
    "emit",
    "rfc5424",
    "to_json_line",
]

log = logging.getLogger(__name__)

SCHEMA = "credo.security/1"
SD_ID = "credo@32473"
# RFC 5424 §6.2.1: facility 10, security/authorization messages (authpriv).
FACILITY_AUTHPRIV = 10
# Detail keys that would name a secret: refused at construction (the audit log's rule).
_SECRET_WORDS = ("password", "secret", "token", "key_data", "keytab_bytes", "ticket")
_MAX_UDP = 8192
# A failed sink is tried again after this long (see _Dispatcher); a send waits SEND_TIMEOUT at most.
SINK_RETRY_SECONDS = 30.0
SEND_TIMEOUT = 1.0


class Severity(enum.IntEnum):
    """RFC 5424 §6.2.1 severities that credo uses."""

    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6

    @property
    def label(self) -> str:
        return self.name.lower()


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"  # tried and failed (a DC unreachable, a bad ticket)
    DENIED = "denied"  # refused by policy (not allowed, not signed in)


@dataclass(frozen=True)
class SecurityEvent:
    """One event. ``kind``: dotted, source first (``agent.password.retrieved``); ``actor``: who
    acted or asked (``uid 1001``, ``CORP\\jdoe``, ``WORKER1$``); ``target``: what it was about
    (an account, a route, an endpoint)."""

    source: str
    kind: str
    outcome: Outcome
    severity: Severity
    actor: str
    target: str
    details: Mapping[str, Any] = field(default_factory=dict)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    host: str = field(default_factory=socket.gethostname)

    def __post_init__(self) -> None:
        for key in self.details:
            if any(word in key.lower() for word in _SECRET_WORDS):
                raise ValueError(f"security event detail {key!r} may name a secret")

    def body(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "time": self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "host": self.host,
            "source": self.source,
            "kind": self.kind,
            "outcome": str(self.outcome),
            "severity": self.severity.label,
            "actor": self.actor,
            "target": self.target,
            "details": dict(self.details),
        }


def to_json_line(event: SecurityEvent) -> str:
    return (
        json.dumps(event.body(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        + "\n"
    )


def _sd_value(text: str) -> str:
    # RFC 5424 §6.3.3: '"', '\' and ']' are escaped with a backslash inside PARAM-VALUE.
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_field(text: str, limit: int) -> str:
    # RFC 5424 §6: header fields are PRINTUSASCII (33-126), "-" when empty.
    cleaned = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def rfc5424(event: SecurityEvent, app: str = "credo") -> bytes:
    """The event as one RFC 5424 syslog message (no transport framing)."""
    pri = FACILITY_AUTHPRIV * 8 + int(event.severity)
    time = event.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    params = " ".join(
        f'{name}="{_sd_value(value)}"'
        for name, value in (
            ("kind", event.kind),
            ("outcome", str(event.outcome)),
            ("actor", event.actor),
            ("target", event.target),
        )
    )
    header = (
        f"<{pri}>1 {time} {_header_field(event.host, 255)} {_header_field(app, 48)} {os.getpid()} "
        f"{_header_field(event.kind, 32)} [{SD_ID} {params}] "
    )
    return header.encode() + b"\xef\xbb\xbf" + to_json_line(event).rstrip("\n").encode()


class Sink(Protocol):
    def write(self, event: SecurityEvent) -> None: ...

    def close(self) -> None: ...


class JsonLinesSink:
    """Appends each event as one line to ``path`` (created 0600; each line one write, O_APPEND,
    so lines of several processes never interleave)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def write(self, event: SecurityEvent) -> None:
        os.write(self._fd, to_json_line(event).encode())

    def close(self) -> None:
        os.close(self._fd)


class SyslogSink:
    """Sends each event as an RFC 5424 message to ``udp://``, ``tcp://`` or ``unix:`` (see the
    module docstring). TCP reconnects once after a broken connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        self.scheme = parts.scheme
        if parts.scheme == "unix":
            self._address: Any = parts.path
            self._family = socket.AF_UNIX
        elif parts.scheme in ("udp", "tcp") and parts.hostname and parts.port:
            self._address = (parts.hostname, parts.port)
            self._family = socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET
        else:
            raise InputError(
                f"invalid syslog address {url!r}",
                hint="use udp://HOST:PORT, tcp://HOST:PORT or unix:/dev/log",
            )
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        kind = socket.SOCK_STREAM if self.scheme == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(self._family, kind)
        sock.settimeout(SEND_TIMEOUT)
        sock.connect(self._address)
        return sock

    def write(self, event: SecurityEvent) -> None:
        message = rfc5424(event)
        if self.scheme == "tcp":
            message = str(len(message)).encode() + b" " + message  # RFC 6587 §3.4.1
        elif len(message) > _MAX_UDP:
            message = message[:_MAX_UDP]
        for attempt in range(2):
            if self._sock is None:
                self._sock = self._connect()
            try:
                self._sock.sendall(message)
                return
            except OSError:
                self._sock.close()
                self._sock = None
                if attempt:
                    raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@dataclass(frozen=True)
class EventsSettings:
    """Where a process sends its events: ``[events]`` in agent.toml, ``--events-file`` and
    ``--events-syslog`` of ``credo server`` and ``credo audit``."""

    file: Path | None = None
    syslog: str | None = None

    def sinks(self) -> list[Sink]:
        found: list[Sink] = []
        if self.file is not None:
            try:
                found.append(JsonLinesSink(self.file))
            except OSError as exc:
                raise InputError(
                    f"cannot open the events file {self.file}: {exc.strerror}",
                    hint="give a path in a directory that exists and that this user may write",
                ) from None
        if self.syslog is not None:
            found.append(SyslogSink(self.syslog))
        return found


class _Dispatcher:
    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        self.lock = threading.Lock()
        # Sink index -> when to try it again. A sink that failed is skipped for SINK_RETRY_SECONDS:
        # a collector that hangs must not stall every request that emits an event (a stranger's
        # 401 emits one), only the first one after each pause.
        self.failed: dict[int, float] = {}

    def emit(self, event: SecurityEvent) -> None:
        with self.lock:
            now = time.monotonic()
            for index, sink in enumerate(self.sinks):
                if self.failed.get(index, 0.0) > now:
                    continue
                try:
                    sink.write(event)
                except OSError as exc:
                    if index not in self.failed:  # once: a SIEM outage must not flood the log
                        log.warning("security events: cannot write to %s: %s", _name(sink), exc)
                    self.failed[index] = now + SINK_RETRY_SECONDS
                else:
                    self.failed.pop(index, None)


def _name(sink: Sink) -> str:
    return str(getattr(sink, "path", None) or getattr(sink, "url", "a sink"))


_DISPATCHER = _Dispatcher()


def configure(sinks: Iterable[Sink]) -> None:
    """Replace the process's sinks (closing the old ones)."""
    with _DISPATCHER.lock:
        old, _DISPATCHER.sinks = _DISPATCHER.sinks, list(sinks)
        _DISPATCHER.failed.clear()
    for sink in old:
        sink.close()


def emit(event: SecurityEvent) -> None:
    """Send ``event`` to the configured sinks (none: nothing happens). Never raises OSError; a sink
    that failed is skipped for SINK_RETRY_SECONDS, so a hung collector costs one SEND_TIMEOUT per
    pause, not one per event."""
    if _DISPATCHER.sinks:
        _DISPATCHER.emit(event)
