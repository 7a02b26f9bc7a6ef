"""The web UI at /ui: server-rendered pages (Jinja2) with htmx, vendored, for the live parts.

Pages: jobs (filters, refreshed every few seconds), a job (its state history, streams and output
arriving live over Server-Sent Events), runbooks (published versions, a version's script, a diff
between two), a start form generated from the runbook's JSON Schema, schedules, webhooks,
workers (online, lost, the jobs each runs) and the audit log.

Who may see and do what is the API's rule, applied to the same services: every page checks the
permission the matching API route needs (credo.server.access) with ``decide_on``, lists keep the
items the caller may read, and a refusal is a 403 page naming what is missing. Sign-in is by the
browser's Kerberos ticket (``/ui/sign-in/kerberos``, Negotiate) or by a token typed into the
sign-in form; either sets the session cookie (credo.server.ui.session). A state-changing form
(start, stop, sign-in, sign-out) is recorded in the audit log as its API call is, with ``via:
ui``. No JavaScript build step: htmx and a 40-line script for the live output are static files.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

import json
import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import cookie_parser

from credo import security_events
from credo.automation.auditlog import AuditEntry, AuditOutcome
from credo.automation.jobs import TERMINAL, JobState
from credo.automation.rbac import Decision, Permission
from credo.defaults import MAX_POSITION, UI_PAGE, UI_SESSION_SECONDS
from credo.errors import CredoError, InputError, NotFoundError, NotPermittedError
from credo.security_events import Outcome, SecurityEvent, Severity
from credo.server import audit, catalog, limits, queue, scheduling, tokens, views, webhooks
from credo.server.access import Forbidden, decide_on, job_target
from credo.server.dependencies import AppState, visible
from credo.server.gate import ADMIN_CALLER, CALLER, UI_SIGN_IN, Access, Caller, CallerKind, guard
from credo.server.routes.jobs import sse_events
from credo.server.state import State
from credo.server.ui import queries
from credo.server.ui.diff import diff_lines
from credo.server.ui.forms import form_fields, parse_form
from credo.server.ui.session import COOKIE

__all__ = ["UI", "error_page", "install_error_pages", "router", "session_caller"]

UI = "/ui"
router = APIRouter(prefix=UI, include_in_schema=False)

# The start form's body: the parameters (capped as the API's) in form encoding.
FORM_BODY = limits.JOB_BODY
SIGN_IN_BODY = 4 * 1024
_STATIC = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "credo.css": "text/css; charset=utf-8",
}
# Scripts and styles come from this server only; nothing inline runs; no page frames this one.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("credo.server.ui", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:  # SQLite hands back the UTC times it was given without their zone
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


_templates.filters["when"] = _when
_templates.filters["tojson_compact"] = lambda v: json.dumps(v, sort_keys=True)


# -- rendering and checks ---------------------------------------------------------------------------


def _page(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
    caller = request.scope.get(CALLER)
    html = _templates.get_template(template).render(
        caller=caller if isinstance(caller, Caller) else None, path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=code, headers=_HEADERS)


def _caller(request: Request) -> Caller:
    caller = request.scope.get(CALLER)
    if not isinstance(caller, Caller):  # the gate signed the caller in; never reached otherwise
        raise NotPermittedError("sign-in required", hint=f"sign in at {UI_SIGN_IN}")
    return caller


async def _decision(
    state: State,
    caller: Caller,
    permission: Permission,
    runbook: str | None = None,
    group: str | None = None,
    *,
    anywhere: bool = False,
) -> Decision:
    """The API's decision (credo.server.access.decide_on), off the event loop: it may ask the
    directory for the caller's groups."""
    return await run_in_threadpool(
        lambda: decide_on(
            caller, permission, runbook, group, state.grants, state.groups_of, anywhere=anywhere
        )
    )


