"""Fast lane (FastAPI TestClient on SQLite): the issuer's routes, the group settings, the claim
answer's identity and the job token endpoint with each of its refusals. Tokens are verified with
PyJWT against the JWKS the server publishes, never with credo's code."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest

from credo.server.models import Job
from tests.oidc.conftest import AZURE, GCP, ISSUER, WORKER1, WORKER2, World, make_world


def enable(world: World, group: str = "tier1", **extra: object) -> dict[str, object]:
    response = world.api(
        "PATCH", f"/groups/{group}", json={"audiences": [AZURE, "sts.amazonaws.com"]} | extra
    )
    assert response.status_code == 200, response.text
    identity: dict[str, object] = response.json()["identity"]
    return identity


def verify(world: World, token: str, audience: str = AZURE) -> dict[str, object]:
    jwks = world.client.get("/credo/.well-known/jwks.json").json()
    kid = pyjwt.get_unverified_header(token)["kid"]
    key = next(k for k in pyjwt.PyJWKSet.from_dict(jwks).keys if k.key_id == kid)
    payload: dict[str, object] = pyjwt.decode(
        token, key.key, algorithms=["RS256"], audience=audience, issuer=ISSUER,
        options={"require": ["exp", "nbf", "iat", "jti", "sub", "iss", "aud"]},
    )  # fmt: skip
    return payload


def test_the_documents_are_public_cacheable_and_under_the_issuer_path(world: World) -> None:
    for prefix in ("", "/credo"):
        response = world.client.get(f"{prefix}/.well-known/openid-configuration")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=300"
        document = response.json()
        assert document["issuer"] == ISSUER
        assert document["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
        assert document["response_types_supported"] == ["id_token"]
        assert document["subject_types_supported"] == ["public"]
        jwks = world.client.get(f"{prefix}/.well-known/jwks.json").json()
        assert len(jwks["keys"]) == 2 and {k["use"] for k in jwks["keys"]} == {"sig"}


def test_a_server_without_issuer_serves_no_documents_and_no_tokens(tmp_path: Path) -> None:
    for world in make_world(tmp_path, issuer=None):
        response = world.client.get("/.well-known/openid-configuration")
        assert response.status_code == 404 and "--oidc-issuer" in response.json()["hint"]
        enable(world)
        worker = world.worker(WORKER1, "tier1")
        job = world.running_job("tier1", worker)
        assert job["answer"]["identity"] is None
        refused = world.token(worker, job["job_id"], job["lease_token"])
        assert refused.status_code == 403 and "issues no tokens" in refused.json()["title"]


def test_group_settings_round_trip_and_reach_the_claim_answer(world: World) -> None:
    worker = world.worker(WORKER1, "tier1")
    assert world.running_job("tier1", worker)["answer"]["identity"] is None  # no audiences: no tokens
    identity = enable(
        world,
        azure_tenant_id="11111111-2222-3333-4444-555555555555",
        azure_client_id="66666666-7777-8888-9999-000000000000",
        aws_role_arn="arn:aws:iam::123456789012:role/credo-jobs",
        gcp_audience=GCP,
        token_lifetime=900,
    )
    assert identity["audiences"] == [AZURE, "sts.amazonaws.com", GCP]
    shown = world.api("GET", "/groups/tier1").json()["identity"]
    assert shown == identity
    answer = world.running_job("tier1", worker)["answer"]
    assert answer["identity"] == identity
    assert answer["identity"]["azure_authority_host"] == "https://login.microsoftonline.com"
    # null clears an optional setting; the rest stays.
    cleared = world.api("PATCH", "/groups/tier1", json={"aws_role_arn": None}).json()["identity"]
    assert cleared["aws_role_arn"] is None and cleared["token_lifetime"] == 900


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"azure_tenant_id": "not-a-guid", "azure_client_id": "66666666-7777-8888-9999-000000000000"},
         "azure_tenant_id", "not a GUID"),
        ({"aws_role_arn": "arn:aws:iam::1:role/x"}, "aws_role_arn", "not an IAM role ARN"),
        ({"gcp_audience": "projects/1/providers/x"}, "gcp_audience", "not a workload identity provider"),
        ({"token_lifetime": 7200}, "token_lifetime", "outside 60..3600"),
        ({"audiences": None}, "audiences", "may not be null"),
    ],
)  # fmt: skip
def test_bad_settings_are_422_naming_the_field(
    world: World, body: dict[str, object], field: str, words: str
) -> None:
    response = world.api("PATCH", "/groups/tier1", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert words in problem["title"] and problem["title"].startswith(field)
    assert world.api("GET", "/groups/tier1").json()["identity"]["audiences"] == []  # nothing half-applied


def test_a_running_job_gets_a_token_that_verifies_with_pyjwt(world: World) -> None:
    enable(world)
    worker = world.worker(WORKER1, "tier1")
    job = world.running_job("tier1", worker)
    response = world.token(worker, job["job_id"], job["lease_token"], gmsa_sid="S-1-5-21-1-2-3-1105")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer = response.json()
    assert set(answer) == {"token", "subject", "audience", "expires_at"}
    assert (answer["subject"], answer["audience"]) == ("credo:group:tier1", AZURE)
    claims = verify(world, answer["token"])
    assert claims["sub"] == "credo:group:tier1"
    assert claims["exp"] == int(datetime.fromisoformat(answer["expires_at"]).timestamp())
    assert claims["exp"] - claims["iat"] == 600  # type: ignore[operator]
    credo = claims["credo"]
    assert credo == {"group": "tier1", "job_id": job["job_id"], "runbook": "hello",
                     "runbook_sha256": job["content_hash"].removeprefix("sha256:"), "worker": WORKER1,
                     "gmsa_sid": "S-1-5-21-1-2-3-1105"}  # fmt: skip
    # Each token is new (jti), and the other allowed audience works too.
    again = world.token(worker, job["job_id"], job["lease_token"], audience="sts.amazonaws.com").json()
    assert verify(world, again["token"], "sts.amazonaws.com")["jti"] != claims["jti"]


def test_refusals(world: World) -> None:
    enable(world)
    enable(world, "tier2")
    one = world.worker(WORKER1, "tier1")
    two = world.worker(WORKER2, "tier1")
    other_group = world.worker(WORKER2, "tier2")
    job = world.running_job("tier1", one)
    job_id, lease = job["job_id"], job["lease_token"]

    def refused(response: object, status: int, words: str) -> None:
        assert response.status_code == status, response.text  # type: ignore[attr-defined]
        assert words in response.json()["title"]  # type: ignore[attr-defined]
        assert "token" not in response.json()  # type: ignore[attr-defined]

    # An audience the group does not list.
    refused(world.token(one, job_id, lease, audience="api://Other"), 403, "may not get tokens for audience")
    # Not this worker's lease: another worker of the same group, another group's worker, an old lease.
    refused(world.token(two, job_id, lease), 403, "is not running under lease")
    refused(world.token(other_group, job_id, lease), 403, "is not running under lease")
    refused(world.token(one, job_id, lease + 1), 403, "is not running under lease")
    # A runbook subject the group does not allow.
    refused(world.token(one, job_id, lease, runbook_subject=True), 403, "own subject")
    # No such job.
    refused(world.token(one, "no-such-job", 1), 404, "does not exist")
    # An expired lease.
    with world.app.state.credo.db.session() as session:
        session.get(Job, job_id).lease_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    refused(world.token(one, job_id, lease), 403, "lease has expired")
    # A finished job.
    other = world.running_job("tier1", one)
    finish = world.client.post(f"/api/v1/workers/{one[0]}/jobs/{other['job_id']}/finish", headers=one[1],
                               json={"lease_token": other["lease_token"], "exit_code": 0})  # fmt: skip
    assert finish.status_code == 200
    refused(world.token(one, other["job_id"], other["lease_token"]), 403, "is not running under lease")


def test_another_groups_subject_is_impossible(world: World) -> None:
    """The subject comes from the job's group, never from the request: a tier2 job gets tier2's."""
    enable(world, "tier2")
    worker = world.worker(WORKER2, "tier2")
    job = world.running_job("tier2", worker)
    answer = world.token(worker, job["job_id"], job["lease_token"], subject="credo:group:tier1",
                         group="tier1").json()  # fmt: skip
    assert answer["subject"] == "credo:group:tier2" == verify(world, answer["token"])["sub"]


def test_a_runbook_subject_when_the_group_allows_it_and_the_runbook_asks(world: World) -> None:
    """disable-user asks for its own subject; hello, in the same group, keeps the group's. The
    server decides from the runbook, whatever the worker sends."""
    content = base64.b64encode(b"print('off')\n").decode()
    created = world.api("POST", "/runbooks", json={"name": "disable-user", "content": content})
    assert created.status_code == 201 and created.json()["own_token_subject"] is False
    asked = world.api("PATCH", "/runbooks/disable-user", json={"own_token_subject": True})
    assert asked.status_code == 200 and asked.json()["own_token_subject"] is True
    assert world.api("POST", "/runbooks/disable-user/publish").status_code == 200
    worker = world.worker(WORKER1, "tier1")

    def subjects(refusal: str | None) -> dict[str, str]:
        found = {}
        for runbook in ("hello", "disable-user"):
            job = world.api("POST", "/jobs", json={"runbook": runbook, "group": "tier1"}).json()
            claim = world.client.post(f"/api/v1/workers/{worker[0]}/claim?wait=0", headers=worker[1]).json()
            lease = next(j["lease_token"] for j in claim["jobs"] if j["job_id"] == job["id"])
            answer = world.token(worker, job["id"], lease).json()
            found[runbook] = verify(world, answer["token"])["sub"]
            assert answer["subject"] == found[runbook]
            if runbook == "hello":  # a worker cannot get a runbook subject for a runbook that did not ask
                asking = world.token(worker, job["id"], lease, runbook_subject=True)
                if refusal:  # the group does not allow it: refused
                    assert asking.status_code == 403 and refusal in asking.json()["title"], asking.text
                else:  # it does: a worker from before 0010 asks for every job; the runbook's choice stands
                    assert asking.status_code == 200 and asking.json()["subject"] == found[runbook]
            else:  # nor the group's for one that did
                assert (
                    world.token(worker, job["id"], lease, runbook_subject=False).json()["subject"]
                    == found[runbook]
                )
        return found

    enable(world)  # the group does not allow it yet: both get the group's subject
    assert subjects("does not give runbooks") == {
        "hello": "credo:group:tier1",
        "disable-user": "credo:group:tier1",
    }
    enable(world, runbook_subjects=True)
    own = subjects(None)
    assert own == {"hello": "credo:group:tier1", "disable-user": "credo:group:tier1:runbook:disable-user"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"lease": "x", "audience": AZURE}, 422),
        ({"audience": AZURE}, 422),
        ({"lease": 1, "audience": "a" * 601}, 422),
        ({"lease": 1, "audience": AZURE, "gmsa_sid": "not-a-sid"}, 422),
        ({"lease": 1, "audience": AZURE, "pad": "x" * 5000}, 413),
    ],
)
def test_bad_token_requests(world: World, body: dict[str, object], status: int) -> None:
    enable(world)
    worker = world.worker(WORKER1, "tier1")
    job = world.running_job("tier1", worker)
    body = body | ({"lease": job["lease_token"]} if body.get("lease") == 1 else {})
    response = world.client.post(f"/api/v1/workers/{worker[0]}/jobs/{job['job_id']}/token", json=body,
                                 headers=worker[1])  # fmt: skip
    assert response.status_code == status, response.text


def test_the_token_routes_need_their_credentials(world: World) -> None:
    response = world.client.post("/api/v1/workers/1/jobs/x/token", json={"lease": 1, "audience": AZURE})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Negotiate"
    response = world.client.post("/api/v1/tokens", json={"group": "tier1", "audience": AZURE, "service": "x"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Negotiate"
    # The admin token is not a worker's session.
    response = world.client.post("/api/v1/workers/1/jobs/x/token", json={"lease": 1, "audience": AZURE},
                                 headers=world.admin)  # fmt: skip
    assert response.status_code == 401


def test_tokens_never_reach_the_logs_or_the_database(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    enable(world)
    worker = world.worker(WORKER1, "tier1")
    job = world.running_job("tier1", worker)
    tokens = [world.token(worker, job["job_id"], job["lease_token"]).json()["token"] for _ in range(3)]
    assert "token for job" in caplog.text  # the issuance is logged...
    # ... checkpoint the WAL so every row is in the main file, then look for any part of a token.
    with world.app.state.credo.db.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = b"".join(p.read_bytes() for p in world.data_dir.glob("credo.db*"))
    for token in tokens:
        _header, payload, signature = token.split(".")
        for part in (payload, signature):
            assert part not in caplog.text
            assert part.encode() not in stored


def test_migration_0010_keeps_every_jobs_subject(tmp_path: Path) -> None:
    """Before 0010 a group's runbook_subjects gave all its runbooks their own subject; after it,
    every runbook asks where some group allowed it, so no federated credential stops matching."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from credo.server.database import MIGRATIONS, sqlite_url

    for allowed in (True, False):
        url = sqlite_url(tmp_path / str(allowed))
        (tmp_path / str(allowed)).mkdir()
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        engine = create_engine(url)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0009")
            connection.execute(text(
                "INSERT INTO worker_groups (name, max_concurrent, allowed_workers, allow_system_user, created_at, "
                "token_audiences, token_lifetime, runbook_subjects) VALUES ('tier1', 4, '[]', 0, '2026-12-01', "
                f"'[]', 600, {int(allowed)})"
            ))  # fmt: skip
            connection.execute(text(
                "INSERT INTO runbooks (name, type, draft_content, draft_parameters, created_at, updated_at) "
                "VALUES ('disable-user', 'python3', x'00', '[]', '2026-12-01', '2026-12-01')"
            ))  # fmt: skip
            command.upgrade(config, "head")
            asks = connection.execute(text("SELECT own_token_subject FROM runbooks")).scalar_one()
        assert bool(asks) is allowed


