"""The gate: who may call a route and how many body bytes it takes, checked before any is read.

FastAPI reads and parses a request's body before it runs the route's dependencies, so a check in
a dependency comes too late: an anonymous caller could make the server receive, buffer and parse
any amount. This pure ASGI middleware sits in front of the routes. For each request it finds the
route with Starlette's own matching, checks the ``Authorization`` header against the access the
route declares, and only then lets the body through, counted against the route's cap.

Each route declares its policy once, under its ``@app.post(...)``::

    @app.post(f"{API}/jobs", ...)
    @guard(Access.ADMIN, limits.JOB_BODY)
    async def start_job(...): ...

and ``check_routes`` refuses to start a server with an API route that declares none.

Refusals are problem documents (RFC 9457) that say nothing about the server's files:

- 401 with ``WWW-Authenticate`` (RFC 9110 §11.6.1): ``Negotiate`` (RFC 4559 §5) and ``Bearer``
  (RFC 6750 §3) on user routes (``Access.ADMIN``: the admin token, an API token, or a user's
  Kerberos ticket), ``Negotiate`` on worker routes. A path under the API that matches no route
  answers an anonymous caller exactly as an admin route does, so probing learns nothing.
- 413 (RFC 9110 §15.5.14) at once when ``Content-Length`` is over the cap, else on the first
  chunk that goes over it; the rest is not read.

A refusal of a request that carries a body also says ``Connection: close``. uvicorn's httptools
protocol would otherwise keep the connection alive and go on receiving (and dropping) the unread
rest of the body, a gigabyte if that is what the caller sends; with ``close`` it closes the
transport as soon as the answer is written (uvicorn/protocols/http/httptools_impl.py,
``RequestResponseCycle.send``). And since nothing calls ``receive`` before the gate agrees, a
client that sent ``Expect: 100-continue`` never gets the go-ahead to send its body at all.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credo.automation.api_tokens import PREFIX as API_TOKEN_PREFIX
from credo.errors import CredoError, InputError, NotPermittedError
from credo.server import limits

__all__ = [
    "ACTOR",
    "ADMIN_CALLER",
    "CALLER",
    "NEGOTIATE_REPLY",
    "PRINCIPAL",
    "UI_SIGN_IN",
    "Access",
    "BodyTooLarge",
    "Caller",
    "CallerKind",
    "Gate",
    "Policy",
    "Unauthenticated",
    "check_routes",
    "declared_policy",
    "guard",
]

# Scope keys the gate sets for the handlers once a worker is authenticated.
PRINCIPAL = "credo.principal"
NEGOTIATE_REPLY = "credo.negotiate_reply"
# Who the caller is, as the audit log names it (credo.server.audit): "admin", the user's
# principal, "token NAME (id)", or a worker's principal.
ACTOR = "credo.actor"
# ... and once a caller of a user route is authenticated: who (a ``Caller``).
CALLER = "credo.caller"
# The name the admin token's caller goes by (in refusals, and as an API token's creator).
ADMIN_CALLER = "admin"
# Where the web UI signs a browser in (credo.server.ui.routes).
UI_SIGN_IN = "/ui/sign-in"

_POLICY = "__credo_policy__"
F = TypeVar("F", bound=Callable[..., Any])


class Access(enum.Enum):
    PUBLIC = "public"  # anyone
    # The API's user routes: Bearer <admin token>, Bearer <API token credo_...>, or Negotiate with
    # a user's ticket; then the route's permission is checked (credo.server.routes.permissions).
    ADMIN = "admin"
    WORKER = "worker"  # Authorization: Bearer <worker session token>
    NEGOTIATE = "negotiate"  # Authorization: Negotiate <SPNEGO token>: a worker registers
    # The web UI's pages: its session cookie (credo.server.ui.session), else what ADMIN takes; an
    # anonymous browser is sent to the sign-in page (303), anything else hears 401.
    UI = "ui"


@dataclass(frozen=True)
class Policy:
    access: Access
    max_body: int


# Routes the framework adds (/openapi.json, /docs, /redoc) declare nothing: public, no body.
_FRAMEWORK = Policy(Access.PUBLIC, limits.NO_BODY)
# A path that matches no route (or not with this method): any valid credential may hear 404 or 405.
_UNMATCHED = Policy(Access.ADMIN, limits.DEFAULT_BODY)


def guard(access: Access, max_body: int = limits.DEFAULT_BODY) -> Callable[[F], F]:
    """Declare who may call the endpoint and how many body bytes it takes (below ``@app.<verb>``)."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _POLICY, Policy(access, max_body))
        return endpoint

    return mark


