"""The worker's HTTP client: Negotiate as the computer account, then a session token.

Built on ``credo.client`` (the connection, the ``Authorization`` headers, statuses back to credo
errors); this module adds what only a worker does. Outbound HTTPS only. A 401 (session expired)
makes it negotiate again; a connection failure is retried with backoff, so a worker rides out a
server restart. With several URLs (server replicas, docs/scaling.md) a connection failure moves
to the next URL at once.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from credo.automation.identity import IssuedToken
from credo.client import API, Client, bearer, error_from, negotiate, problem_title
from credo.errors import InputError, NotPermittedError, UnreachableError
from credo.http_negotiate import spnego_token
from credo.krb.host import HostIdentity
from credo.krb.tgt import destroy_ccache, new_memory_ccache_name

__all__ = ["ServerClient"]

log = logging.getLogger(__name__)


def backoff(attempt: int, *, base: float = 0.2, cap: float = 5.0) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): exponential, capped."""
    return float(min(cap, base * 2 ** (attempt - 1)))


class ServerClient:
    """Talks to ``credo server`` for one worker registration."""

    def __init__(
        self,
        url: str | Sequence[str],
        host: HostIdentity,
        group: str,
        slots: int,
        *,
        ca_file: str | None = None,
        transport: httpx.BaseTransport | None = None,
        retry_for: float = 120.0,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise InputError("the worker needs a server URL", hint="give --server URL (once per replica)")
        self.urls = [u.rstrip("/") for u in urls]
        self.host = host
        self.group = group
        self.slots = slots
        self.retry_for = retry_for
        # Claims long-poll up to a minute (credo.defaults.MAX_CLAIM_WAIT_SECONDS): reads wait longer.
        self._clients = [
            Client(u, ca_file=ca_file, timeout=httpx.Timeout(70.0, connect=10.0), transport=transport)
            for u in self.urls
        ]
        # Replicas share the database and the session key (docs/scaling.md): the session and the
        # worker's id hold on every URL, so a failover is just the next request to the next URL.
        self._current = 0
        self.session_token: str | None = None
        self.registration: dict[str, Any] = {}
        # This process's identity for the server: a new one after a restart tells it that the
        # previous process's jobs are gone; the same one on re-registration (401) keeps them.
        self.instance = secrets.token_hex(8)

    @property
    def url(self) -> str:
        """The server URL in use (the first of ``urls`` that answered last)."""
        return self.urls[self._current]

    @property
    def http(self) -> httpx.Client:
        return self._clients[self._current].http

    @property
    def service_host(self) -> str:
        """The host of the URL in use: the worker asks for a ticket to HTTP/<it> (RFC 4120 §6.2.1)."""
        return urlsplit(self.url).hostname or "localhost"

    @property
    def worker_id(self) -> int:
        return int(self.registration["worker_id"])

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def _negotiate_token(self) -> str:
        from gssapi.raw import GSSError

        ccache = new_memory_ccache_name("worker")
        try:
            self.host.acquire(ccache)
            try:
                token = spnego_token(self.service_host, ccache)
            except GSSError as exc:
                if not _is_address(self.service_host):
                    raise NotPermittedError(
                        f"cannot get a Kerberos ticket for HTTP/{self.service_host}: {exc}",
                        hint="--server must name the server as its HTTP/ service principal does",
                    ) from exc
                # The KDC knows services by name (RFC 4120 §6.2.1 host-based names), never by address:
                # find which of the address's names has an HTTP/ principal, and say so.
                with_spn: list[str] = []
                for candidate in _names_of(self.service_host):
                    with contextlib.suppress(GSSError):
                        if self._accepts(spnego_token(candidate, ccache)):
                            with_spn = [candidate]
                            break
                        with_spn.append(candidate)
                split = urlsplit(self.url)
                port = f":{split.port}" if split.port else ""
                urls = [
                    f"{split.scheme}://{name}{port}" for name in with_spn or ["<the name in its HTTP/ SPN>"]
                ]
                raise InputError(
                    f"Kerberos needs the server's DNS name, not the address {self.service_host}:"
                    " the worker asks for a ticket to the server's HTTP/<name> principal",
                    hint=f"use --server {' or '.join(urls)}",
                ) from None
        finally:
            destroy_ccache(ccache)
        return base64.b64encode(token).decode()

    def _accepts(self, token: bytes) -> bool:
        """Whether the server accepts a ticket: it checks Negotiate before the body, so an empty
        body is refused as invalid (422) only once the ticket was accepted; nothing registers."""
        headers = negotiate(base64.b64encode(token).decode())
        try:
            return self.http.post(f"{API}/workers/register", json={}, headers=headers).status_code == 422
        except httpx.TransportError:
            return False

    def register(self) -> dict[str, Any]:
        body = {"group": self.group, "hostname": self.host.sam_account_name, "slots": self.slots,
                "instance": self.instance}  # fmt: skip
        for _ in range(len(self.urls)):
            url = self.url
            response = self._send("POST", f"{API}/workers/register", json=body,
                                  headers=negotiate(self._negotiate_token()))  # fmt: skip
            # A failover to a URL of another name needs a ticket for that name's HTTP/ principal.
            if response.status_code != 401 or self.url == url:
                break
        if response.status_code != 200:
            raise NotPermittedError(f"the server refused {self.host.principal}: {problem_title(response)}")
        data: dict[str, Any] = response.json()
        self.session_token = data.pop("session_token")
        self.registration = data
        return data

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send, retrying connection failures for ``retry_for`` seconds (a keyword argument,
        default the client's: a stopping worker's last words are not worth a long wait). With
        several URLs, a failure moves to the next URL at once; the backoff grows per full round."""
        deadline = time.monotonic() + kwargs.pop("retry_for", self.retry_for)
        failures = 0
        while True:
            try:
                return self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                failures += 1
                if time.monotonic() > deadline:
                    tried = ", ".join(self.urls)
                    raise UnreachableError(
                        f"the server does not answer at {tried}: {exc}",
                        hint="is `credo server` running there? (`curl URL/api/v1/health`)",
                    ) from exc
                failed = self.url
                self._current = (self._current + 1) % len(self.urls)
                rounds, step = divmod(failures, len(self.urls))
                if step == 0 or len(self.urls) == 1:
                    wait = backoff(max(1, rounds))
                    log.warning("server unreachable at %s (%s); retrying in %.1f s", failed, exc, wait)
                    time.sleep(wait)
                else:
                    log.warning("server unreachable at %s (%s); trying %s", failed, exc, self.url)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An authenticated request; negotiates again once on 401."""
        for _ in range(2):
            if self.session_token is None:
                self.register()
            assert self.session_token is not None
            headers = bearer(self.session_token)
            response = self._send(method, f"{API}/workers/{self.worker_id}{path}", headers=headers, **kwargs)
            if response.status_code != 401:
                return response
            self.session_token = None
        raise NotPermittedError(f"the server keeps refusing {self.host.principal}: {problem_title(response)}")

    def job_token(
        self, job_id: int | str, lease: int | str, audience: str, runbook_subject: bool = False,
        gmsa_sid: str | None = None,
    ) -> IssuedToken:  # fmt: skip
        """A token for one of this worker's running jobs (``lease``: its lease token from the claim).

        403 (NotPermittedError): not this worker's current lease, an audience the group does not
        list, or the server issues no tokens; 404 (NotFoundError): no such job."""
        body: dict[str, Any] = {"lease": int(lease), "audience": audience, "runbook_subject": runbook_subject}
        if gmsa_sid is not None:
            body["gmsa_sid"] = gmsa_sid
        return _issued(self.json("POST", f"/jobs/{job_id}/token", json=body))

    def host_token(self, group: str, audience: str, service: str) -> IssuedToken:
        """A token for a service on this host (Negotiate as the computer account, each time: the
        host need not be registered as a worker, only allowed to serve ``group``)."""
        body = {"group": group, "audience": audience, "service": service}
        response = self._send("POST", f"{API}/tokens", json=body, headers=negotiate(self._negotiate_token()))
        if response.status_code >= 400:
            raise error_from(response, f"POST /tokens: {response.status_code}")
        return _issued(response.json())

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise error_from(response, f"{method} {path}: {response.status_code}")
        data: dict[str, Any] = response.json()
        return data


def _issued(answer: dict[str, Any]) -> IssuedToken:
    return IssuedToken(
        token=str(answer["token"]),
        subject=str(answer["subject"]),
        audience=str(answer["audience"]),
        expires_at=datetime.fromisoformat(str(answer["expires_at"])),
    )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _names_of(address: str) -> list[str]:
    """The DNS names an address goes by: its reverse lookup, and every /etc/hosts line for it
    (the resolver returns only the first, which for 127.0.0.1 is ``localhost``)."""
    names: list[str] = []
    with contextlib.suppress(OSError):
        primary, aliases, _ = socket.gethostbyaddr(address)
        names += [primary, *aliases]
    with contextlib.suppress(OSError):
        for line in Path("/etc/hosts").read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if fields and fields[0] == address:
                names += fields[1:]
    # Service principals carry fully qualified names.
    return [name for name in dict.fromkeys(names) if "." in name]
