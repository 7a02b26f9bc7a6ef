"""Fast lane: credo.client against httpx.MockTransport, and the CLI's live follow against the
real app's SSE feed (FastAPI TestClient's transport)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from credo.client import Client, Event, bearer, error_from, negotiate, parse_events
from credo.errors import Conflict, CredoError, InputError, NotFoundError, NotPermittedError, UnreachableError
from tests.oidc.conftest import World, make_world


def answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("GET", "http://x"))


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, InputError), (401, NotPermittedError), (403, NotPermittedError), (404, NotFoundError),
     (409, Conflict), (413, InputError), (422, InputError), (504, UnreachableError), (500, CredoError)],
)  # fmt: skip
def test_an_error_answer_becomes_the_credo_error_of_its_status(status: int, kind: type[CredoError]) -> None:
    error = error_from(answer(status, {"title": "runbook 'x' exists already", "hint": "use update"}))
    assert type(error) is kind
    assert (error.message, error.hint) == ("runbook 'x' exists already", "use update")


def test_the_one_place_that_writes_authorization_headers() -> None:
    assert bearer("t") == {"Authorization": "Bearer t"}
    assert negotiate("YII=") == {"Authorization": "Negotiate YII="}


def test_calls_carry_the_credentials_and_map_errors() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/jobs/gone"):
            return httpx.Response(404, json={"title": "job gone does not exist", "status": 404})
        return httpx.Response(200, json=[{"id": "j"}])

    client = Client("http://server:8400/", headers=bearer("secret"), transport=httpx.MockTransport(handler))
    assert client.jobs(state="Failed") == [{"id": "j"}]
    assert seen[0].url.path == "/api/v1/jobs" and seen[0].url.params["state"] == "Failed"
    assert seen[0].headers["authorization"] == "Bearer secret"
    with pytest.raises(NotFoundError, match="job gone does not exist"):
        client.job("gone")


def test_a_server_that_does_not_answer_is_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(UnreachableError, match="does not answer"):
        Client("http://server:8400", transport=httpx.MockTransport(handler)).runbooks()


def test_server_sent_events_are_parsed() -> None:
    lines = iter(
        [
            "event: chunk",
            "id: 3",
            'data: {"text": "hi"}',
            "",
            "event: end",
            'data: {"state": "Completed"}',
            "",
        ]
    )
    assert list(parse_events(lines)) == [
        Event("chunk", "3", {"text": "hi"}),
        Event("end", None, {"state": "Completed"}),
    ]


@pytest.fixture
def world(tmp_path: object) -> Iterator[World]:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    yield from make_world(tmp_path)


def test_the_live_feed_brings_a_jobs_output_then_its_end(world: World) -> None:
    worker_id, headers = world.worker("WORKER1$@CORP.EXAMPLE.TEST", "tier1")
    job = world.running_job("tier1", (worker_id, headers))
    base = f"/api/v1/workers/{worker_id}/jobs/{job['job_id']}"
    chunks = [{"stream": "output", "text": "one\n"}, {"stream": "warning", "text": "two\n"}]
    assert world.client.post(f"{base}/output", json={"lease_token": job["lease_token"], "chunks": chunks},
                             headers=headers).status_code == 200  # fmt: skip
    finish = {"lease_token": job["lease_token"], "exit_code": 0}
    assert world.client.post(f"{base}/finish", json=finish, headers=headers).status_code == 200
    client = Client("http://testserver", headers=world.admin, transport=world.client._transport)
    events = list(client.output_events(job["job_id"]))
    assert [(e.event, e.data.get("text")) for e in events] == [
        ("chunk", "one\n"),
        ("chunk", "two\n"),
        ("end", None),
    ]
    assert events[-1].data == {"state": "Completed"}
    page = client.output(job["job_id"])
    assert [json.dumps(c, sort_keys=True) for c in page["chunks"]] == [
        json.dumps(e.data, sort_keys=True) for e in events[:2]
    ]