def declared_policy(route: BaseRoute) -> Policy | None:
    """The policy the route's endpoint declared with ``guard``, if any."""
    policy = getattr(getattr(route, "endpoint", None), _POLICY, None)
    return policy if isinstance(policy, Policy) else None


def check_routes(routes: Iterable[BaseRoute], prefix: str) -> None:
    """Every route under ``prefix`` must declare its policy: one left out would be refused to all."""
    for route in routes:
        if isinstance(route, Route) and route.path.startswith(prefix) and declared_policy(route) is None:
            raise RuntimeError(
                f"route {route.path} declares no access: add @guard(...) below its @app.<verb>"
            )


class CallerKind(enum.Enum):
    # (The values are kinds, not secrets: S105 mistakes them for passwords.)
    ADMIN_TOKEN = "admin token"  # noqa: S105  (the bootstrap token in the data dir: role admin)
    API_TOKEN = "API token"  # noqa: S105  (a named token: its role, else its creator's)
    USER = "user"  # an AD principal by Negotiate: the roles its groups are granted


@dataclass(frozen=True)
class Caller:
    """Who calls a user route: how they signed in, and the name the audit and refusals use
    (``admin token``, ``token NAME (id)``, ``jdoe@CORP.EXAMPLE.TEST``)."""

    kind: CallerKind
    name: str
    token_id: str | None = None
    token_role: str | None = None  # an API token's own role (credo.automation.rbac.Role value)
    token_creator: str | None = None


class Unauthenticated(NotPermittedError):
    """No credentials, or wrong ones (HTTP 401): ``challenge`` names the scheme to use."""

    http_status = 401

    def __init__(self, access: Access) -> None:
        message, hint, self.challenge = _REFUSALS[access]
        super().__init__(message, hint=hint)


_REFUSALS: dict[Access, tuple[str, str | None, str]] = {
    Access.ADMIN: (
        "sign-in required",
        "sign in with Kerberos (kinit, then Authorization: Negotiate), or send Authorization: "
        "Bearer <API token or admin token>",
        'Negotiate, Bearer realm="credo"',
    ),
    Access.WORKER: ("worker session missing or expired: authenticate with Negotiate", None, "Negotiate"),
    Access.UI: ("sign-in required", "sign in at /ui/sign-in", 'Negotiate, Bearer realm="credo"'),
    Access.NEGOTIATE: (
        "Kerberos authentication required",
        "send Authorization: Negotiate <a SPNEGO token for the server's HTTP/ principal>",
        "Negotiate",
    ),
}


class BodyTooLarge(InputError):
    """The request body is over its route's cap (HTTP 413)."""

    http_status = 413

    def __init__(self, cap: int) -> None:
        super().__init__(f"request body over {cap} bytes, this route's limit")


@dataclass
class Credentials:
    """How the gate checks each kind of credential (the server's admin token, sessions, keytab)."""

    admin: Callable[[str], bool]
    session: Callable[[str], str | None]
    # Blocking (the database): run in a thread. The caller an API token (credo_...) stands for.
    api_token: Callable[[str], Caller | None]
    # Blocking (GSS-API): run in a thread. Returns (principal, reply token or None).
    negotiate: Callable[[str], tuple[str, str | None]]
    # Blocking (the database, for a token's session): the caller a web UI session cookie stands
    # for, given the request's Cookie header; None without a valid one.
    ui_session: Callable[[str], Caller | None] = lambda _cookie: None
    # Not blocking: the caller of an API token verified a moment ago, if it was (else None, and
    # ``api_token`` decides).
    recent_api_token: Callable[[str], Caller | None] = lambda _token: None


