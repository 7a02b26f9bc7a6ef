"""The one HTTP client of ``credo server``'s API, shared by the CLI and the worker.

- ``Client``: an ``httpx.Client`` on the server's URL (an injectable transport, as httpx's
  ``MockTransport`` tests want), with the typed calls of the admin API (runbooks, groups,
  workers, jobs, their output and its live feed).
- ``error_from``: an error answer back to the credo error it stands for, through the one table
  beside those classes (``credo.errors.error_for_status``), so that the CLI exits with the code
  the server meant; a server that does not answer is an ``UnreachableError`` (exit 4).
- ``bearer``, ``negotiate`` and ``negotiating``: the one place that writes ``Authorization``
  headers (RFC 6750 §2.1, RFC 4559 §4; the SPNEGO tokens come from ``credo.http_negotiate``).

The worker protocol (Negotiate, sessions, retries) is ``credo.worker.client`` on top of this.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from credo.errors import CredoError, UnreachableError, error_for_status
from credo.http_negotiate import NegotiateAuth

__all__ = [
    "API",
    "TERMINAL_STATES",
    "Client",
    "Event",
    "bearer",
    "error_from",
    "negotiate",
    "negotiating",
    "problem_title",
]

API = "/api/v1"
# A job in one of these states has ended (credo.automation.jobs.TERMINAL, by value).
TERMINAL_STATES = frozenset({"Completed", "Failed", "Stopped", "Suspended"})
JSON = dict[str, Any]


def bearer(token: str) -> dict[str, str]:
    """``Authorization: Bearer`` (RFC 6750 §2.1): the admin token, a worker's session token."""
    return {"Authorization": f"Bearer {token}"}


def negotiating(url: str) -> NegotiateAuth:
    """Sign in as the user (RFC 4559): a fresh Negotiate token for ``HTTP@<url's host>`` on each
    request, from the default ccache (``kinit``)."""
    return NegotiateAuth(urlsplit(url).hostname or "localhost")


def negotiate(token: str) -> dict[str, str]:
    """``Authorization: Negotiate`` (RFC 4559 §4) with a base64 SPNEGO token."""
    return {"Authorization": f"Negotiate {token}"}


def problem_title(response: httpx.Response) -> str:
    """The problem document's ``title`` (RFC 9457), or the start of whatever the body is."""
    try:
        return str(response.json().get("title", response.reason_phrase))
    except (ValueError, AttributeError):
        return response.text[:200]


