"""Fast lane: a worker given several server URLs (replicas, docs/scaling.md) moves to the next
one when a connection fails, keeps its session (every replica verifies it), and names every URL
when none answers. The servers are an httpx.MockTransport."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from credo.errors import UnreachableError
from credo.krb.host import HostIdentity
from credo.worker.client import ServerClient

HOST = HostIdentity(Path("/nonexistent"), "WORKER1$@CORP.EXAMPLE.TEST")


def _client(down: set[str], seen: list[tuple[str, str]], retry_for: float = 5.0) -> ServerClient:
    def server(request: httpx.Request) -> httpx.Response:
        if request.url.host in down:
            raise httpx.ConnectError("connection refused", request=request)
        seen.append((request.url.host, request.headers.get("authorization", "")))
        return httpx.Response(200, json={"ok": True})

    client = ServerClient(
        ["http://credo1.corp.example.test:8400", "http://credo2.corp.example.test:8400/"], HOST, "tier1", 1,
        transport=httpx.MockTransport(server), retry_for=retry_for,
    )  # fmt: skip
    # Registered already (the registration itself needs Kerberos: the lab tests cover it).
    client.session_token, client.registration = "session", {"worker_id": 7}
    return client


def test_a_failed_connection_moves_to_the_next_url_at_once_and_keeps_the_session() -> None:
    seen: list[tuple[str, str]] = []
    client = _client({"credo1.corp.example.test"}, seen)
    started = time.monotonic()
    assert client.json("POST", "/heartbeat", json={"leases": []}) == {"ok": True}
    assert time.monotonic() - started < 0.5  # no backoff before the first try of the next URL
    assert seen == [("credo2.corp.example.test", "Bearer session")]
    assert client.url == "http://credo2.corp.example.test:8400"
    assert client.service_host == "credo2.corp.example.test"
    # It stays on the URL that answered.
    client.json("POST", "/heartbeat", json={"leases": []})
    assert [host for host, _ in seen] == ["credo2.corp.example.test"] * 2


def test_when_no_url_answers_the_error_names_every_url() -> None:
    client = _client({"credo1.corp.example.test", "credo2.corp.example.test"}, [], retry_for=0.3)
    with pytest.raises(UnreachableError) as caught:
        client.json("POST", "/heartbeat", json={"leases": []})
    assert "credo1.corp.example.test:8400" in str(caught.value)
    assert "credo2.corp.example.test:8400" in str(caught.value)
    assert caught.value.hint


def test_one_url_is_still_one_string() -> None:
    client = ServerClient("http://credo.corp.example.test:8400/", HOST, "tier1", 1)
    assert client.urls == ["http://credo.corp.example.test:8400"]
    client.close()
