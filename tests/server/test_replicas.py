"""Several server processes on one PostgreSQL (issue 16 point 1): a wake-up and a worker session
travel between them. In process: two apps, each with its own event loop (TestClient), on one
database of the session's private PostgreSQL cluster and one data dir, as replicas share them."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from credo.server import queue
from credo.server.app import ServerConfig, create_app
from credo.server.auth import SessionTokens
from tests.server.conftest import fresh_pg_database

PRINCIPAL = "WORKER1$@EXAMPLE.TEST"
RUNBOOK = {"name": "hello", "type": "python3", "content": base64.b64encode(b"print('hi')\n").decode()}


def _replicas(tmp_path: Path, postgres_url: str) -> tuple[FastAPI, FastAPI]:
    url = fresh_pg_database(postgres_url)
    data = tmp_path / "data"
    return create_app(ServerConfig(data_dir=data, database_url=url)), create_app(
        ServerConfig(data_dir=data, database_url=url)
    )


def _admin(app: FastAPI) -> dict[str, str]:
    data: Path = app.state.credo.config.data_dir
    return {"Authorization": f"Bearer {(data / 'admin.token').read_text().strip()}"}


def _listening(*apps: FastAPI) -> None:
    deadline = time.monotonic() + 10
    while not all(
        app.state.credo.wakeups is not None and app.state.credo.wakeups.listening.is_set() for app in apps
    ):
        assert time.monotonic() < deadline, "a replica is not listening for wake-ups"
        time.sleep(0.05)


def test_a_job_queued_through_one_replica_wakes_a_claim_waiting_on_another(
    tmp_path: Path, postgres_url: str
) -> None:
    one, other = _replicas(tmp_path, postgres_url)
    with TestClient(one) as first, TestClient(other) as second:
        admin = _admin(one)
        group = {"name": "tier1", "local_user": "credo-runner", "workers": [PRINCIPAL]}
        assert first.post("/api/v1/groups", json=group, headers=admin).status_code == 201
        assert first.post("/api/v1/runbooks", json=RUNBOOK, headers=admin).status_code == 201
        assert first.post("/api/v1/runbooks/hello/publish", headers=admin).status_code == 200
        with one.state.credo.db.session() as session:
            worker, _ = queue.register_worker(session, PRINCIPAL, "tier1", "worker1", 1, "instance-1")
            worker_id = worker.id
        # The worker signed in on the first replica; it long-polls the second one.
        session_token = one.state.credo.sessions.issue(PRINCIPAL)
        _listening(one, other)
        answer: dict[str, Any] = {}

        def claim() -> None:
            response = second.post(
                f"/api/v1/workers/{worker_id}/claim", params={"wait": 20},
                headers={"Authorization": f"Bearer {session_token}"},
            )  # fmt: skip
            answer["at"], answer["response"] = time.monotonic(), response

        waiting = threading.Thread(target=claim)
        waiting.start()
        time.sleep(1.0)  # the claim has looked once and waits
        assert "response" not in answer
        submitted = time.monotonic()
        job = first.post(
            "/api/v1/jobs", json={"runbook": "hello", "group": "tier1", "parameters": {}}, headers=admin
        )
        assert job.status_code == 201, job.text
        waiting.join(timeout=25)
        assert answer["response"].status_code == 200, answer["response"].text
        assert [j["job_id"] for j in answer["response"].json()["jobs"]] == [job.json()["id"]]
        # Without the wake-up the claim would have found it at its next look, 5 s after the first.
        assert answer["at"] - submitted < 1.0


def test_a_worker_session_holds_on_every_replica_and_across_restarts(tmp_path: Path) -> None:
    """Sessions are signed with the data dir's key: no replica keeps them, any verifies them."""
    key = tmp_path / "worker-session.key"
    token = SessionTokens(key).issue(PRINCIPAL)
    assert SessionTokens(key).principal(token) == PRINCIPAL  # another process, or after a restart
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    stranger = SessionTokens(tmp_path / "another.key")
    assert stranger.principal(token) is None  # another deployment's key
    forged = stranger.issue(PRINCIPAL)
    assert SessionTokens(key).principal(forged) is None
    header, payload, tag = token.split(".")
    assert SessionTokens(key).principal(f"{header}.{payload}.{tag[:-2]}AA") is None
    for junk in ("", "x", "a.b.c", token + "x"):
        assert SessionTokens(key).principal(junk) is None


def test_a_claim_skips_a_row_another_replica_holds_and_never_waits_on_it(
    tmp_path: Path, postgres_url: str
) -> None:
    """FOR UPDATE SKIP LOCKED: while another transaction (another replica's claim) holds the oldest
    queued job, a claim takes the next one at once instead of queueing behind the lock."""
    import psycopg

    url = fresh_pg_database(postgres_url)
    app = create_app(ServerConfig(data_dir=tmp_path / "data", database_url=url))
    with TestClient(app) as client:
        admin = _admin(app)
        group = {"name": "tier1", "local_user": "credo-runner", "workers": [PRINCIPAL]}
        assert client.post("/api/v1/groups", json=group, headers=admin).status_code == 201
        assert client.post("/api/v1/runbooks", json=RUNBOOK, headers=admin).status_code == 201
        assert client.post("/api/v1/runbooks/hello/publish", headers=admin).status_code == 200
        jobs = [
            client.post("/api/v1/jobs", json={"runbook": "hello", "group": "tier1"}, headers=admin).json()[
                "id"
            ]
            for _ in range(2)
        ]
        db = app.state.credo.db
        with db.session() as session:
            worker, _ = queue.register_worker(session, PRINCIPAL, "tier1", "worker1", 2, "instance-1")
        with psycopg.connect(url) as holder:
            held = holder.execute(
                "SELECT id FROM jobs WHERE state = 'Queued' ORDER BY created_at LIMIT 1 FOR UPDATE"
            ).fetchone()
            assert held is not None and held[0] == jobs[0]
            started = time.monotonic()
            with db.session() as session:
                session.execute(text("SET LOCAL lock_timeout = '2s'"))  # a wait would fail, not hang
                claimed = queue.claim_jobs(session, worker, 2, 30.0, db.dialect)
            assert [c.job_id for c in claimed] == [jobs[1]]
            assert time.monotonic() - started < 1.0
            holder.rollback()
        # Released: the next claim takes it.
        with db.session() as session:
            assert [c.job_id for c in queue.claim_jobs(session, worker, 2, 30.0, db.dialect)] == [jobs[0]]


def test_a_replica_on_a_migrated_database_does_not_load_alembic(tmp_path: Path) -> None:
    """head_revision (file names) is Alembic's head; a second start on the same database skips it."""
    import subprocess
    import sys

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from credo.server.database import MIGRATIONS, Database, head_revision, sqlite_url

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == head_revision()
    url = sqlite_url(tmp_path)
    Database(url).upgrade()
    assert Database(url).revision() == head_revision()
    probe = "import sys; from credo.server.database import Database; Database(sys.argv[1]).upgrade(); print('alembic' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, check=True).stdout
        == "False\n"
    )