class Gate:
    """The ASGI middleware: authenticate, then cap the body (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, *, routes: list[BaseRoute], prefix: str, credentials: Credentials
    ) -> None:
        self.app = app
        # The router's own list: routes are matched exactly as the router will match them.
        self.routes = routes
        self.prefix = prefix
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = _content_length(headers)
        carries_body = length != 0 or "transfer-encoding" in headers
        policy = self._policy(scope)
        try:
            await self._authenticate(scope, headers, policy)
            if length is not None and length > policy.max_body:
                raise BodyTooLarge(policy.max_body)
        except Unauthenticated as exc:
            if policy.access is Access.UI and scope["method"] in ("GET", "HEAD"):
                await _to_sign_in(scope, headers, send)
            else:
                await _answer(send, exc, close=carries_body)
            return
        except CredoError as exc:
            await _answer(send, exc, close=carries_body)
            return
        await _Counted(self.app, policy.max_body)(scope, receive, send)

    def _policy(self, scope: Scope) -> Policy:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return declared_policy(route) or _FRAMEWORK
        return _UNMATCHED if scope["path"].startswith(self.prefix) else _FRAMEWORK

    async def _authenticate(self, scope: Scope, headers: Headers, policy: Policy) -> None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if policy is _UNMATCHED:
            if scheme == "bearer" and self.credentials.session(value):
                return
            await self._caller(scope, scheme, value)  # any signed-in caller may hear 404 or 405
            return
        if policy.access is Access.PUBLIC:
            return
        if policy.access is Access.ADMIN:
            caller = scope[CALLER] = await self._caller(scope, scheme, value)
            scope[ACTOR] = caller.name
        elif policy.access is Access.UI:
            cookie = headers.get("cookie", "")
            found = await run_in_threadpool(self.credentials.ui_session, cookie) if cookie else None
            if found is None:
                if not scheme:
                    raise Unauthenticated(Access.UI)
                found = await self._caller(scope, scheme, value)
            scope[CALLER], scope[ACTOR] = found, found.name
        elif policy.access is Access.WORKER:
            principal = self.credentials.session(value) if scheme == "bearer" else None
            if principal is None:
                raise Unauthenticated(Access.WORKER)
            scope[PRINCIPAL] = principal
        else:
            if scheme != "negotiate" or not value:
                raise Unauthenticated(Access.NEGOTIATE)
            # A token that is there but refused is a 403 (NotPermittedError) naming why.
            scope[PRINCIPAL], scope[NEGOTIATE_REPLY] = await run_in_threadpool(
                self.credentials.negotiate, value
            )

    async def _caller(self, scope: Scope, scheme: str, value: str) -> Caller:
        """Who calls a user route: the admin token, an API token, or a user's Kerberos ticket
        (per request, as RFC 4559 has it: no session state on either side)."""
        if scheme == "bearer" and value:
            if self.credentials.admin(value):
                return Caller(CallerKind.ADMIN_TOKEN, ADMIN_CALLER)
            if value.startswith(API_TOKEN_PREFIX):
                caller = self.credentials.recent_api_token(value) or await run_in_threadpool(
                    self.credentials.api_token, value
                )
                if caller is not None:
                    return caller
        elif scheme == "negotiate" and value:
            principal, scope[NEGOTIATE_REPLY] = await run_in_threadpool(self.credentials.negotiate, value)
            return Caller(CallerKind.USER, principal)
        # Wrong, expired and revoked tokens all get the same answer: nothing about one leaks.
        raise Unauthenticated(Access.ADMIN)


class _Counted:
    """Runs the app with a ``receive`` that counts body bytes and refuses the first over the cap."""

    def __init__(self, app: ASGIApp, cap: int) -> None:
        self.app, self.cap = app, cap
        self.received = 0
        self.started = False
        self.refused = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted_receive() -> Message:
            if self.refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.cap:
                    self.refused = True
                    if not self.started:
                        await _answer(send, BodyTooLarge(self.cap), close=True)
                    # The app sees a caller that went away: it stops reading and answers nobody.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if self.refused and not self.started:
                return  # the gate answered 413; the app's answer to the "disconnect" goes nowhere
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)


async def _to_sign_in(scope: Scope, headers: Headers, send: Send) -> None:
    """An anonymous browser goes to the sign-in page, which brings it back here afterwards; a
    page htmx asks for sends the whole window there (``HX-Redirect``)."""
    here = scope["path"] + (
        f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
    )
    location = f"{UI_SIGN_IN}?{urlencode({'next': here})}"
    if headers.get("hx-request"):
        status, extra = 401, [(b"hx-redirect", location.encode())]
    else:
        status, extra = 303, [(b"location", location.encode())]
    response = [(b"content-length", b"0"), (b"cache-control", b"no-store"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": response})
    await send({"type": "http.response.body", "body": b""})


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None  # the HTTP parser refuses such a request before it gets here


async def _answer(send: Send, exc: CredoError, *, close: bool) -> None:
    problem: dict[str, Any] = {"title": exc.message, "status": exc.http_status}
    if exc.hint:
        problem["hint"] = exc.hint
    body = json.dumps(problem).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    if isinstance(exc, Unauthenticated):
        headers.append((b"www-authenticate", exc.challenge.encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": exc.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