def test_only_an_admin_chooses_a_runbooks_token_subject(world: World) -> None:
    """The subject decides which federated credentials match, so which cloud rights a runbook's
    jobs get: an author may write runbooks, not move them to or off their own subject."""
    made = world.api("POST", "/auth/tokens", json={"name": "writer", "expires": "1d", "role": "author"})
    assert made.status_code == 201, made.text
    author = {"Authorization": f"Bearer {made.json()['token']}"}
    content = base64.b64encode(b"print('x')\n").decode()

    def as_author(method: str, path: str, body: dict[str, Any]) -> Any:
        return world.client.request(method, f"/api/v1{path}", headers=author, json=body)

    assert as_author("POST", "/runbooks", {"name": "report", "content": content}).status_code == 201
    assert as_author("PATCH", "/runbooks/report", {"description": "weekly"}).status_code == 200
    for method, path, body in [
        ("POST", "/runbooks", {"name": "grab", "content": content, "own_token_subject": True}),
        ("PATCH", "/runbooks/report", {"own_token_subject": True}),
        ("PATCH", "/runbooks/hello", {"own_token_subject": False}),
    ]:
        refused = as_author(method, path, body)
        assert refused.status_code == 403, refused.text
    assert world.api("GET", "/runbooks/report").json()["own_token_subject"] is False
    assert world.api("GET", "/runbooks/grab").status_code == 404
    assert world.api("PATCH", "/runbooks/report", json={"own_token_subject": True}).status_code == 200
