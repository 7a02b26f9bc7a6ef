"""Fast lane: schemathesis against every operation of /openapi.json, in process (issue 16 point 5).

The app is built as ``credo server`` builds it (SQLite, an OIDC issuer), seeded with one of each
resource, and called through schemathesis's ASGI transport by three callers: with credentials (the
admin token; on worker routes, where the admin token is no credential, a registered worker's session),
with no ``Authorization`` header, and with a bearer token that is no token of this server's.

- Stateful: schemathesis's state machine. /openapi.json declares no links; schemathesis 4 infers them
  from the schema by dependency analysis (``GET /groups`` lists names that ``GET /groups/{name}``
  takes, ``POST /jobs`` answers the id ``POST /jobs/{job_id}/stop`` takes, ...): 236 of them, which
  join 45 of the 54 operations tested (when this was written). The machine holds those 45.
- Stateless: every operation, to reach those no link joins (health, /metrics, the OIDC documents,
  the audit log, ...) and, for the callers without credentials, every route: with no 2xx answer there
  is nothing for a link to carry, so their state machine only ever runs the operations links start from.

Checks: no answer is a 5xx (schemathesis's ``not_a_server_error``); without valid credentials every
route answers 401 but the public ones (PUBLIC, listed here and compared with the gate's declarations),
which never do; the admin token is refused by no admin route.
"""

from __future__ import annotations

import base64
import contextlib
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python.asgi import shutdown_lifespans
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from credo.server import service, views
from credo.server.app import ServerConfig, create_app
from credo.server.database import sqlite_url
from credo.server.gate import Access, declared_policy

API = "/api/v1"
WORKER = "WORKER1$@CORP.EXAMPLE.TEST"
RUNBOOK = {"name": "hello", "type": "python3", "content": base64.b64encode(b"print('hi')\n").decode(),
           "parameters": [{"name": "ticket", "type": "object", "required": False}]}  # fmt: skip

# Operations any caller may call: the gate asks no credentials of them. The web UI's sign-in pages
# are public too, but they are no part of /openapi.json.
PUBLIC = frozenset({
    ("GET", f"{API}/health"),
    ("POST", f"{API}/hooks/{{token}}"),  # a webhook's receive URL: its token and signature are the credential
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/c/.well-known/openid-configuration"),  # the same, under the issuer URL's path
    ("GET", "/c/.well-known/jwks.json"),
})  # fmt: skip
# Public to the gate, but the route itself asks the admin token of a caller that is no loopback
# peer, as schemathesis's ASGI client is not: 401 without it, like an admin route.
LOOPBACK_ONLY = frozenset({("GET", "/metrics")})

# Left out, because they cannot work in process: the live output feed (text/event-stream) ends only
# when the job does, and no job runs here. (Worker claims long-poll: they stay in, with their wait
# bounded, in ``bound_waits``.)
EXCLUDED = r"/output/events$"

# Budgets: the module runs in about a minute on the 2-core CI machine.
STATEFUL = hypothesis.settings(
    max_examples=30,
    stateful_step_count=8,
    deadline=None,
    database=None,
    phases=[hypothesis.Phase.generate],
    suppress_health_check=list(hypothesis.HealthCheck),
)
STATELESS = hypothesis.settings(
    max_examples=5,
    deadline=None,
    database=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    suppress_health_check=list(hypothesis.HealthCheck),
)
CALLERS = ["credentials", "anonymous", "invalid token"]


class Served:
    """The app as uvicorn serves it: an exception out of the app is answered 500 (if no answer has
    started), not raised into the caller, so the checks see the 500 a client would; the traceback
    is kept for the failure's description. (schemathesis's ASGI client, like Starlette's
    TestClient, would raise it: Hypothesis would then replay the scenario, against rows it changed.)"""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.last_error = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if scope["type"] != "http":
                raise
            self.last_error = traceback.format_exc(limit=-8)
            if not started:
                await send({"type": "http.response.start", "status": 500, "headers": []})
                await send({"type": "http.response.body", "body": b""})


