"""The server's security events (docs/siem.md): sign-ins and refusals, as a SIEM reads them from
the events file; no token in them (fast lane: TestClient on SQLite)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from credo import security_events
from credo.security_events import EventsSettings
from credo.server.app import API, ServerConfig, create_app
from credo.server.database import sqlite_url


@pytest.fixture
def events_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "security.jsonl"
    security_events.configure(EventsSettings(file=path).sinks())
    yield path
    security_events.configure([])


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_sign_ins_and_refusals_are_security_events(tmp_path: Path, events_file: Path) -> None:
    data = tmp_path / "data"
    app = create_app(ServerConfig(data_dir=data, database_url=sqlite_url(data)))
    admin = (data / "admin.token").read_text().strip()
    wrong = "credo_00000000_" + "A" * 43
    with TestClient(app, follow_redirects=False) as client:
        created = client.post(
            f"{API}/auth/tokens", json={"name": "ops", "expires": "1d", "role": "operator"},
            headers={"Authorization": f"Bearer {admin}"},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        operator = created.json()["token"]
        assert client.post("/ui/sign-in", data={"token": admin, "next": "/ui/jobs"}).status_code == 303
        assert client.post("/ui/sign-in", data={"token": wrong, "next": "/ui/jobs"}).status_code == 401
        # An operator may not mint tokens: an RBAC refusal.
        refused = client.post(
            f"{API}/auth/tokens",
            json={"name": "x", "expires": "1d"},
            headers={"Authorization": f"Bearer {operator}"},
        )
        assert refused.status_code == 403, refused.text
        assert (
            client.post(f"{API}/runbooks", json={}, headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        # A change that went through is in the audit log only, not among the security events.
        assert created.status_code == 201
    events = _events(events_file)
    seen = [(e["kind"], e["outcome"], e["actor"], e["target"], e["severity"]) for e in events]
    assert seen == [
        ("server.signin", "success", "admin", "ui", "notice"),
        ("server.signin", "denied", "anonymous", "ui", "warning"),
        ("server.access.denied", "denied", events[2]["actor"], "auth", "warning"),
        ("server.access.denied", "denied", "anonymous", "runbook", "warning"),
    ]
    assert events[2]["actor"].startswith("token ops (")  # the token's name and id, never its value
    assert all(e["schema"] == "credo.security/1" and e["source"] == "server" for e in events)
    assert events[2]["details"]["status"] == 403 and events[3]["details"]["status"] == 401
    text = events_file.read_text()
    for secret in (admin, wrong, operator):
        assert secret not in text