def error_from(response: httpx.Response, context: str | None = None) -> CredoError:
    """The credo error an error answer stands for: its class from the status, its message and
    hint from the problem document (``context``, if given, goes before the message: ``POST
    /tokens: 403 <title>``)."""
    hint: str | None = None
    try:
        problem = response.json()
        title = str(problem.get("title", response.reason_phrase))
        hint = str(problem["hint"]) if problem.get("hint") else None
    except (ValueError, AttributeError):
        title = response.text[:200]
    return error_for_status(response.status_code, f"{context} {title}" if context else title, hint=hint)


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event (WHATWG HTML §9.2): its type, id and data (JSON-decoded)."""

    event: str
    id: str | None
    data: Any


class Client:
    """``credo server``'s API over HTTP(S). The credentials: ``headers`` (``bearer(...)``: an API
    token or the admin token) or ``auth`` (``negotiating(url)``: the user's own Kerberos ticket)."""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        ca_file: str | Path | None = None,
        timeout: float | httpx.Timeout = 60.0,
        transport: httpx.BaseTransport | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url,
            headers=headers,
            auth=auth,
            verify=ssl.create_default_context(cafile=str(ca_file)) if ca_file else True,
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------------

    def unreachable(self, exc: httpx.TransportError) -> UnreachableError:
        return UnreachableError(
            f"credo server at {self.url} does not answer: {exc}", hint="is `credo server` running?"
        )

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request to ``path`` under the API; no status check."""
        try:
            return self.http.request(method, f"{API}{path}", **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; its JSON answer (None for 204), or the credo error it stands for."""
        response = self.send(method, path, **kwargs)
        if response.status_code >= 400:
            raise error_from(response)
        if response.status_code == 204:
            return None
        return response.json()

    # -- runbooks -----------------------------------------------------------------------------------

    def create_runbook(self, body: JSON) -> JSON:
        result: JSON = self.call("POST", "/runbooks", json=body)
        return result

    def update_runbook(self, name: str, body: JSON) -> JSON:
        result: JSON = self.call("PATCH", f"/runbooks/{name}", json=body)
        return result

    def publish_runbook(self, name: str) -> JSON:
        result: JSON = self.call("POST", f"/runbooks/{name}/publish")
        return result

    def runbooks(self) -> list[JSON]:
        result: list[JSON] = self.call("GET", "/runbooks")
        return result

    def runbook(self, name: str) -> JSON:
        result: JSON = self.call("GET", f"/runbooks/{name}")
        return result

    def delete_runbook(self, name: str) -> None:
        self.call("DELETE", f"/runbooks/{name}")

    # -- worker groups and workers -----------------------------------------------------------------

    def create_group(self, body: JSON) -> JSON:
        result: JSON = self.call("POST", "/groups", json=body)
        return result

    def update_group(self, name: str, body: JSON) -> JSON:
        result: JSON = self.call("PATCH", f"/groups/{name}", json=body)
        return result

    def groups(self) -> list[JSON]:
        result: list[JSON] = self.call("GET", "/groups")
        return result

    def group(self, name: str) -> JSON:
        result: JSON = self.call("GET", f"/groups/{name}")
        return result

    def delete_group(self, name: str) -> None:
        self.call("DELETE", f"/groups/{name}")

    def workers(self) -> list[JSON]:
        result: list[JSON] = self.call("GET", "/workers")
        return result

    # -- API tokens --------------------------------------------------------------------------------

    def create_token(self, name: str, expires: str, role: str | None = None) -> JSON:
        """A new API token: the answer's ``token`` is its only appearance in clear."""
        body: JSON = {"name": name, "expires": expires}
        if role:
            body["role"] = role
        result: JSON = self.call("POST", "/auth/tokens", json=body)
        return result

    def tokens(self) -> list[JSON]:
        result: list[JSON] = self.call("GET", "/auth/tokens")
        return result

    def revoke_token(self, token_id: str) -> JSON:
        result: JSON = self.call("DELETE", f"/auth/tokens/{token_id}")
        return result

    # -- role grants -------------------------------------------------------------------------------

    def grant_role(
        self, role: str, group: str, runbooks: list[str] | None = None, worker_groups: list[str] | None = None
    ) -> JSON:
        body: JSON = {"role": role, "group": group, "runbooks": runbooks, "worker_groups": worker_groups}
        result: JSON = self.call("POST", "/roles", json=body)
        return result

    def grants(self) -> list[JSON]:
        result: list[JSON] = self.call("GET", "/roles")
        return result

    def revoke_grant(self, grant_id: int) -> JSON:
        result: JSON = self.call("DELETE", f"/roles/{grant_id}")
        return result

    # -- jobs ---------------------------------------------------------------------------------------

    def start_job(self, body: JSON, *, test: bool = False) -> JSON:
        """Queue a job (``test``: the runbook's draft, apart from production jobs)."""
        params = {"test": "true"} if test else None
        result: JSON = self.call("POST", "/jobs", json=body, params=params)
        return result

    def jobs(self, *, state: str | None = None, group: str | None = None, limit: int = 50) -> list[JSON]:
        query: JSON = {"limit": limit}
        if state:
            query["state"] = state
        if group:
            query["group"] = group
        result: list[JSON] = self.call("GET", "/jobs", params=query)
        return result

    def job(self, job_id: str) -> JSON:
        result: JSON = self.call("GET", f"/jobs/{job_id}")
        return result

    def stop_job(self, job_id: str) -> JSON:
        result: JSON = self.call("POST", f"/jobs/{job_id}/stop")
        return result

    def resume_job(self, job_id: str) -> JSON:
        result: JSON = self.call("POST", f"/jobs/{job_id}/resume")
        return result

    def output(self, job_id: str, *, stream: str | None = None, after: int = 0, limit: int = 1000) -> JSON:
        """One page of a job's output chunks after ``after`` (a seq of ``stream``, or a chunk id)."""
        query: JSON = {"after": after, "limit": limit}
        if stream:
            query["stream"] = stream
        result: JSON = self.call("GET", f"/jobs/{job_id}/output", params=query)
        return result

    # -- schedules ----------------------------------------------------------------------------------

    def create_schedule(self, body: JSON) -> JSON:
        result: JSON = self.call("POST", "/schedules", json=body)
        return result

    def schedules(self) -> list[JSON]:
        result: list[JSON] = self.call("GET", "/schedules")
        return result

    def schedule(self, name: str) -> JSON:
        result: JSON = self.call("GET", f"/schedules/{name}")
        return result

    def pause_schedule(self, name: str) -> JSON:
        result: JSON = self.call("POST", f"/schedules/{name}/pause")
        return result

    def resume_schedule(self, name: str) -> JSON:
        result: JSON = self.call("POST", f"/schedules/{name}/resume")
        return result

    def delete_schedule(self, name: str) -> None:
        self.call("DELETE", f"/schedules/{name}")

    # -- webhooks -----------------------------------------------------------------------------------

    def create_webhook(self, body: JSON) -> JSON:
        result: JSON = self.call("POST", "/webhooks", json=body)
        return result

    def webhooks(self) -> list[JSON]:
        result: list[JSON] = self.call("GET", "/webhooks")
        return result

    def webhook(self, name: str) -> JSON:
        result: JSON = self.call("GET", f"/webhooks/{name}")
        return result

    def rotate_webhook(self, name: str, overlap_seconds: int) -> JSON:
        result: JSON = self.call("POST", f"/webhooks/{name}/rotate", params={"overlap": overlap_seconds})
        return result

    def set_webhook_enabled(self, name: str, enabled: bool) -> JSON:
        result: JSON = self.call("POST", f"/webhooks/{name}/{'enable' if enabled else 'disable'}")
        return result

    def delete_webhook(self, name: str) -> None:
        self.call("DELETE", f"/webhooks/{name}")

    # -- audit log ----------------------------------------------------------------------------------

    def audit_records(self, *, since: str | None = None, page: int = 1000) -> Iterator[JSON]:
        """Every audit record (from ``since``, ISO 8601), oldest first, a page at a time."""
        after = 0
        while True:
            params: dict[str, Any] = {"after": after, "limit": page}
            if since:
                params["since"] = since
            batch: list[JSON] = self.call("GET", "/audit-log", params=params)
            yield from batch
            if len(batch) < page:
                return
            after = int(batch[-1]["seq"])

    def output_events(self, job_id: str, *, stream: str | None = None, after: int = 0) -> Iterator[Event]:
        """The server's live feed of a job's output (``chunk`` events, then one ``end``), read
        as it comes; the feed ends with the job."""
        query: JSON = {"after": after}
        if stream:
            query["stream"] = stream
        try:
            # No read timeout: a quiet job sends nothing for as long as it likes.
            with self.http.stream(
                "GET",
                f"{API}/jobs/{job_id}/output/events",
                params=query,
                timeout=httpx.Timeout(60.0, read=None),
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from(response)
                yield from parse_events(response.iter_lines())
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc


def parse_events(lines: Iterator[str]) -> Iterator[Event]:
    """Server-Sent Events from a text/event-stream's lines (WHATWG HTML §9.2.6: fields up to a
    blank line; ``data`` lines joined by newlines)."""
    kind, ident, data = "message", None, list[str]()
    for line in lines:
        if not line:
            if data:
                yield Event(kind, ident, json.loads("\n".join(data)))
            kind, ident, data = "message", None, []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "id":
            ident = value
        elif name == "data":
            data.append(value)
    if data:
        yield Event(kind, ident, json.loads("\n".join(data)))