@dataclass
class World:
    app: FastAPI
    served: Served
    schema: Any  # schemathesis.specs.openapi.schemas.OpenApiSchema
    admin: str
    worker_session: str
    access: dict[tuple[str, str], Access]
    # (caller, method, path template, status) -> answers seen, over the module.
    seen: Counter[tuple[str, str, str, int]] = field(default_factory=Counter)
    # The first failure of each (caller, method, path, status), described.
    failures: dict[tuple[str, str, str, int], str] = field(default_factory=dict)

    def headers(self, caller: str, method: str, path: str) -> dict[str, str]:
        if caller == "anonymous":
            return {}
        if caller == "invalid token":
            return {"Authorization": "Bearer credo_not-a-token-of-this-server"}
        if self.access[(method, path)] is Access.WORKER:
            return {"Authorization": f"Bearer {self.worker_session}"}
        return {"Authorization": f"Bearer {self.admin}"}

    def check(self, caller: str, case: Any, response: Any) -> None:
        """Records what is wrong with an answer, rather than raise: a failure Hypothesis saw would
        be replayed, against a server whose rows the calls since have changed."""
        method, path, status = case.method.upper(), case.path, response.status_code
        self.seen[(caller, method, path, status)] += 1
        problems = []
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except FailureGroup as failed:
            problems += [failure.title for failure in failed.exceptions]
        if caller == "credentials":
            if self.access[(method, path)] is Access.ADMIN and status == 401:
                problems.append("the admin token was refused")
        elif (method, path) in PUBLIC:
            if status == 401:
                problems.append("a public route asked for credentials")
        elif status != 401:
            problems.append("expected 401")
        error, self.served.last_error = self.served.last_error, ""
        if problems and (caller, method, path, status) not in self.failures:
            curl = case.as_curl_command(headers=dict(response.request.headers))
            self.failures[(caller, method, path, status)] = (
                f"{caller}: {method} {path} -> {status}: {'; '.join(problems)}\n"
                f"  {curl}\n  answer: {response.text[:500]}\n{error}"
            )

    def assert_no_failures(self, caller: str) -> None:
        found = [text for (who, *_), text in self.failures.items() if who == caller]
        assert not found, "\n".join(found)


def bound_waits(case: Any) -> None:
    """A worker's claim waits up to ``wait`` seconds (25 by default) for a job that never comes
    here: the one of the seeded worker answers at once instead, as a claim with ``wait=0`` does."""
    if case.path.endswith("/claim") and isinstance(case.query, dict) and "wait" in case.query:
        try:
            waits = float(case.query["wait"]) > 0
        except (TypeError, ValueError):
            return
        if waits:
            case.query["wait"] = 0


# One of each resource, (re)made before each scenario of the state machine with credentials, so that
# the list operations give the links names and ids to carry, whatever earlier scenarios deleted.
# (The generated bodies rarely make one: the schema says a name is a string, the server wants
# letters, digits, ".", "_" or "-".) 409: already there.
SEED: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", f"{API}/runbooks", RUNBOOK),
    ("POST", f"{API}/runbooks/{{name}}/publish", None),
    ("POST", f"{API}/groups", {"name": "tier1", "local_user": "credo-runner", "workers": [WORKER]}),
    ("POST", f"{API}/jobs", {"runbook": "hello", "group": "tier1"}),
    ("POST", f"{API}/schedules", {"name": "nightly", "runbook": "hello", "group": "tier1",
                                  "cron": "30 2 * * *", "timezone": "UTC"}),
    ("POST", f"{API}/webhooks", {"name": "ticket", "runbook": "hello", "group": "tier1",
                                 "parameter": "ticket"}),
    ("POST", f"{API}/auth/tokens", {"name": "ci", "expires": "1d", "role": "reader"}),
]  # fmt: skip


