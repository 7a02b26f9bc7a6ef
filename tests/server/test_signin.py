"""Fast lane: API tokens (create once, hashed, last use, revoke, expiry) and every user route for
every role (TestClient on SQLite; the real Kerberos sign-in is in test_signin_kerberos.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.routing import Route

from credo.automation.rbac import Decision, Grant, Permission, Role
from credo.defaults import ACCESS_CACHE_SECONDS
from credo.server.access import NEEDS, decide, decide_on
from credo.server.app import API, ServerConfig, create_app
from credo.server.clock import now
from credo.server.database import sqlite_url
from credo.server.gate import Access, Caller, CallerKind, declared_policy
from credo.server.models import ApiToken
from credo.server.tokens import RecentTokens, Verified


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    data = tmp_path_factory.mktemp("signin")
    return create_app(ServerConfig(data_dir=data, database_url=sqlite_url(data)))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def admin(app: FastAPI) -> dict[str, str]:
    data_dir: Path = app.state.credo.config.data_dir
    return {"Authorization": f"Bearer {(data_dir / 'admin.token').read_text().strip()}"}


def create(
    client: TestClient, app: FastAPI, name: str, role: str | None, expires: str = "90d"
) -> dict[str, str]:
    body = {"name": name, "expires": expires} | ({"role": role} if role else {})
    response = client.post(f"{API}/auth/tokens", json=body, headers=admin(app))
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    return {"id": created["id"], "token": created["token"]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_is_shown_once_stored_hashed_and_listed_with_its_last_use(
    app: FastAPI, client: TestClient
) -> None:
    made = create(client, app, "ci-deploy", "reader")
    assert re.fullmatch(r"credo_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", made["token"])
    listed = client.get(f"{API}/auth/tokens", headers=admin(app)).json()
    mine = next(t for t in listed if t["id"] == made["id"])
    assert "token" not in mine and made["token"] not in str(listed)
    assert (mine["name"], mine["role"], mine["created_by"], mine["last_used_at"]) == (
        "ci-deploy", "reader", "admin", None,
    )  # fmt: skip
    with app.state.credo.db.session() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.id == made["id"])).one()
        assert made["token"] not in (row.sha256, row.name) and len(row.sha256) == 64
    assert client.get(f"{API}/jobs", headers=bearer(made["token"])).status_code == 200
    listed = client.get(f"{API}/auth/tokens", headers=admin(app)).json()
    assert next(t for t in listed if t["id"] == made["id"])["last_used_at"] is not None


def test_revoked_expired_and_forged_tokens_all_get_the_same_401(app: FastAPI, client: TestClient) -> None:
    revoked = create(client, app, "revoked", "reader")
    assert client.delete(f"{API}/auth/tokens/{revoked['id']}", headers=admin(app)).json()["revoked"] is True
    expired = create(client, app, "expired", "reader")
    with app.state.credo.db.session() as session:
        row = session.get(ApiToken, expired["id"])
        assert row is not None
        row.expires_at = now() - timedelta(seconds=1)
    live = create(client, app, "live", "reader")
    forged = live["token"][:-4] + ("AAAA" if not live["token"].endswith("AAAA") else "BBBB")
    answers = set()
    for token in (revoked["token"], expired["token"], forged, "credo_00000000_" + "A" * 43):
        response = client.get(f"{API}/jobs", headers=bearer(token))
        answers.add((response.status_code, response.text, response.headers["www-authenticate"]))
    assert len(answers) == 1 and next(iter(answers))[0] == 401
    assert client.delete(f"{API}/auth/tokens/nosuchid", headers=admin(app)).status_code == 404


def test_a_token_in_use_revoked_here_is_refused_at_once(app: FastAPI, client: TestClient) -> None:
    """Verified tokens are kept a few seconds (tokens.RecentTokens); a revocation forgets them."""
    made = create(client, app, "busy", "reader")
    assert client.get(f"{API}/jobs", headers=bearer(made["token"])).status_code == 200
    assert client.delete(f"{API}/auth/tokens/{made['id']}", headers=admin(app)).status_code == 200
    assert client.get(f"{API}/jobs", headers=bearer(made["token"])).status_code == 401


def test_a_token_revoked_through_another_server_process_is_refused_within_the_cache_time(
    app: FastAPI, client: TestClient
) -> None:
    """Two servers on one database: one revokes, the other refuses within ACCESS_CACHE_SECONDS."""
    config: ServerConfig = app.state.credo.config
    made = create(client, app, "shared", "reader")
    assert client.get(f"{API}/jobs", headers=bearer(made["token"])).status_code == 200
    with TestClient(create_app(ServerConfig(config.data_dir, config.database_url))) as other:
        assert other.delete(f"{API}/auth/tokens/{made['id']}", headers=admin(app)).status_code == 200
        assert other.get(f"{API}/jobs", headers=bearer(made["token"])).status_code == 401
    revoked_at = time.monotonic()
    while client.get(f"{API}/jobs", headers=bearer(made["token"])).status_code == 200:
        assert time.monotonic() - revoked_at < ACCESS_CACHE_SECONDS + 2, "still accepted"
        time.sleep(0.25)


def _verified(expires_in: timedelta) -> Verified:
    return Verified("0badcafe", "t", Role.READER, "admin", now() + expires_in)


def test_recent_tokens_keep_no_token_past_its_expiry_or_a_revocation_that_raced_its_read() -> None:
    recent = RecentTokens(ttl=60)
    recent.put("credo_soon", _verified(timedelta(milliseconds=300)), recent.generation)
    recent.put("credo_later", _verified(timedelta(hours=1)), recent.generation)
    assert recent.get("credo_soon") is not None and recent.get("credo_later") is not None
    time.sleep(0.4)
    assert recent.get("credo_soon") is None  # expired: never trusted past its expiry
    assert recent.get("credo_later") is not None
    read_at = recent.generation  # a verification reads the row...
    recent.forget()  # ... a revocation commits and forgets ...
    recent.put("credo_raced", _verified(timedelta(hours=1)), read_at)  # ... the stale read comes back
    assert recent.get("credo_raced") is None and recent.get("credo_later") is None
    assert recent.get("credo_never_seen") is None


def test_bad_token_requests_are_input_errors(app: FastAPI, client: TestClient) -> None:
    for body in ({"name": "x", "expires": "1y"}, {"name": "x", "expires": "400d"},
                 {"name": "x", "expires": "9d", "role": "root"}, {"name": "bad name", "expires": "9d"}):  # fmt: skip
        response = client.post(f"{API}/auth/tokens", json=body, headers=admin(app))
        assert response.status_code in (400, 422), body
        assert response.json()["title"], body


# The least role each user route needs (by hand, from the issue: reader reads; operator starts and
# stops jobs; author edits and publishes runbooks; admin the rest). Not derived from NEEDS.
READ = {Role.READER, Role.OPERATOR, Role.AUTHOR, Role.ADMIN}
RUN = {Role.OPERATOR, Role.ADMIN}
AUTHOR = {Role.AUTHOR, Role.ADMIN}
ADMIN = {Role.ADMIN}
EXPECTED: dict[tuple[str, str], set[Role]] = {
    ("GET", "/runbooks"): READ,
    ("GET", "/runbooks/{name}"): READ,
    ("POST", "/runbooks"): AUTHOR,
    ("PATCH", "/runbooks/{name}"): AUTHOR,
    ("POST", "/runbooks/{name}/publish"): AUTHOR,
    ("DELETE", "/runbooks/{name}"): AUTHOR,
    ("GET", "/groups"): READ,
    ("GET", "/groups/{name}"): READ,
    ("POST", "/groups"): ADMIN,
    ("PATCH", "/groups/{name}"): ADMIN,
    ("DELETE", "/groups/{name}"): ADMIN,
    ("GET", "/workers"): READ,
    ("GET", "/jobs"): READ,
    ("GET", "/jobs/{job_id}"): READ,
    ("GET", "/jobs/{job_id}/output"): READ,
    ("GET", "/jobs/{job_id}/output/events"): READ,
    ("POST", "/jobs"): RUN,
    ("POST", "/jobs/{job_id}/stop"): RUN,
    ("POST", "/jobs/{job_id}/resume"): RUN,
    ("POST", "/auth/tokens"): ADMIN,
    ("GET", "/auth/tokens"): ADMIN,
    ("DELETE", "/auth/tokens/{token_id}"): ADMIN,
    ("POST", "/roles"): ADMIN,
    ("GET", "/roles"): ADMIN,
    ("DELETE", "/roles/{grant_id}"): ADMIN,
    ("POST", "/schedules"): ADMIN,
    ("GET", "/schedules"): READ,
    ("GET", "/schedules/{name}"): READ,
    ("POST", "/schedules/{name}/pause"): ADMIN,
    ("POST", "/schedules/{name}/resume"): ADMIN,
    ("DELETE", "/schedules/{name}"): ADMIN,
    ("POST", "/webhooks"): ADMIN,
    ("GET", "/webhooks"): ADMIN,
    ("GET", "/webhooks/{name}"): ADMIN,
    ("POST", "/webhooks/{name}/rotate"): ADMIN,
    ("POST", "/webhooks/{name}/disable"): ADMIN,
    ("POST", "/webhooks/{name}/enable"): ADMIN,
    ("DELETE", "/webhooks/{name}"): ADMIN,
    ("GET", "/audit-log"): ADMIN,
}


def user_routes(app: FastAPI) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in app.router.routes:
        policy = declared_policy(route)
        if isinstance(route, Route) and policy is not None and policy.access is Access.ADMIN:
            found += [(m, route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return found


def test_every_user_route_is_in_the_openapi_document_and_both_tables(
    app: FastAPI, client: TestClient
) -> None:
    documented = {
        (method.upper(), path)
        for path, item in client.get("/openapi.json").json()["paths"].items()
        for method in item
    }
    routes = user_routes(app)
    assert len(routes) == len(EXPECTED) == len(NEEDS)
    for method, path in routes:
        assert (method, path) in documented
        assert (method, path.removeprefix(API)) in EXPECTED, (method, path)


@pytest.mark.parametrize("role", list(Role))
def test_every_user_route_for_every_role(app: FastAPI, client: TestClient, role: Role) -> None:
    token = create(client, app, f"walk-{role.value}", role.value)["token"]
    for method, path in user_routes(app):
        concrete = re.sub(r"\{[a-z_]+\}", "nosuch", path)
        # An unparsable body: a route that lets the caller through answers 422 (or 404), never 403.
        route = next(
            r
            for r in app.router.routes
            if isinstance(r, Route) and r.path == path and method in (r.methods or ())
        )
        policy = declared_policy(route)
        assert policy is not None
        body = b"{not json" if policy.max_body else None
        response = client.request(method, concrete, headers=bearer(token), content=body)
        allowed = role in EXPECTED[(method, path.removeprefix(API))]
        if allowed:
            assert response.status_code not in (401, 403), (role, method, path, response.text)
        else:
            assert response.status_code == 403, (role, method, path, response.text)
            title = response.json()["title"]
            assert title.startswith(f"token walk-{role.value} (") and "needs role" in title, title


def test_a_token_without_a_role_has_its_creators_the_admin_token_s(app: FastAPI, client: TestClient) -> None:
    token = create(client, app, "no-role", None)["token"]
    assert client.get(f"{API}/auth/tokens", headers=bearer(token)).status_code == 200


def test_a_user_has_the_roles_granted_to_their_groups_on_their_scope() -> None:
    """The decision for a Negotiate user (groups injected: the directory part is the real lane's)."""
    user = Caller(CallerKind.USER, "jdoe@CORP.EXAMPLE.TEST")
    grants = [
        Grant(Role.OPERATOR, "corp\\helpdesk", frozenset({"disable-user"}), frozenset({"tier1"})),
        Grant(Role.READER, "S-1-5-21-1-2-3-1105"),
    ]
    groups = frozenset({"jdoe@corp.example.test", "corp\\helpdesk", "s-1-5-21-1-2-3-1105"})

    def decision(method: str, path: str, **params: str) -> Decision:
        return decide(user, method, f"{API}{path}", params, lambda: grants, lambda _p: groups)

    assert decision("GET", "/jobs")
    assert decision("GET", "/groups/{name}", name="tier2")
    refused = decision("POST", "/groups")
    assert not refused and refused.missing == "needs role admin on all runbooks and worker groups"
    # Starting a job: some grant allows running somewhere (the route then checks its body's target).
    assert decision("POST", "/jobs")
    assert decide_on(user, Permission.RUN, "disable-user", "tier1", lambda: grants, lambda _p: groups)
    outside = decide_on(user, Permission.RUN, "disable-user", "tier2", lambda: grants, lambda _p: groups)
    assert outside.missing == "needs role operator or admin on runbook disable-user in worker group tier2"
    # A job's routes are checked on the job's runbook and worker group.
    target = ("disable-user", "tier1")
    assert decide(
        user, "POST", f"{API}/jobs/{{job_id}}/stop", {}, lambda: grants, lambda _p: groups, target=target
    )
    stranger = decide(user, "GET", f"{API}/jobs", {}, lambda: grants, lambda _p: frozenset({"x"}))
    assert (
        stranger.missing
        == "needs role reader or operator or author or admin on all runbooks and worker groups"
    )


def test_a_user_route_without_a_row_in_the_table_stops_the_server() -> None:
    from fastapi import APIRouter

    from credo.server.access import check_needs
    from credo.server.gate import guard

    router = APIRouter()

    @router.get(f"{API}/forgotten")
    @guard(Access.ADMIN)
    async def forgotten() -> None: ...

    with pytest.raises(RuntimeError, match=r"GET /api/v1/forgotten has no row in credo.server.access.NEEDS"):
        check_needs(router.routes)
