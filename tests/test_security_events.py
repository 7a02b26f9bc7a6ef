"""Security events (credo.security_events): the JSON lines schema, and RFC 5424 as a real rsyslogd
parses it, over UDP and TCP (octet counting)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from credo import security_events
from credo.errors import InputError
from credo.security_events import (
    EventsSettings,
    JsonLinesSink,
    Outcome,
    SecurityEvent,
    Severity,
    SyslogSink,
    to_json_line,
)
from tests.support.rsyslog import Rsyslog

WHEN = datetime(2026, 12, 2, 7, 0, 0, 123456, tzinfo=UTC)


def _event(**overrides: object) -> SecurityEvent:
    fields: dict[str, object] = {
        "source": "agent", "kind": "agent.socket.refused", "outcome": Outcome.DENIED,
        "severity": Severity.WARNING, "actor": "uid 1001", "target": "svcauto",
        "details": {"operation": "keytab", "pid": 42, "note": 'quote " bracket ] backslash \\ é'},
        "time": WHEN, "host": "worker1",
    }  # fmt: skip
    fields.update(overrides)
    return SecurityEvent(**fields)  # type: ignore[arg-type]


def test_the_json_line_is_the_documented_schema() -> None:
    line = to_json_line(_event())
    assert line.endswith("\n") and line.count("\n") == 1
    data = json.loads(line)
    assert data == {
        "schema": "credo.security/1", "time": "2026-12-02T07:00:00.123456Z", "host": "worker1",
        "source": "agent", "kind": "agent.socket.refused", "outcome": "denied", "severity": "warning",
        "actor": "uid 1001", "target": "svcauto",
        "details": {"operation": "keytab", "pid": 42, "note": 'quote " bracket ] backslash \\ é'},
    }  # fmt: skip
    assert list(data) == sorted(data)


def test_a_detail_that_names_a_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        _event(details={"password": "x"})


def test_the_file_sink_appends_lines_to_a_0600_file(tmp_path: Path) -> None:
    path = tmp_path / "security.jsonl"
    sink = JsonLinesSink(path)
    sink.write(_event())
    sink.write(_event(kind="agent.credential.issued"))
    sink.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    kinds = [json.loads(line)["kind"] for line in path.read_text().splitlines()]
    assert kinds == ["agent.socket.refused", "agent.credential.issued"]


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="invalid syslog address"):
        SyslogSink("http://127.0.0.1:514")
    with pytest.raises(InputError, match="cannot open the events file"):
        EventsSettings(file=tmp_path / "missing" / "events.jsonl").sinks()


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    daemon = Rsyslog(tmp_path)
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_rsyslog_parses_the_rfc5424_message(rsyslog: Rsyslog, transport: str) -> None:
    port = rsyslog.udp_port if transport == "udp" else rsyslog.tcp_port
    sink = SyslogSink(f"{transport}://127.0.0.1:{port}")
    events = [
        _event(),
        _event(kind="agent.credential.issued", outcome=Outcome.SUCCESS, severity=Severity.NOTICE),
    ]
    for event in events:
        sink.write(event)
    sink.close()
    received = rsyslog.received(2)
    assert len(received) == 2, received
    first, second = received
    assert first["version"] == "1" and first["facility"] == "authpriv" and first["severity"] == "warning"
    assert first["pri"] == str(10 * 8 + 4)
    assert (first["hostname"], first["app"], first["msgid"]) == ("worker1", "credo", "agent.socket.refused")
    assert first["procid"] == str(os.getpid())
    assert first["sd"] == (
        '[credo@32473 kind="agent.socket.refused" outcome="denied" actor="uid 1001" target="svcauto"]'
    )
    # The message is the JSON line (rsyslog keeps the BOM of RFC 5424 §6.4 in front of it).
    assert json.loads(first["msg"].lstrip("\ufeff")) == json.loads(to_json_line(events[0]))
    assert second["severity"] == "notice" and second["msgid"] == "agent.credential.issued"


def test_emit_goes_to_every_configured_sink_and_survives_a_dead_one(tmp_path: Path, rsyslog: Rsyslog) -> None:
    path = tmp_path / "events.jsonl"
    settings = EventsSettings(file=path, syslog=f"tcp://127.0.0.1:{rsyslog.tcp_port}")
    security_events.configure(settings.sinks())
    try:
        security_events.emit(_event())
        rsyslog.stop()  # the collector goes away: the next events are lost to it, not to the file
        security_events.emit(_event(kind="agent.credential.issued"))
        security_events.emit(_event(kind="agent.password.retrieved"))
    finally:
        security_events.configure([])
    kinds = [json.loads(line)["kind"] for line in path.read_text().splitlines()]
    assert kinds == ["agent.socket.refused", "agent.credential.issued", "agent.password.retrieved"]