def seed(world: World) -> None:
    """Makes SEED's resources (a failure is recorded as the checks' are) and registers the worker."""
    for method, path, body in SEED:
        operation = world.schema[path][method]
        given = {"body": body} if body is not None else {}
        case = operation.Case(path_parameters={"name": "hello"} if "{name}" in path else None, **given)
        response = case.call(headers=world.headers("credentials", method, path))
        if response.status_code not in (200, 201, 409):  # reported by the test, not raised into Hypothesis
            key = ("credentials", method, path, response.status_code)
            world.failures[key] = f"seeding: {method} {path} -> {response.status_code}: {response.text[:500]}"
    state = world.app.state.credo
    with state.db.session() as session:  # as a Negotiate sign-in registers a worker
        service.register_worker(session, WORKER, "tier1", "worker1", 2, "instance-1")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("schemathesis")
    app = create_app(
        ServerConfig(data_dir=data, database_url=sqlite_url(data), oidc_issuer="https://i.example.test/c")
    )
    access = {}
    for route in app.router.routes:
        policy = declared_policy(route) if isinstance(route, Route) else None
        if isinstance(route, Route) and route.include_in_schema and policy is not None:
            for method in route.methods or ():
                access[(method, route.path)] = policy.access
    served = Served(app)
    schema = schemathesis.openapi.from_asgi("/openapi.json", served).exclude(path_regex=EXCLUDED)
    world = World(
        app=app,
        served=served,
        schema=schema,
        admin=(data / "admin.token").read_text().strip(),
        worker_session=app.state.credo.sessions.issue(WORKER),
        access=access,
    )
    try:
        seed(world)
        yield world
    finally:
        # Ends the app's lifespan (its sweeper and scheduler), which schemathesis started.
        shutdown_lifespans()


def operations(world: World) -> list[Any]:
    return [result.ok() for result in world.schema.get_all_operations()]


def test_the_public_operations_are_the_gate_s(world: World) -> None:
    labels = {(op.method.upper(), op.path) for op in operations(world)}
    assert len(labels) >= 50
    assert labels <= set(world.access), labels - set(world.access)
    public = {label for label in labels if world.access[label] is Access.PUBLIC}
    assert public == PUBLIC | LOOPBACK_ONLY


def test_a_server_error_is_reported_with_its_traceback(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness itself: an exception out of a route is the 500 that the checks report."""

    def broken(*args: Any) -> None:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(views, "list_workers", broken)
    case = world.schema[f"{API}/workers"]["GET"].Case()
    world.check("credentials", case, case.call(headers=world.headers("credentials", "GET", f"{API}/workers")))
    failure = world.failures.pop(("credentials", "GET", f"{API}/workers", 500))
    assert "Server error" in failure and "RuntimeError: broken on purpose" in failure


@pytest.mark.parametrize("caller", CALLERS)
def test_state_machine(world: World, caller: str) -> None:
    transitions = Counter[str]()
    scenarios = 0

    class Machine(world.schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            nonlocal scenarios
            scenarios += 1
            if caller == "credentials":
                seed(world)

        def step(self, input: Any) -> Any:
            if input.transition is not None and input.is_applied:
                transitions[input.transition.id] += 1
            return super().step(input)

        def before_call(self, case: Any) -> None:
            bound_waits(case)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": world.headers(caller, case.method.upper(), case.path)}

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            world.check(caller, case, response)

    # Hypothesis stops a run when a scenario's draws differ from an earlier one's with the same
    # start: the answers they depend on changed, since the server keeps what the calls did. Like
    # schemathesis's own engine, start again (with new scenarios) until the budget is spent.
    deadline = time.monotonic() + 45
    while scenarios < STATEFUL.max_examples and time.monotonic() < deadline:
        try:
            Machine.run(
                settings=hypothesis.settings(STATEFUL, max_examples=STATEFUL.max_examples - scenarios)
            )
        except hypothesis.errors.Flaky:
            continue
        break
    world.assert_no_failures(caller)
    assert scenarios >= STATEFUL.max_examples // 2, scenarios
    if caller == "credentials":
        # The links carried values from one answer to the next call (names, ids of the seeded rows).
        assert sum(transitions.values()) >= 10, transitions


@pytest.mark.parametrize("caller", CALLERS)
def test_every_operation(world: World, caller: str) -> None:
    for operation in operations(world):
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @STATELESS
        @hypothesis.given(case=strategy)
        def call(case: Any) -> None:
            bound_waits(case)
            method = case.method.upper()
            response = case.call(headers=world.headers(caller, method, case.path))
            world.check(caller, case, response)

        with contextlib.suppress(hypothesis.errors.Flaky):  # as above: the server's rows changed
            call()
    world.assert_no_failures(caller)
    called = {(m, p) for (c, m, p, _) in world.seen if c == caller}
    assert called >= {(op.method.upper(), op.path) for op in operations(world)}