async def _may(state: State, caller: Caller, permission: Permission, runbook: str | None = None,
               group: str | None = None) -> bool:  # fmt: skip
    return bool(await _decision(state, caller, permission, runbook, group))


async def _require(
    state: State,
    caller: Caller,
    permission: Permission,
    runbook: str | None = None,
    group: str | None = None,
    *,
    anywhere: bool = False,
) -> None:
    decision = await _decision(state, caller, permission, runbook, group, anywhere=anywhere)
    if not decision:
        raise Forbidden(caller, decision)


async def _require_on_job(state: State, caller: Caller, permission: Permission, job_id: str) -> None:
    runbook, group = await state.run(job_target, job_id)
    if runbook is None:
        raise NotFoundError(f"job {job_id} does not exist")
    try:
        await _require(state, caller, permission, runbook, group)
    except Forbidden:
        # As the API words it: a refusal does not tell which runbook another team's job has.
        if permission is Permission.READ:
            raise NotFoundError(f"job {job_id} does not exist") from None
        raise


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the gate capped it); the last value of a repeated field wins."""
    body = await request.body()
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=1000))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError("the form could not be read", hint="send it from the page again") from exc


def _same_origin(request: Request) -> None:
    """A form post must come from this server's own pages. The cookie's SameSite=Strict already
    keeps other sites' posts unauthenticated; this also refuses those sent with a header."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
        raise NotPermittedError("a form of another site may not act here", hint="use this server's pages")


def _local(next_path: str | None) -> str:
    """Where to go after signing in: only a page of this UI (no open redirect)."""
    if (
        next_path
        and next_path.startswith(f"{UI}/")
        and not next_path.startswith(("//", f"{UI}//"))
        and ("\\" not in next_path)
    ):
        return next_path
    return f"{UI}/jobs"


def session_caller(state: State, cookie_header: str) -> Caller | None:
    """The caller a session cookie stands for now (the gate's ``Credentials.ui_session``)."""
    value = cookie_parser(cookie_header).get(COOKIE)
    if not value or state.ui_sessions is None:
        return None
    claims = state.ui_sessions.open(value)
    if claims is None:
        return None
    kind = CallerKind[claims["k"]]
    if kind is CallerKind.ADMIN_TOKEN:
        return Caller(CallerKind.ADMIN_TOKEN, ADMIN_CALLER)
    if kind is CallerKind.API_TOKEN:
        with state.db.session() as session:
            found = tokens.verify_id(session, str(claims.get("t", "")))
        return None if found is None else tokens.as_caller(found)
    return Caller(CallerKind.USER, str(claims["n"]))


def _signed_in(request: Request, state: State, caller: Caller, next_path: str | None) -> Response:
    assert state.ui_sessions is not None
    response = RedirectResponse(_local(next_path), status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        COOKIE, state.ui_sessions.issue(caller), max_age=UI_SESSION_SECONDS, path=UI,
        secure=request.url.scheme == "https", httponly=True, samesite="strict",
    )  # fmt: skip
    return response


# -- sign-in --------------------------------------------------------------------------------------


@router.get("/sign-in")
@guard(Access.PUBLIC, limits.NO_BODY)
async def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _page(request, "sign_in.html", next=_local(next), error=None)


@router.post("/sign-in")
@guard(Access.PUBLIC, SIGN_IN_BODY)
async def create_sign_in(request: Request, state: AppState) -> Response:
    """Sign in with a token typed into the form: an API token, or the admin token."""
    form = await _form(request)
    _same_origin(request)
    presented = form.get("token", "").strip()
    caller: Caller | None = None
    if presented and state.admin.check(presented):
        caller = Caller(CallerKind.ADMIN_TOKEN, ADMIN_CALLER)
    elif presented.startswith("credo_"):
        found = await state.run(tokens.verify, presented)
        caller = None if found is None else tokens.as_caller(found)
    if caller is None:
        audit.note(request, action="ui.sign-in", target="ui", actor="anonymous")
        # Wrong, expired and revoked tokens all get the same answer.
        return _page(
            request, "sign_in.html", 401, next=_local(form.get("next")), error="That token is not accepted."
        )
    audit.note(request, action="ui.sign-in", target="ui", actor=caller.name, method="token")
    return _signed_in(request, state, caller, form.get("next"))


