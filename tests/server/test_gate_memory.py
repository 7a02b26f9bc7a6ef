"""Real lane: a flood of body bytes leaves a real `credo server` process's memory where it was.

Raw loopback sockets (so that nothing in between buffers, retries or stops early) send 1 GB
without credentials and 100 MB with the admin token to POST /api/v1/jobs, declared with
Content-Length and chunked. Each client stops when the server answers or closes, and within
30 s. The server must answer before the client has sent a few MB, close the connection, and
keep its resident memory (VmRSS) within 20 MB of where it was.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Server

MB = 1000 * 1000
BLOCK = b"x" * 65536
TIME_LIMIT = 30.0
# The client's send buffer is kept small so that "bytes sent" is close to "bytes the server took".
SEND_BUFFER = 64 * 1024


@dataclass
class Flood:
    status: int | None  # the answer's status, if one came
    head: str  # the answer's status line and headers
    sent: int  # body bytes the client got into its socket before the answer or the close
    closed: bool  # the server closed the connection
    seconds: float


def flood(port: int, total: int, *, token: str | None, chunked: bool) -> Flood:
    """POST ``total`` body bytes to /api/v1/jobs until the server answers or closes (bounded)."""
    head = [
        "POST /api/v1/jobs HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}",
    ]
    if token:
        head.append(f"Authorization: Bearer {token}")
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=TIME_LIMIT) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.setblocking(False)
        block = b"%x\r\n%s\r\n" % (len(BLOCK), BLOCK) if chunked else BLOCK
        sent, answer, closed = 0, b"", False
        pending = memoryview(block)
        while time.monotonic() - start < TIME_LIMIT and b"\r\n\r\n" not in answer and not closed:
            want_write = [sock] if sent < total else []
            readable, writable, _ = select.select([sock], want_write, [], 1.0)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                answer += data
                closed = not data
                continue
            if writable:
                try:
                    count = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                sent += count
                pending = pending[count:] or memoryview(block)
        # After an answer, the server must close the connection (it will not read the rest).
        deadline = time.monotonic() + 5
        while not closed and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0.5)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                answer += data
                closed = not data
    text = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = int(text.split()[1]) if text.startswith("HTTP/1.1 ") else None
    return Flood(status, text, sent, closed, time.monotonic() - start)


def rss(pid: int) -> int:
    """The process's resident set size in bytes (proc(5): VmRSS, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def warm_server(sqlite_server: Server) -> Server:
    # The first requests load what the server keeps loaded anyway: take the baseline after them.
    for _ in range(3):
        assert sqlite_server.api("GET", "/jobs").status_code == 200
        assert (
            sqlite_server.api("POST", "/jobs", json={"runbook": "none", "group": "none"}).status_code == 404
        )
        flood(sqlite_server.port, 2 * MB, token=None, chunked=False)
        flood(sqlite_server.port, 2 * MB, token=sqlite_server.token, chunked=True)
    return sqlite_server


@pytest.mark.parametrize(
    ("credentials", "total", "chunked", "status"),
    [
        (False, 1000 * MB, False, 401),
        (False, 1000 * MB, True, 401),
        (True, 100 * MB, False, 413),
        (True, 100 * MB, True, 413),
    ],
    ids=["1GB-anonymous-length", "1GB-anonymous-chunked", "100MB-admin-length", "100MB-admin-chunked"],
)
def test_a_body_flood_is_refused_early_and_leaves_memory_alone(
    warm_server: Server, credentials: bool, total: int, chunked: bool, status: int
) -> None:
    assert warm_server.process is not None
    pid = warm_server.process.pid
    before = rss(pid)
    result = flood(warm_server.port, total, token=warm_server.token if credentials else None, chunked=chunked)
    after = rss(pid)
    assert result.status == status, result
    assert "connection: close" in result.head.lower(), result.head
    assert result.closed, f"the server kept the connection open: {result}"
    # The answer came before much of the body was sent: the anonymous one from the headers alone,
    # the authenticated one at the route's cap (1 MiB); loopback buffers hold a few MB more.
    assert result.sent < (4 if status == 401 else 6) * MB, result
    assert result.seconds < TIME_LIMIT, result
    assert abs(after - before) < 20 * MB, f"VmRSS went from {before / MB:.1f} MB to {after / MB:.1f} MB"
    # And the server still serves.
    assert warm_server.api("GET", "/jobs").status_code == 200


def test_malformed_json_without_a_token_is_401_not_422(sqlite_server: Server) -> None:
    response = httpx.post(
        f"{sqlite_server.url}/api/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Negotiate, Bearer realm="credo"'
    assert response.json() == {
        "title": "sign-in required",
        "status": 401,
        "hint": "sign in with Kerberos (kinit, then Authorization: Negotiate), or send Authorization: "
        "Bearer <API token or admin token>",
    }
