"""Fast lane: the gate's per-route matrix, in process (FastAPI TestClient on SQLite).

Every API route, as declared: no credentials -> 401 with the route's challenge, before its body
is read; one byte over its cap -> 413 and ``Connection: close``, from ``Content-Length`` and
from a chunked body alike. The real-socket, real-process checks are in test_gate_memory.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Route

from credo.server import limits
from credo.server.app import API, ServerConfig, create_app
from credo.server.database import sqlite_url
from credo.server.gate import Access, check_routes, declared_policy, guard

WORKER = "WORKER1$@CORP.EXAMPLE.TEST"
CHALLENGE = {
    Access.ADMIN: 'Negotiate, Bearer realm="credo"',
    Access.WORKER: "Negotiate",
    Access.NEGOTIATE: "Negotiate",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    data = tmp_path_factory.mktemp("gate")
    return create_app(ServerConfig(data_dir=data, database_url=sqlite_url(data)))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def admin_token(app: FastAPI) -> str:
    data_dir: Path = app.state.credo.config.data_dir
    return (data_dir / "admin.token").read_text().strip()


def api_routes(app: FastAPI) -> list[tuple[str, str, Route]]:
    """(method, a concrete path, route) for every route under the API."""
    found = []
    for route in app.router.routes:
        if isinstance(route, Route) and route.path.startswith(API):
            path = re.sub(r"\{worker_id\}", "1", route.path)
            path = re.sub(r"\{[a-z_]+\}", "x", path)
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    found.append((method, path, route))
    return found


def test_every_api_route_declares_its_access_and_cap(app: FastAPI) -> None:
    routes = api_routes(app)
    assert len(routes) >= 24
    for method, path, route in routes:
        policy = declared_policy(route)
        assert policy is not None, path
        if method in ("GET", "DELETE"):
            assert policy.max_body == limits.NO_BODY, f"{method} {path}"
    caps = {(m, r.path): declared_policy(r).max_body for m, _, r in routes}  # type: ignore[union-attr]
    assert caps[("POST", f"{API}/runbooks")] == limits.RUNBOOK_BODY == 4 * 1024 * 1024
    assert caps[("POST", f"{API}/jobs")] == limits.JOB_BODY == 1024 * 1024
    assert caps[("POST", f"{API}/workers/{{worker_id}}/jobs/{{job_id}}/output")] == limits.WORKER_REPORT_BODY
    assert caps[("POST", f"{API}/groups")] == limits.DEFAULT_BODY == 64 * 1024


def test_a_route_without_a_declaration_stops_the_server() -> None:
    app = FastAPI()

    @app.get(f"{API}/declared")
    @guard(Access.ADMIN)
    async def declared() -> None: ...

    @app.get(f"{API}/forgotten")
    async def forgotten() -> None: ...

    with pytest.raises(RuntimeError, match=r"/api/v1/forgotten declares no access"):
        check_routes(app.router.routes, API)


def test_no_credentials_get_401_and_the_route_challenge(app: FastAPI, client: TestClient) -> None:
    for method, path, route in api_routes(app):
        policy = declared_policy(route)
        assert policy is not None
        # A body the handler could not parse: had it been read, the answer would be 422.
        response = client.request(method, path, content=b"{not json")
        if policy.access is Access.PUBLIC:
            assert response.status_code != 401, path
            continue
        assert response.status_code == 401, f"{method} {path}: {response.text}"
        assert response.headers["www-authenticate"] == CHALLENGE[policy.access], path
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 401 and problem["title"]
        assert "admin.token" not in response.text and "/" not in problem.get("hint", "").replace("/ ", "")


def test_a_wrong_token_is_401_too(client: TestClient) -> None:
    for token in ("Bearer not-the-token", "Basic YTpi", "Bearer", "Negotiate"):
        response = client.get(f"{API}/jobs", headers={"Authorization": token})
        assert response.status_code == 401, token
        assert response.headers["www-authenticate"] == 'Negotiate, Bearer realm="credo"'
    # An admin token is no worker session.
    response = client.post(f"{API}/workers/1/claim", headers={"Authorization": "Bearer not-a-session"})
    assert (response.status_code, response.headers["www-authenticate"]) == (401, "Negotiate")


def test_the_admin_refusal_names_no_server_file(app: FastAPI, client: TestClient) -> None:
    response = client.get(f"{API}/runbooks")
    data_dir = str(app.state.credo.config.data_dir)
    assert data_dir not in response.text and "admin.token" not in response.text
    assert response.json() == {
        "title": "sign-in required",
        "status": 401,
        "hint": "sign in with Kerberos (kinit, then Authorization: Negotiate), or send Authorization: "
        "Bearer <API token or admin token>",
    }


def test_unknown_paths_under_the_api_tell_an_anonymous_caller_nothing(
    client: TestClient, app: FastAPI
) -> None:
    known = client.get(f"{API}/runbooks")
    for method, path in [
        ("GET", f"{API}/nothing"),
        ("POST", f"{API}/health"),
        ("GET", f"{API}/workers/register"),
    ]:
        unknown = client.request(method, path)
        assert (unknown.status_code, unknown.headers["www-authenticate"], unknown.json()) == (
            known.status_code,
            known.headers["www-authenticate"],
            known.json(),
        ), path
    # With the admin token the caller learns the path does not exist, as a problem document.
    authorized = client.get(f"{API}/nothing", headers={"Authorization": f"Bearer {admin_token(app)}"})
    assert authorized.status_code == 404
    assert authorized.json() == {"title": "Not Found", "status": 404}


def credentials_for(app: FastAPI, access: Access) -> dict[str, str]:
    if access is Access.ADMIN:
        return {"Authorization": f"Bearer {admin_token(app)}"}
    if access is Access.WORKER:
        return {"Authorization": f"Bearer {app.state.credo.sessions.issue(WORKER)}"}
    return {}


def test_one_byte_over_the_cap_is_413_from_content_length(app: FastAPI, client: TestClient) -> None:
    checked = 0
    for method, path, route in api_routes(app):
        policy = declared_policy(route)
        assert policy is not None
        if policy.access is Access.NEGOTIATE:
            continue  # needs a real Kerberos token: a refused one is 403 before the cap is looked at
        body = b"x" * (policy.max_body + 1)
        response = client.request(method, path, content=body, headers=credentials_for(app, policy.access))
        assert response.status_code == 413, f"{method} {path}: {response.status_code} {response.text}"
        assert response.headers["connection"] == "close"
        assert response.json() == {"title": f"request body over {policy.max_body} bytes, this route's limit",
                                   "status": 413}  # fmt: skip
        checked += 1
    assert checked >= 22


def test_a_chunked_body_is_cut_at_the_first_chunk_over_the_cap(app: FastAPI, client: TestClient) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(64):  # 4 MiB, four times the job cap
            sent += 65536
            yield b"x" * 65536

    response = client.post(f"{API}/jobs", content=chunks(), headers=credentials_for(app, Access.ADMIN))
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert response.json()["title"] == f"request body over {limits.JOB_BODY} bytes, this route's limit"


def test_malformed_json_is_401_without_a_token_and_names_its_byte_offset_with_one(
    app: FastAPI, client: TestClient
) -> None:
    anonymous = client.post(
        f"{API}/jobs", content=b'{"runbook": x}', headers={"content-type": "application/json"}
    )
    assert anonymous.status_code == 401
    response = client.post(
        f"{API}/jobs",
        content='{"runbook": "é", x}'.encode(),
        headers={"content-type": "application/json"} | credentials_for(app, Access.ADMIN),
    )
    assert response.status_code == 422
    problem = response.json()
    # "é" is one character but two bytes: the offset counts bytes, and is no field name.
    assert problem["offset"] == 18 and "field" not in problem
    assert problem["title"].startswith("body: invalid JSON at byte offset 18: ")


def test_invalid_utf8_gets_a_problem_document(app: FastAPI, client: TestClient) -> None:
    response = client.post(
        f"{API}/jobs",
        content=b'{"runbook": "\xff"}',
        headers={"content-type": "application/json"} | credentials_for(app, Access.ADMIN),
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"title": "body: not valid UTF-8 at byte offset 13", "status": 400}


def test_worker_routes_see_the_principal_the_gate_authenticated(app: FastAPI, client: TestClient) -> None:
    response = client.post(
        f"{API}/workers/99/heartbeat", json={"leases": []}, headers=credentials_for(app, Access.WORKER)
    )
    # Past the gate: the handler looked worker 99 up for the principal of that session.
    assert response.json() == {"title": f"worker 99 is not registered for {WORKER}", "status": 403}