@router.get("/sign-in/kerberos")
@guard(Access.PUBLIC, limits.NO_BODY)
async def kerberos_sign_in(request: Request, state: AppState, next: str | None = None) -> Response:
    """Negotiate (RFC 4559): the browser answers the 401's challenge with the user's ticket (a
    browser does so for the servers its policy names, such as Chromium's AuthServerAllowlist)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "negotiate" or not value.strip():
        challenge = _page(request, "kerberos.html", 401, next=_local(next))
        challenge.headers["WWW-Authenticate"] = "Negotiate"
        return challenge
    try:
        principal, reply = await run_in_threadpool(state.acceptor.accept, value.strip())
    except CredoError as exc:
        # A GET: the audit trail records no read, so the refused ticket is reported here.
        security_events.emit(
            SecurityEvent(
                "server", "server.signin", Outcome.DENIED, Severity.WARNING, "anonymous", "ui",
                {"method": "negotiate", "address": request.client.host if request.client else "",
                 "reason": exc.message},
            )
        )  # fmt: skip
        return _page(request, "sign_in.html", 403, next=_local(next), error=exc.message)
    caller = Caller(CallerKind.USER, principal)
    entry = AuditEntry(
        time=datetime.now(UTC), actor=principal, source=request.client.host if request.client else "",
        action="ui.sign-in", target="ui", outcome=AuditOutcome.OK, details={"method": "negotiate", "via": "ui"},
    )  # fmt: skip
    await run_in_threadpool(audit.write, state.db, entry)
    response = _signed_in(request, state, caller, next)
    if reply:
        response.headers["WWW-Authenticate"] = f"Negotiate {reply}"
    return response


@router.post("/sign-out")
@guard(Access.UI, limits.DEFAULT_BODY)
async def delete_sign_in(request: Request) -> Response:
    _same_origin(request)
    audit.note(request, action="ui.sign-out", target="ui")
    response = RedirectResponse(UI_SIGN_IN, status_code=303)
    response.delete_cookie(COOKIE, path=UI, httponly=True, samesite="strict")
    return response


@router.get("/static/{name}")
@guard(Access.PUBLIC, limits.NO_BODY)
async def static(name: str) -> Response:
    if name not in _STATIC:
        raise NotFoundError(f"no file {name!r}")
    data = resources.files("credo.server.ui").joinpath("static", name).read_bytes()
    return Response(
        data, media_type=_STATIC[name],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )  # fmt: skip


# -- jobs -----------------------------------------------------------------------------------------


@router.get("")
@guard(Access.UI, limits.NO_BODY)
async def home() -> Response:
    return RedirectResponse(f"{UI}/jobs", status_code=303)


@router.get("/jobs")
@guard(Access.UI, limits.NO_BODY)
async def list_jobs(
    request: Request,
    state: AppState,
    state_filter: Annotated[str | None, Query(alias="state", max_length=16)] = None,
    group: Annotated[str | None, Query(max_length=64)] = None,
    runbook: Annotated[str | None, Query(max_length=64)] = None,
    before: Annotated[str | None, Query(max_length=36)] = None,
    rows_only: Annotated[bool, Query(alias="rows")] = False,
) -> HTMLResponse:
    caller = _caller(request)
    await _require(state, caller, Permission.READ, anywhere=True)
    state_filter, group, runbook = state_filter or None, group or None, runbook or None
    # A page of what the caller may read: a scoped reader's page may need several reads.
    shown: list[queries.JobRow] = []
    cursor = before
    for _ in range(5):
        rows = await state.run(
            lambda s, c=cursor: queries.job_rows(
                s, state=state_filter, group=group, runbook=runbook, before=c, limit=UI_PAGE
            )
        )
        seen = await visible(state, caller, [(r.runbook, r.group) for r in rows])
        shown += [row for row, ok in zip(rows, seen, strict=True) if ok]
        if len(rows) < UI_PAGE or len(shown) >= UI_PAGE:
            break
        cursor = rows[-1].id
    shown = shown[:UI_PAGE]
    filters = {"state": state_filter or "", "group": group or "", "runbook": runbook or ""}
    older = f"{UI}/jobs?{urlencode({**filters, 'before': shown[-1].id})}" if len(shown) == UI_PAGE else None
    refresh = f"{UI}/jobs?{urlencode({**filters, 'rows': 'true', **({'before': before} if before else {})})}"
    template = "job_rows.html" if rows_only else "jobs.html"
    groups, runbooks = ([], []) if rows_only else await state.run(_names)
    return _page(
        request, template, jobs=shown, filters=filters, older=older, refresh=refresh,
        states=[s.value for s in JobState], groups=groups, runbooks=runbooks,
    )  # fmt: skip


def _names(session: Any) -> tuple[list[str], list[str]]:
    groups = [g.name for g in views.list_groups(session, 0)]
    runbooks = [r.name for r in views.list_runbooks(session)]
    return groups, runbooks


@router.get("/jobs/{job_id}")
@guard(Access.UI, limits.NO_BODY)
async def show_job(request: Request, state: AppState, job_id: str) -> HTMLResponse:
    caller = _caller(request)
    await _require_on_job(state, caller, Permission.READ, job_id)
    job = await state.run(lambda s: views.job_view(s, views.get_job(s, job_id)))
    may_stop = JobState(job.state) not in TERMINAL and await _may(
        state, caller, Permission.RUN, job.runbook, job.group
    )
    return _page(
        request, "job.html", job=job, may_stop=may_stop, parameters=json.dumps(job.parameters, indent=2)
    )


@router.get("/jobs/{job_id}/events")
@guard(Access.UI, limits.NO_BODY)
async def job_events(request: Request, state: AppState, job_id: str) -> StreamingResponse:
    """The job's output as Server-Sent Events (as the API's feed); a reconnecting browser sends
    ``Last-Event-ID`` and resumes after it."""
    await _require_on_job(state, _caller(request), Permission.READ, job_id)
    last = request.headers.get("last-event-id", "0")
    after = int(last) if last.isdigit() and int(last) <= MAX_POSITION else 0
    return StreamingResponse(
        sse_events(state, job_id, None, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store"},
    )


@router.post("/jobs/{job_id}/stop")
@guard(Access.UI, limits.DEFAULT_BODY)
async def stop_job(request: Request, state: AppState, job_id: str) -> Response:
    _same_origin(request)
    await _require_on_job(state, _caller(request), Permission.RUN, job_id)
    await state.run(lambda s: queue.stop_job(s, job_id))
    audit.note(request, action="job.stop", target=f"job/{job_id}")
    return RedirectResponse(f"{UI}/jobs/{job_id}", status_code=303)


# -- runbooks and the start form --------------------------------------------------------------------


@router.get("/runbooks")
@guard(Access.UI, limits.NO_BODY)
async def list_runbooks(request: Request, state: AppState) -> HTMLResponse:
    caller = _caller(request)
    await _require(state, caller, Permission.READ, anywhere=True)
    runbooks = await state.run(views.list_runbooks)
    seen = await visible(state, caller, [(r.name, None) for r in runbooks])
    return _page(request, "runbooks.html", runbooks=[r for r, ok in zip(runbooks, seen, strict=True) if ok])


def _version(value: str | None, latest: int | None) -> int | None:
    if value is None or value == "":
        return latest
    if not value.isdigit() or int(value) > MAX_POSITION:
        raise InputError(f"version {value[:20]!r} is not a version number", hint="pick one from the list")
    return int(value)


@router.get("/runbooks/{name}")
@guard(Access.UI, limits.NO_BODY)
async def show_runbook(
    request: Request,
    state: AppState,
    name: str,
    show: Annotated[str | None, Query(max_length=20)] = None,
    diff_from: Annotated[str | None, Query(alias="from", max_length=20)] = None,
    diff_to: Annotated[str | None, Query(alias="to", max_length=20)] = None,
) -> HTMLResponse:
    caller = _caller(request)
    await _require(state, caller, Permission.READ, name)
    runbook = await state.run(lambda s: views.runbook_view(s, catalog.get_runbook(s, name)))
    numbers = [v.version for v in runbook.versions]
    latest = numbers[-1] if numbers else None
    shown = _version(show, latest)
    to = _version(diff_to, latest)
    default_from = numbers[-2] if len(numbers) >= 2 else latest
    since = _version(diff_from, default_from)
    script = await state.run(queries.version_content, name, shown) if shown is not None else None
    diff = None
    if since is not None and to is not None and since != to:
        old, new = await state.run(
            lambda s: (queries.version_content(s, name, since), queries.version_content(s, name, to))
        )
        diff = diff_lines(old, new, f"version {since}", f"version {to}")
    groups = await state.run(lambda s: [g.name for g in views.list_groups(s, 0)])
    may_run = any([await _may(state, caller, Permission.RUN, name, g) for g in groups])
    return _page(
        request, "runbook.html", runbook=runbook, shown=shown, script=script, diff=diff,
        diff_from=since, diff_to=to, may_run=may_run and latest is not None,
    )  # fmt: skip


async def _start_context(state: State, caller: Caller, name: str) -> dict[str, Any]:
    def op(session: Any) -> tuple[Any, dict[str, Any], list[str]]:
        runbook = views.runbook_view(session, catalog.get_runbook(session, name))
        schema = catalog.published_schema(session, catalog.get_runbook(session, name))
        groups = [g.name for g in views.list_groups(session, 0)]
        return runbook, schema, groups

    runbook, schema, groups = await state.run(op)
    allowed = [g for g in groups if await _may(state, caller, Permission.RUN, name, g)]
    if not allowed:
        await _require(state, caller, Permission.RUN, name)  # refused: a 403 naming what is missing
        raise InputError(
            "there is no worker group to start it in", hint="an admin creates one: credo group create"
        )
    return {"runbook": runbook, "schema": schema, "groups": allowed, "fields": form_fields(schema)}


@router.get("/runbooks/{name}/start")
@guard(Access.UI, limits.NO_BODY)
async def start_form(request: Request, state: AppState, name: str) -> HTMLResponse:
    context = await _start_context(state, _caller(request), name)
    return _page(request, "start.html", error=None, values={}, key=str(uuid.uuid4()), chosen=None, **context)


@router.post("/runbooks/{name}/start")
@guard(Access.UI, FORM_BODY)
async def start_job(request: Request, state: AppState, name: str) -> Response:
    """Start the job the form describes (the idempotency key in the form makes a second click,
    or a reload of the answer, land on the same job)."""
    form = await _form(request)
    _same_origin(request)
    caller = _caller(request)
    context = await _start_context(state, caller, name)
    group = form.get("group", "")
    key = form.get("key", "")
    try:
        if group not in context["groups"]:
            raise InputError(
                f"worker group {group[:64]!r} is not one you may start jobs in", hint="pick one from the list"
            )
        if not _is_uuid(key):
            raise InputError("the form is incomplete", hint="open the start form again")
        parameters = parse_form(context["schema"], form)

        def op(session: Any) -> tuple[str, bool, int]:
            started = queue.start_job(session, name, group, parameters, idempotency_key=f"ui:{key}")
            audit.record_in(session, request, 303, action="job.start", target=f"job/{started.job_id}",
                            runbook=name, group=group)  # fmt: skip
            return started.job_id, started.created, started.group_id

        job_id, created, group_id = await state.run(op)
    except InputError as exc:
        audit.note(request, action="job.start", target=f"runbook/{name}")
        values = {k.removeprefix("p."): v for k, v in form.items() if k.startswith("p.")}
        return _page(request, "start.html", 422, error=exc, values=values, key=key, chosen=group, **context)
    if created:
        state.notifier.notify(group_id)
    return RedirectResponse(f"{UI}/jobs/{job_id}", status_code=303)


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


# -- schedules, webhooks, workers, audit log ---------------------------------------------------------


@router.get("/schedules")
@guard(Access.UI, limits.NO_BODY)
async def list_schedules(request: Request, state: AppState) -> HTMLResponse:
    caller = _caller(request)
    await _require(state, caller, Permission.READ, anywhere=True)
    rows = await state.run(scheduling.list_schedules)
    seen = await visible(state, caller, [(r.runbook, r.group) for r in rows])
    return _page(request, "schedules.html", schedules=[r for r, ok in zip(rows, seen, strict=True) if ok])


@router.get("/webhooks")
@guard(Access.UI, limits.NO_BODY)
async def list_webhooks(request: Request, state: AppState) -> HTMLResponse:
    await _require(state, _caller(request), Permission.ADMIN)  # as GET /api/v1/webhooks
    return _page(request, "webhooks.html", webhooks=await state.run(webhooks.list_webhooks))


@router.get("/workers")
@guard(Access.UI, limits.NO_BODY)
async def list_workers(request: Request, state: AppState) -> HTMLResponse:
    caller = _caller(request)
    await _require(state, caller, Permission.READ, anywhere=True)
    lost_after = state.config.lost_after_seconds
    groups, running = await state.run(lambda s: (views.list_groups(s, lost_after), queries.running_jobs(s)))
    seen = await visible(state, caller, [(None, g.name) for g in groups])
    return _page(
        request, "workers.html", groups=[g for g, ok in zip(groups, seen, strict=True) if ok], running=running
    )


@router.get("/audit-log")
@guard(Access.UI, limits.NO_BODY)
async def audit_log(
    request: Request, state: AppState, before: Annotated[int | None, Query(ge=1, le=MAX_POSITION)] = None
) -> HTMLResponse:
    await _require(state, _caller(request), Permission.ADMIN)  # as GET /api/v1/audit-log
    records = await state.run(queries.audit_page, before, UI_PAGE)
    older = f"{UI}/audit-log?before={records[-1].seq}" if len(records) == UI_PAGE else None
    return _page(request, "audit.html", records=records, older=older)


# -- errors as pages ----------------------------------------------------------------------------------


def error_page(request: Request, status: int, message: str, hint: str | None) -> HTMLResponse:
    """A refusal or an error under /ui, as a page (the API answers problem documents)."""
    return _page(request, "error.html", status, status=status, message=message, hint=hint)


def install_error_pages(app: Any) -> None:
    """Under /ui, errors are pages; elsewhere the API's problem documents stay as they are."""
    for kind in (CredoError, RequestValidationError, StarletteHTTPException):
        api_handler = app.exception_handlers[kind]

        async def handler(request: Request, exc: Exception, api_handler: Any = api_handler) -> Response:
            if not request.url.path.startswith(f"{UI}/") and request.url.path != UI:
                response: Response = await api_handler(request, exc)
                return response
            if isinstance(exc, CredoError):
                return error_page(request, exc.http_status, exc.message, exc.hint)
            if isinstance(exc, RequestValidationError):
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                return error_page(request, 422, f"{where}: {first.get('msg', 'invalid request')}", None)
            assert isinstance(exc, StarletteHTTPException)
            return error_page(request, exc.status_code, str(exc.detail), None)

        app.add_exception_handler(kind, handler)
