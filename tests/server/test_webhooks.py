"""Webhooks wired in: create (URL and secret once), the public signed route (202; the same 404 for
unknown, unsigned, bad, replayed, expired, disabled; 429), the body cap and schema, rotation with
overlap, the audit log and metrics. In process on SQLite and PostgreSQL, and the CLI for real."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from credo.automation.webhooks import SIGNATURE_HEADER, signature_header
from credo.lab import LabSettings
from credo.server.app import ServerConfig, create_app
from credo.server.database import Database, sqlite_url
from credo.server.models import Job, Webhook
from tests.server.conftest import RUNNER, Server, create_group, create_runbook, free_port
from tests.support.identity import CREDO

PARAMS = [{"name": "ticket", "type": "object", "required": True}]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "data")
    postgres_url = request.getfixturevalue("postgres_url")
    name = f"w{free_port()}_{int(time.time())}"
    subprocess.run(["psql", postgres_url, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return str(postgres_url.rsplit("/", 1)[0] + f"/{name}")


@pytest.fixture
def app_client(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Database]]:
    app = create_app(ServerConfig(data_dir=tmp_path / "data", database_url=database_url))
    token = (tmp_path / "data" / "admin.token").read_text().strip()
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        runbook = {"name": "intake", "type": "python3", "content": base64.b64encode(b"print(1)\n").decode(),
                   "parameters": PARAMS}  # fmt: skip
        assert client.post("/api/v1/runbooks", json=runbook).status_code == 201
        assert client.post("/api/v1/runbooks/intake/publish").status_code == 200
        group = {
            "name": "tier1",
            "run_as": None,
            "local_user": RUNNER,
            "workers": ["WORKER1$@CORP.EXAMPLE.TEST"],
        }
        assert client.post("/api/v1/groups", json=group).status_code == 201
        yield client, app.state.credo.db


def _create(client: TestClient, **extra: Any) -> dict[str, Any]:
    body = {"name": "ticket", "runbook": "intake", "group": "tier1", "parameter": "ticket"} | extra
    made = client.post("/api/v1/webhooks", json=body)
    assert made.status_code == 201, made.text
    result: dict[str, Any] = made.json()
    return result


def _send(client: TestClient, url: str, body: bytes, secrets_: list[str] | None, t: int | None = None) -> Any:
    path = url.removeprefix("http://testserver")
    headers = {"Authorization": "", "Content-Type": "application/json"}
    if secrets_ is not None:
        headers[SIGNATURE_HEADER] = signature_header(secrets_, t or int(time.time()), body)
    return client.post(path, content=body, headers=headers)


def test_a_signed_call_starts_a_job_with_the_body_as_the_parameter(
    app_client: tuple[TestClient, Database],
) -> None:
    client, db = app_client
    made = _create(client)
    assert made["url"].startswith("http://testserver/api/v1/hooks/") and made["secret"].startswith(
        "credo_whsec_"
    )
    shown = client.get("/api/v1/webhooks/ticket").json()
    assert shown["url"] is None and shown["secret"] is None  # shown once, at creation

    body = json.dumps({"id": "INC-1", "text": "grüße"}).encode()
    accepted = _send(client, made["url"], body, [made["secret"]])
    assert accepted.status_code == 202, accepted.text
    job = client.get(f"/api/v1/jobs/{accepted.json()['job_id']}").json()
    assert job["parameters"] == {"ticket": {"id": "INC-1", "text": "grüße"}} and job["state"] == "Queued"

    # Neither the URL token nor the secret is in the database.
    token = made["url"].rsplit("/", 1)[1]
    with db.session() as session:
        row = session.scalars(select(Webhook)).one()
        stored = json.dumps([str(getattr(row, c.name)) for c in Webhook.__table__.columns])
    assert token not in stored and made["secret"] not in stored


def test_every_refusal_is_the_same_404(app_client: tuple[TestClient, Database]) -> None:
    client, db = app_client
    made = _create(client)
    url, secret = made["url"], made["secret"]
    body = b'{"id": "INC-2"}'
    unknown = _send(client, url[:-4] + "AAAA", body, [secret])
    first = _send(client, url, body, [secret], t=1_800_000_000 - 10**6)  # outside the window
    answers = {
        "unknown": unknown,
        "unsigned": _send(client, url, body, None),
        "bad": _send(client, url, body, ["credo_whsec_wrong"]),
        "stale": first,
    }
    t = int(time.time())
    assert _send(client, url, body, [secret], t=t).status_code == 202
    answers["replayed"] = _send(client, url, body, [secret], t=t)
    client.post("/api/v1/webhooks/ticket/disable")
    answers["disabled"] = _send(client, url, b'{"id": "INC-3"}', [secret])
    client.post("/api/v1/webhooks/ticket/enable")
    with db.session() as session:
        session.execute(text("UPDATE webhooks SET expires_at = :t"), {"t": "2000-01-01 00:00:00+00:00"})
    answers["expired"] = _send(client, url, b'{"id": "INC-4"}', [secret])
    for why, answer in answers.items():
        assert answer.status_code == 404, why
        assert answer.content == unknown.content, why
        assert answer.headers["content-type"] == unknown.headers["content-type"], why

    outcomes = [(r["actor"], r["details"].get("result"), r["outcome"])
                for r in client.get("/api/v1/audit-log").json() if r["action"] == "hook.call"]  # fmt: skip
    # The unknown URL is not recorded; the others are, by outcome.
    assert outcomes == [
        ("webhook:ticket", "replayed", "failed"),  # the stale timestamp
        ("webhook:ticket", "unsigned", "failed"),
        ("webhook:ticket", "bad-signature", "failed"),
        ("webhook:ticket", "ok", "ok"),
        ("webhook:ticket", "replayed", "failed"),
        ("webhook:ticket", "disabled", "failed"),
        ("webhook:ticket", "expired", "failed"),
    ]
    metrics = client.get("/metrics").text
    assert 'credo_webhook_calls_total{outcome="replayed",webhook="ticket"} 2.0' in metrics


def test_rate_limit_body_cap_and_schema(app_client: tuple[TestClient, Database]) -> None:
    client, db = app_client
    made = _create(client, rate_burst=2, rate_per_minute=1)
    url, secret = made["url"], made["secret"]
    for i in range(2):
        assert _send(client, url, json.dumps({"n": i}).encode(), [secret]).status_code == 202
    limited = _send(client, url, b'{"n": 3}', [secret])
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    big = b'{"x": "' + b"a" * (512 * 1024) + b'"}'
    assert _send(client, url, big, [secret]).status_code == 413
    assert _send(client, url[:-4] + "AAAA", big, None).status_code == 413
    # The gate refused both before the route ran: nothing names a webhook, nothing is recorded.
    assert [
        r["details"]["status"] for r in client.get("/api/v1/audit-log").json() if r["action"] == "hook.call"
    ] == [202, 202, 429]
    # A signed body that does not fit the runbook's schema: a 422 to the signer, no job.
    made2 = _create(client, name="strict")
    wrong = _send(client, made2["url"], b'"just text"', [made2["secret"]])
    assert wrong.status_code == 422 and "ticket" in wrong.json()["title"]
    with db.session() as session:
        assert len(session.scalars(select(Job)).all()) == 2


def test_rotation_keeps_the_url_and_accepts_both_during_the_overlap(
    app_client: tuple[TestClient, Database],
) -> None:
    client, _ = app_client
    made = _create(client)
    rotated = client.post("/api/v1/webhooks/ticket/rotate", params={"overlap": 3600}).json()
    new = rotated["secret"]
    assert new != made["secret"] and rotated["url"] is None and rotated["previous_until"]
    assert _send(client, made["url"], b'{"a": 1}', [made["secret"]]).status_code == 202
    assert _send(client, made["url"], b'{"a": 2}', [new]).status_code == 202
    assert _send(client, made["url"], b'{"a": 3}', [made["secret"], new]).status_code == 202
    client.post("/api/v1/webhooks/ticket/rotate", params={"overlap": 0})
    assert _send(client, made["url"], b'{"a": 4}', [new]).status_code == 404


def test_the_cli(sqlite_server: Server, lab_settings: LabSettings) -> None:
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    create_runbook(sqlite_server, "intake", "print(1)\n", PARAMS)

    def credo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CREDO, "webhook", *args], env=sqlite_server.env(), capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    made = credo("create", "ticket", "--runbook", "intake", "--group", "tier1", "--parameter", "ticket",
                 "--expires", "30d")  # fmt: skip
    assert made.returncode == 0, made.stderr
    url = made.stdout.split("url:", 1)[1].split()[0]
    secret = made.stdout.split("secret:", 1)[1].split()[0]
    assert url.startswith(f"{sqlite_server.url}/api/v1/hooks/") and "shown this once" in made.stderr
    body = b'{"id": "INC-9"}'
    sent = httpx.post(
        url, content=body, headers={SIGNATURE_HEADER: signature_header([secret], int(time.time()), body)}
    )
    assert sent.status_code == 202, sent.text
    listed = credo("list")
    assert "ticket" in listed.stdout and secret not in listed.stdout and url not in listed.stdout
    rotated = credo("rotate", "ticket", "--overlap", "1h")
    assert rotated.returncode == 0 and "secret: credo_whsec_" in rotated.stdout
    bad = credo("create", "x", "--runbook", "intake", "--group", "tier1", "--parameter", "nope")
    assert bad.returncode == 2 and bad.stderr.startswith(
        "credo: error: runbook 'intake' declares no parameter"
    )
    assert credo("delete", "ticket").returncode == 0
