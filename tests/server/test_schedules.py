"""Schedules wired in: the API and CLI, the scheduler's tick (missed runs per policy, once), and
exactly-once across two real `credo server` processes on one PostgreSQL."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from credo.lab import LabSettings
from credo.server import audit, scheduling
from credo.server.app import ServerConfig, create_app
from credo.server.clock import now
from credo.server.database import Database, sqlite_url
from credo.server.models import AuditLog, Job, Schedule, ScheduleFire
from tests.server.conftest import (
    RUNNER,
    Server,
    _make_server,
    create_group,
    create_runbook,
    fresh_pg_database,
)
from tests.support.identity import CREDO

REALM_WORKER = "WORKER1$@CORP.EXAMPLE.TEST"
PARAMS = [{"name": "days", "type": "int", "required": True}]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "data")
    return fresh_pg_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def app_client(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Database]]:
    # A scheduler interval of an hour: the tests call tick themselves, at the times they choose.
    config = ServerConfig(data_dir=tmp_path / "data", database_url=database_url, schedule_interval=3600)
    app = create_app(config)
    token = (tmp_path / "data" / "admin.token").read_text().strip()
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        runbook = {"name": "cleanup", "type": "python3", "content": base64.b64encode(b"print(1)\n").decode(),
                   "parameters": PARAMS}  # fmt: skip
        assert client.post("/api/v1/runbooks", json=runbook).status_code == 201
        assert client.post("/api/v1/runbooks/cleanup/publish").status_code == 200
        group = {"name": "tier1", "run_as": None, "local_user": RUNNER, "workers": [REALM_WORKER]}
        assert client.post("/api/v1/groups", json=group).status_code == 201
        yield client, app.state.credo.db


def _create(client: TestClient, **extra: Any) -> Any:
    body = {"name": "nightly", "runbook": "cleanup", "group": "tier1", "cron": "30 2 * * *",
            "timezone": "Europe/Berlin", "parameters": {"days": 30}} | extra  # fmt: skip
    return client.post("/api/v1/schedules", json=body)


def test_create_show_pause_resume_delete(app_client: tuple[TestClient, Database]) -> None:
    client, _ = app_client
    created = _create(client)
    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["enabled"] and shown["missed_runs"] == "skip" and shown["missed"] == 0
    # The next runs: 02:30 in Berlin, whatever the offset (00:30 or 01:30 UTC).
    assert len(shown["next_runs"]) == 5
    assert all(at[11:16] in ("00:30", "01:30") for at in shown["next_runs"]), shown["next_runs"]
    assert shown["next_fire"] == shown["next_runs"][0]

    assert [s["name"] for s in client.get("/api/v1/schedules").json()] == ["nightly"]
    paused = client.post("/api/v1/schedules/nightly/pause").json()
    assert not paused["enabled"] and paused["next_fire"] is None
    resumed = client.post("/api/v1/schedules/nightly/resume").json()
    assert resumed["enabled"] and resumed["next_fire"] == shown["next_fire"]
    assert client.delete("/api/v1/schedules/nightly").status_code == 204
    assert client.get("/api/v1/schedules/nightly").status_code == 404

    actions = [r["action"] for r in client.get("/api/v1/audit-log").json()][-4:]
    assert actions == ["schedule.create", "schedule.pause", "schedule.resume", "schedule.delete"]


@pytest.mark.parametrize(
    ("extra", "status", "title"),
    [
        ({"cron": "*/10 * * * * *"}, 422, "has a seconds field"),
        ({"timezone": "Mars/Olympus"}, 422, "unknown time zone 'Mars/Olympus'"),
        ({"parameters": {}}, 422, "days"),
        ({"runbook": "nope"}, 404, "runbook 'nope' does not exist"),
        ({"missed_runs": "always"}, 422, ""),
    ],
)
def test_bad_schedules_are_refused(
    app_client: tuple[TestClient, Database], extra: dict[str, Any], status: int, title: str
) -> None:
    client, _ = app_client
    refused = _create(client, **extra)
    assert refused.status_code == status, refused.text
    assert title in refused.json()["title"]


def _backdate(db: Database, name: str, hours: int) -> None:
    with db.session() as session:
        row = session.scalars(select(Schedule).where(Schedule.name == name)).one()
        row.created_at = now() - timedelta(hours=hours, minutes=1)
        row.next_fire = scheduling._next(row, row.created_at)


@pytest.mark.parametrize(("policy", "jobs"), [("skip", 0), ("run-once", 1)])
def test_after_downtime_missed_fires_are_recorded_and_run_per_policy(
    app_client: tuple[TestClient, Database], policy: str, jobs: int
) -> None:
    client, db = app_client
    assert (
        _create(client, name="hourly", cron="0 * * * *", timezone="UTC", missed_runs=policy).status_code
        == 201
    )
    _backdate(db, "hourly", 5)  # the server was "down" five hours
    with db.session() as session:
        fired = scheduling.tick(session, db.dialect)
    assert [(f.schedule, f.missed, f.started) for f in fired] == [("hourly", 5, jobs)]
    with db.session() as session:  # once: a second tick finds nothing
        assert scheduling.tick(session, db.dialect) == []
        fires = session.scalars(select(ScheduleFire).order_by(ScheduleFire.at)).all()
        assert len(fires) == 5 and all(f.missed for f in fires)
        assert [f.run for f in fires] == [False] * (5 - jobs) + [True] * jobs
        started = session.scalars(select(Job)).all()
        assert len(started) == jobs
        if jobs:
            assert started[0].parameters == {"days": 30} and fires[-1].job_id == started[0].id
        audit.link_in(session)  # PostgreSQL: chain what is pending (credo.server.audit)
        audited = session.scalars(select(AuditLog.action).where(AuditLog.actor == "schedule:hourly")).all()
        assert audited == ["schedule.miss"] * 5
    shown = client.get("/api/v1/schedules/hourly").json()
    assert shown["missed"] == 5
    assert [f["missed"] for f in shown["fires"]] == [True] * 5


def test_a_paused_schedule_misses_nothing(app_client: tuple[TestClient, Database]) -> None:
    client, db = app_client
    assert _create(client, name="hourly", cron="0 * * * *", timezone="UTC").status_code == 201
    _backdate(db, "hourly", 3)
    client.post("/api/v1/schedules/hourly/pause")
    client.post("/api/v1/schedules/hourly/resume")
    with db.session() as session:
        assert scheduling.tick(session, db.dialect) == []
    assert client.get("/api/v1/schedules/hourly").json()["missed"] == 0


def test_the_cli(sqlite_server: Server, lab_settings: LabSettings) -> None:
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    create_runbook(sqlite_server, "cleanup", "print(1)\n", PARAMS)

    def credo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CREDO, "schedule", *args], env=sqlite_server.env(), capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    made = credo("create", "nightly", "--runbook", "cleanup", "--group", "tier1", "--cron", "30 2 * * *",
                 "--timezone", "Europe/Berlin", "-p", "days=30")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.count("  next   ") == 5
    assert "nightly" in credo("list").stdout
    assert credo("pause", "nightly").stdout.strip() == "schedule nightly: paused"
    assert "paused" in credo("list").stdout
    assert credo("resume", "nightly").returncode == 0
    bad = credo("create", "x", "--runbook", "cleanup", "--group", "tier1", "--cron", "61 * * * *")
    assert bad.returncode == 2, bad.stderr
    assert (
        bad.stderr.startswith("credo: error: cron expression '61 * * * *'") and "credo: hint:" in bad.stderr
    )
    assert credo("delete", "nightly").returncode == 0
    gone = credo("show", "nightly")
    assert gone.returncode == 6 and "credo: error: schedule 'nightly' does not exist" in gone.stderr


def test_two_servers_on_one_postgresql_fire_each_schedule_once(
    tmp_path: Path, postgres_url: str, server_keytab: Path, lab_settings: LabSettings, runner_user: str
) -> None:
    url = fresh_pg_database(postgres_url)
    servers = [_make_server(tmp_path / name, url, server_keytab, lab_settings) for name in ("a", "b")]
    for srv in servers:
        (tmp_path / srv.data_dir.parent.name).mkdir(exist_ok=True)
    first, second = servers
    first.start()
    second.start()
    try:
        create_group(first, "tier1", ["worker1"], lab_settings.realm)
        create_runbook(first, "cleanup", "print(1)\n", PARAMS)
        count = 12
        for i in range(count):
            body = {"name": f"s{i}", "runbook": "cleanup", "group": "tier1", "cron": "* * * * *",
                    "parameters": {"days": i}, "missed_runs": "run-once", "enabled": False}  # fmt: skip
            assert first.api("POST", "/schedules", json=body).status_code == 201
        # Both servers are ticking; make every schedule due at once, ten minutes in arrears.
        with psycopg.connect(url) as conn:
            conn.execute(
                "UPDATE schedules SET enabled = true, created_at = now() - interval '10 minutes 30 seconds',"
                " next_fire = date_trunc('minute', now() - interval '10 minutes')"
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            shown = first.api("GET", "/schedules").json()
            if all(s["last_fire"] and s["next_fire"] > s["last_fire"] and s["missed"] for s in shown):
                break
            time.sleep(0.5)
        time.sleep(6)  # one more tick of each server: nothing more may happen
        with psycopg.connect(url) as conn:
            # Per schedule: missed fires, runs among them, and on-time fires (a minute may pass).
            per_schedule = conn.execute(
                "SELECT schedule_id, count(*) FILTER (WHERE missed), count(*) FILTER (WHERE missed AND run),"
                " count(*) FILTER (WHERE NOT missed AND run) FROM schedule_fires GROUP BY schedule_id"
            ).fetchall()
            runs = conn.execute(
                "SELECT count(*), count(DISTINCT job_id) FROM schedule_fires WHERE run"
            ).fetchone()
            jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()
        assert len(per_schedule) == count
        for _, missed, missed_runs, on_time in per_schedule:
            # run-once: the window's on-time fire runs, else its latest missed one; a minute boundary
            # during the test may add one on-time run.
            assert missed in (9, 10, 11) and 1 <= missed_runs + on_time <= 2 and missed_runs <= 1, (
                per_schedule
            )
        # Each run started one job, and no job was started twice or without its fire.
        assert runs is not None and jobs is not None and runs[0] == runs[1] == jobs[0]
        for srv in servers:
            assert "schedule tick failed" not in srv.log.read_text()
    finally:
        for srv in servers:
            srv.stop()
