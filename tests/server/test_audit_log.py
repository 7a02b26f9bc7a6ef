"""The audit log wired in: every state-changing call recorded by one middleware, chained, exported.

Fast lane: the app in process (FastAPI TestClient) on SQLite and on the private PostgreSQL
cluster. Real lane: `credo server` and `credo audit-log export` as processes.
"""

from __future__ import annotations

import base64
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from credo.automation.auditlog import GENESIS, AuditEntry, AuditOutcome, canonical, from_json_line, verify
from credo.defaults import AUDIT_LINK_INTERVAL
from credo.server import audit, clock
from credo.server.app import ServerConfig, create_app
from credo.server.database import Database, after_commit, sqlite_url
from tests.server.conftest import Server, fresh_pg_database
from tests.support.identity import CREDO

RUNBOOK = {
    "name": "hello",
    "type": "python3",
    "content": base64.b64encode(b"print('hi')\n").decode(),
    "parameters": [],
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "data")
    return fresh_pg_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    app = create_app(ServerConfig(data_dir=tmp_path / "data", database_url=database_url))
    token = (tmp_path / "data" / "admin.token").read_text().strip()
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def _records(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/audit-log", params=params)
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()
    return records


def _chain(records: list[dict[str, Any]]) -> Any:
    return verify([from_json_line(canonical(r).decode()) for r in records])


def test_state_changing_calls_are_recorded_with_who_where_what_and_outcome(client: TestClient) -> None:
    assert client.post("/api/v1/runbooks", json=RUNBOOK).status_code == 201
    assert client.post("/api/v1/runbooks/hello/publish").status_code == 200
    # Denied by the gate: no credentials.
    assert client.post("/api/v1/runbooks/hello/publish", headers={"Authorization": ""}).status_code == 401
    # Allowed, then failed: no such group.
    bad = client.post("/api/v1/jobs", json={"runbook": "hello", "group": "nope", "parameters": {}})
    assert bad.status_code == 404
    assert client.delete("/api/v1/runbooks/hello").status_code == 204
    # Reads and unknown paths are not recorded.
    assert client.get("/api/v1/runbooks").status_code == 200
    assert client.post("/api/v1/no-such-thing").status_code == 404

    records = _records(client)
    seen = [(r["actor"], r["action"], r["target"], r["outcome"], r["details"]["status"]) for r in records]
    assert seen == [
        ("admin", "runbook.create", "runbook", "ok", 201),
        ("admin", "runbook.publish", "runbook/hello", "ok", 200),
        ("anonymous", "runbook.publish", "runbook/hello", "denied", 401),
        ("admin", "job.start", "job", "failed", 404),
        ("admin", "runbook.delete", "runbook/hello", "ok", 204),
    ]
    assert {r["source"] for r in records} == {"testclient"}  # the peer's address, as the server sees it
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    result = _chain(records)
    assert result.ok and result.count == 5 and result.anchor == GENESIS


def test_a_job_start_is_recorded_with_its_job_in_the_job_s_own_transaction(client: TestClient) -> None:
    """A start appends its record where it inserts the job (audit.record_in): once, naming the job;
    an idempotent repeat is recorded as the 200 it answered."""
    group = {"name": "tier1", "local_user": "credo-runner", "workers": ["WORKER1$@EXAMPLE.TEST"]}
    assert client.post("/api/v1/groups", json=group).status_code == 201
    assert client.post("/api/v1/runbooks", json=RUNBOOK).status_code == 201
    assert client.post("/api/v1/runbooks/hello/publish").status_code == 200
    body = {"runbook": "hello", "group": "tier1", "parameters": {}, "idempotency_key": "ticket-7"}
    first = client.post("/api/v1/jobs", json=body)
    again = client.post("/api/v1/jobs", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    job = first.json()["id"]
    starts = [r for r in _records(client) if r["action"] == "job.start"]
    assert [(r["target"], r["outcome"], r["details"]) for r in starts] == [
        (f"job/{job}", "ok", {"method": "POST", "status": 201, "runbook": "hello", "group": "tier1"}),
        (f"job/{job}", "ok", {"method": "POST", "status": 200, "runbook": "hello", "group": "tier1"}),
    ]
    assert _chain(_records(client)).ok


def test_a_job_end_is_recorded_with_the_worker_s_report_in_its_transaction(client: TestClient) -> None:
    """A finish report appends its record in the report's own transaction: once, naming the job
    and how it ended; a stale report (the lease was taken over) is recorded as the 409 it got."""
    from credo.server import queue

    principal = "WORKER1$@EXAMPLE.TEST"
    group = {"name": "tier1", "local_user": "credo-runner", "workers": [principal]}
    assert client.post("/api/v1/groups", json=group).status_code == 201
    assert client.post("/api/v1/runbooks", json=RUNBOOK).status_code == 201
    assert client.post("/api/v1/runbooks/hello/publish").status_code == 200
    job = client.post("/api/v1/jobs", json={"runbook": "hello", "group": "tier1"}).json()["id"]
    state = client.app.state.credo  # type: ignore[attr-defined]
    with state.db.session() as session:
        worker, _ = queue.register_worker(session, principal, "tier1", "worker1", 1, "instance-1")
        worker_id = worker.id
    session_auth = {"Authorization": f"Bearer {state.sessions.issue(principal)}"}
    claimed = client.post(f"/api/v1/workers/{worker_id}/claim", params={"wait": 0}, headers=session_auth)
    lease = claimed.json()["jobs"][0]["lease_token"]
    report = {
        "lease_token": lease,
        "exit_code": 0,
        "reason": None,
        "stopped": False,
        "handback": False,
        "chunks": [],
    }
    path = f"/api/v1/workers/{worker_id}/jobs/{job}/finish"
    assert (
        client.post(path, json=report, params={"claim": 1}, headers=session_auth).json()["state"]
        == "Completed"
    )
    stale = client.post(path, json=report | {"lease_token": lease + 1}, headers=session_auth)
    assert stale.status_code == 409
    ends = [r for r in _records(client) if r["actor"] == principal]
    assert [(r["target"], r["outcome"], r["details"]["status"]) for r in ends] == [
        (f"job/{job}", "ok", 200),
        (f"worker/{worker_id}/{job}", "failed", 409),
    ]
    assert ends[0]["details"]["state"] == "Completed"
    assert _chain(_records(client)).ok


def test_a_hook_after_commit_runs_once_committed_and_never_after_a_rollback(tmp_path: Path) -> None:
    """What record_in relies on to know its record is in the log (Database.after_commit)."""
    db = Database(sqlite_url(tmp_path))
    db.upgrade()
    ran: list[str] = []
    with db.session() as session:
        after_commit(session, lambda: ran.append("committed"))
        assert ran == []
    with pytest.raises(RuntimeError), db.session() as session:
        after_commit(session, lambda: ran.append("rolled back"))
        raise RuntimeError("the route failed")
    with db.session() as session:
        pass
    assert ran == ["committed"]


def test_pages_and_since(client: TestClient) -> None:
    for i in range(5):
        client.post("/api/v1/runbooks", json=RUNBOOK | {"name": f"rb{i}"})
    first = _records(client, limit=2)
    rest = _records(client, after=first[-1]["seq"])
    assert [r["seq"] for r in first + rest] == [1, 2, 3, 4, 5]
    later = _records(client, since=rest[0]["time"])
    assert [r["seq"] for r in later] == [3, 4, 5]
    assert (
        verify([from_json_line(canonical(r).decode()) for r in later], anchor=None).anchor
        == first[-1]["hash"]
    )


def test_the_audit_log_is_admin_only(client: TestClient) -> None:
    assert client.get("/api/v1/audit-log", headers={"Authorization": ""}).status_code == 401


def test_concurrent_writers_on_two_engines_keep_one_chain(database_url: str, tmp_path: Path) -> None:
    """Two servers' engines appending at once (threads, separate connections): no fork, no gap."""
    (tmp_path / "data").mkdir(exist_ok=True)
    first = Database(database_url)
    first.upgrade()
    second = Database(database_url)
    errors: list[BaseException] = []

    def writer(db: Database, name: str) -> None:
        try:
            for i in range(15):
                entry = AuditEntry(
                    clock.now(), "admin", "127.0.0.1", "job.start", f"job/{name}{i}", AuditOutcome.OK
                )
                audit.write(db, entry)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(db, n)) for db, n in ((first, "a"), (second, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    with first.session() as session:
        found = audit.records(session, None, 0, 1000)
    assert [r.seq for r in found] == list(range(1, 31))
    assert verify(found).ok
    first.engine.dispose()
    second.engine.dispose()


def test_postgresql_appends_unchained_and_linkers_racing_writers_keep_one_chain(
    postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL: a call's record is committed unchained (no lock: issue 16 point 3); linkers in
    two processes' engines chain them in batches while writers go on: one chain, no gap, nothing
    left pending, each record once."""
    url = fresh_pg_database(postgres_url)
    first = Database(url)
    first.upgrade()
    second = Database(url)
    writing = threading.Event()
    writing.set()
    errors: list[BaseException] = []
    count = 2 * (audit.LINK_BATCH // 2 + 150)  # more than one batch for a linker to find

    def writer(db: Database, name: str) -> None:
        try:
            for i in range(count // 2):
                entry = AuditEntry(
                    clock.now(), "admin", "127.0.0.1", "job.start", f"job/{name}{i}", AuditOutcome.OK
                )
                with db.session() as session:
                    audit.append_in(session, db.dialect, entry)
        except BaseException as exc:
            errors.append(exc)

    def linker(db: Database) -> None:
        try:
            while writing.is_set():
                with db.session() as session:
                    audit.link_in(session, 50)
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(db, n)) for db, n in ((first, "a"), (second, "b"))]
    linkers = [threading.Thread(target=linker, args=(db,)) for db in (first, second)]
    for t in (*writers, *linkers):
        t.start()
    for t in writers:
        t.join(timeout=120)
    writing.clear()
    for t in linkers:
        t.join(timeout=60)
    assert not errors, errors
    with psycopg.connect(url) as conn:
        pending = conn.execute("SELECT count(*) FROM audit_pending").fetchone()
        chained = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    assert pending is not None and chained is not None and pending[0] + chained[0] == count
    with first.session() as session:  # a read chains the rest first
        found = audit.records(session, None, 0, audit.LINK_BATCH * 2)
    assert [r.seq for r in found] == list(range(1, count + 1))
    assert verify(found).ok
    targets = [r.entry.target for r in found]
    assert len(set(targets)) == count
    # Each writer's records are chained in the order it wrote them (ids are given at insert).
    for name in ("a", "b"):
        assert [t for t in targets if t.startswith(f"job/{name}")] == [
            f"job/{name}{i}" for i in range(count // 2)
        ]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM audit_pending").fetchone() == (0,)
    first.engine.dispose()
    second.engine.dispose()


def test_a_server_on_postgresql_chains_pending_records_by_itself(postgres_url: str, tmp_path: Path) -> None:
    """Without a read of the log, each server process links what was appended, every
    AUDIT_LINK_INTERVAL: the pending table does not grow."""
    url = fresh_pg_database(postgres_url)
    app = create_app(ServerConfig(data_dir=tmp_path / "data", database_url=url))
    token = (tmp_path / "data" / "admin.token").read_text().strip()
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        for i in range(3):
            assert client.post("/api/v1/runbooks", json=RUNBOOK | {"name": f"rb{i}"}).status_code == 201
        deadline = time.monotonic() + 10 * AUDIT_LINK_INTERVAL
        while time.monotonic() < deadline:
            with psycopg.connect(url) as conn:
                if conn.execute("SELECT count(*) FROM audit_log").fetchone() == (3,):
                    break
            time.sleep(0.1)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (3,)
            assert conn.execute("SELECT count(*) FROM audit_pending").fetchone() == (0,)


def test_postgresql_refuses_update_delete_and_truncate(postgres_url: str, tmp_path: Path) -> None:
    url = fresh_pg_database(postgres_url)
    db = Database(url)
    db.upgrade()
    audit.write(
        db, AuditEntry(clock.now(), "admin", "127.0.0.1", "runbook.create", "runbook", AuditOutcome.OK)
    )
    with db.session() as session:
        assert audit.link_in(session) == 1
    db.engine.dispose()
    for statement in (
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            conn.execute(statement)
        assert "append-only" in str(caught.value)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT actor FROM audit_log").fetchall() == [("admin",)]


# -- real lane: `credo server` and `credo audit-log export` ------------------------------------------


def _export(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CREDO, "audit-log", "export", *args], env=server.env(), capture_output=True, text=True, timeout=60
    )


def test_export_verifies_the_chain_and_fails_on_a_changed_record(sqlite_server: Server) -> None:
    for i in range(3):
        assert sqlite_server.api("POST", "/runbooks", json=RUNBOOK | {"name": f"rb{i}"}).status_code == 201

    ok = _export(sqlite_server)
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert len(lines) == 3
    records = [from_json_line(line) for line in lines]
    assert records[0].entry.source == "127.0.0.1"
    assert "3 audit records, chain verified" in ok.stderr

    # SQLite has no trigger: someone with the file rewrites history; the chain shows it.
    with sqlite3.connect(sqlite_server.data_dir / "credo.db") as conn:
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    broken = _export(sqlite_server)
    assert broken.returncode == 1
    assert (
        "credo: error: audit log chain broken: seq 2: hash does not match the record (changed)"
        in broken.stderr
    )
    assert "credo: hint:" in broken.stderr
    assert "Traceback" not in broken.stderr
    assert len(broken.stdout.splitlines()) == 3  # written in full, to be examined

    bad = _export(sqlite_server, "--since", "yesterday")
    assert bad.returncode == 2 and "credo: error: --since 'yesterday' is not an ISO 8601 time" in bad.stderr
