"""The HTTP API (FastAPI): paths under /api/v1, OpenAPI at /openapi.json, errors as problem JSON.

Admin endpoints take ``Authorization: Bearer <admin token>``; worker endpoints take a worker
session token obtained with Kerberos (``POST /api/v1/workers/register`` with Negotiate).
Each route declares that access and its body cap with ``@guard``; the gate (credo.server.gate)
enforces both before the body is read.
Claims long-poll: an idle worker's request waits until a job of its group is queued (or
``wait`` seconds pass), so a job starts as soon as it is submitted.
With ``oidc_issuer`` set, the server is also an OIDC issuer (docs/oidc.md): it serves the
discovery document and JWKS under ``/.well-known/`` (public) and mints tokens for running jobs
(``POST .../jobs/{job_id}/token``, worker session) and for hosts' services (``POST /api/v1/tokens``,
Negotiate).
"""

# No `from __future__ import annotations`: FastAPI resolves the closures in endpoint signatures.

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from credo.automation.jobs import TERMINAL, JobState, Stream
from credo.automation.leases import DEFAULT_LEASE_SECONDS, LeasePolicy
from credo.errors import CredoError, InputError, NotFoundError
from credo.oidc.documents import DISCOVERY_PATH, JWKS_PATH
from credo.oidc.issuer import Issuer
from credo.oidc.keys import KEY_FILE_NAME
from credo.server import identity, limits, service
from credo.server.auth import AdminToken, NegotiateAcceptor, SessionTokens
from credo.server.database import Database
from credo.server.gate import (
    NEGOTIATE_REPLY,
    PRINCIPAL,
    Access,
    Credentials,
    Gate,
    Unauthenticated,
    check_routes,
    guard,
)
from credo.server.models import Job, JobOutput, Runbook, RunbookVersion, Worker, WorkerGroup
from credo.server.paths import prepare_data_dir
from credo.server.schemas import (
    DrainIn,
    FinishIn,
    GroupIn,
    GroupUpdate,
    HeartbeatIn,
    HostTokenIn,
    JobIn,
    JobTokenIn,
    OutputIn,
    RegisterIn,
    RunbookIn,
    RunbookUpdate,
)

__all__ = ["ServerConfig", "create_app"]

log = logging.getLogger(__name__)
API = "/api/v1"


@dataclass
class ServerConfig:
    data_dir: Path
    database_url: str
    keytab: Path | None = None
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    lost_after_seconds: float = 60.0
    sweep_interval: float = 1.0
    # The OIDC issuer URL, exactly as the clouds will compare it (none: no tokens), and its key
    # store (default: oidc-keys.json in the data dir, created 0600 at first start).
    oidc_issuer: str | None = None
    oidc_key_file: Path | None = None

    @property
    def leases(self) -> LeasePolicy:
        return LeasePolicy(self.lease_seconds)


class Notifier:
    """Wakes long-polling claims of a group when one of its jobs is queued (same process)."""

    def __init__(self) -> None:
        self._events: dict[int, asyncio.Event] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def event(self, group_id: int) -> asyncio.Event:
        return self._events.setdefault(group_id, asyncio.Event())

    def notify(self, group_id: int) -> None:
        if self.loop is None:
            return
        self.loop.call_soon_threadsafe(lambda: self.event(group_id).set())


@dataclass
class State:
    config: ServerConfig
    db: Database
    admin: AdminToken
    sessions: SessionTokens
    acceptor: NegotiateAcceptor
    notifier: Notifier = field(default_factory=Notifier)
    versions: service.VersionCache = field(default_factory=service.VersionCache)
    # Worker id -> who it is: registrations never change these, and deleting a group clears it.
    workers: dict[int, service.WorkerRef] = field(default_factory=dict)
    issuer: Issuer | None = None
    # Group id -> its identity for the claim answer (None: no tokens); cleared when a group changes.
    identities: dict[int, dict[str, Any] | None] = field(default_factory=dict)


# -- app ---------------------------------------------------------------------------------------------


def _problem(
    status: int, exc: CredoError | str, field_name: str | None = None, **members: Any
) -> JSONResponse:
    """A problem document (RFC 9457); ``members`` are its extension members (§3.2)."""
    message = exc.message if isinstance(exc, CredoError) else exc
    body: dict[str, Any] = {"title": message, "status": status, **members}
    if isinstance(exc, CredoError) and exc.hint:
        body["hint"] = exc.hint
    if field_name:
        body["field"] = field_name
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def create_app(config: ServerConfig) -> FastAPI:
    prepare_data_dir(config.data_dir)
    db = Database(config.database_url)
    db.upgrade()
    state = State(
        config=config,
        db=db,
        admin=AdminToken(config.data_dir / "admin.token"),
        sessions=SessionTokens(),
        acceptor=NegotiateAcceptor(config.keytab),
    )
    if config.oidc_issuer:
        state.issuer = Issuer(config.oidc_issuer, config.oidc_key_file or config.data_dir / KEY_FILE_NAME)
    with db.session() as session:
        service.grace_leases(session, config.lease_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.notifier.loop = asyncio.get_running_loop()
        sweeper = asyncio.create_task(_sweep(state))
        try:
            yield
        finally:
            sweeper.cancel()
            db.engine.dispose()

    app = FastAPI(title="credo", version="1", lifespan=lifespan, openapi_url="/openapi.json")
    app.state.credo = state

    @app.exception_handler(CredoError)
    async def credo_error(_request: Request, exc: CredoError) -> JSONResponse:
        response = _problem(exc.http_status, exc, getattr(exc, "field", None))
        if isinstance(exc, Unauthenticated):
            response.headers["WWW-Authenticate"] = exc.challenge
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            # FastAPI puts the decoder's position (a character index) where a field name goes.
            position = int(first["loc"][-1])
            document = exc.body if isinstance(exc.body, str) else ""
            offset = len(document[:position].encode())
            reason = first.get("ctx", {}).get("error", "malformed")
            return _problem(422, f"body: invalid JSON at byte offset {offset}: {reason}", offset=offset)
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _problem(422, f"{where}: {first.get('msg', 'invalid request')}", where or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own refusals (no such path, wrong method, a body it cannot decode) are
        # problem documents too, not {"detail": ...}.
        title = str(exc.detail)
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            title = f"body: not valid UTF-8 at byte offset {cause.start}"
        response = _problem(exc.status_code, title)
        response.headers.update(exc.headers or {})
        return response

    # The gate (credo.server.gate) has checked the credentials before the body was read; these
    # dependencies repeat the check, cheaply, so that a route never runs without it.
    async def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not state.admin.check(value.strip()):
            raise Unauthenticated(Access.ADMIN)

    async def worker_principal(request: Request) -> str:
        principal = request.scope.get(PRINCIPAL)
        if not isinstance(principal, str):
            raise Unauthenticated(Access.WORKER)
        return principal

    Admin = Depends(admin)

    def known_worker(session: Any, worker_id: int, principal: str) -> service.WorkerRef:
        ref = state.workers.get(worker_id)
        if ref is None or ref.principal != principal:
            ref = service.worker_ref(session, worker_id, principal)
            state.workers[worker_id] = ref
        return ref

    def identity_of(session: Any, group_id: int) -> dict[str, Any] | None:
        """The claim answer's ``identity`` (contract §3), cached per group: claims are the hot path."""
        if group_id not in state.identities:
            state.identities[group_id] = identity.claim_identity(session, state.issuer, group_id)
        return state.identities[group_id]

    def run(fn: Any, *args: Any) -> Any:
        def call() -> Any:
            with db.session() as session:
                return fn(session, *args)

        return run_in_threadpool(call)

    # -- runbooks --

    def runbook_view(session: Any, runbook: Runbook, content: bool = False) -> dict[str, Any]:
        versions = session.scalars(
            select(RunbookVersion)
            .where(RunbookVersion.runbook_id == runbook.id, RunbookVersion.version > 0)
            .order_by(RunbookVersion.version)
        ).all()
        view: dict[str, Any] = {
            "name": runbook.name,
            "type": runbook.type,
            "description": runbook.description,
            "parameters": runbook.draft_parameters,
            "published_version": runbook.published_version,
            "versions": [
                {"version": v.version, "content_hash": v.content_hash, "created_at": v.created_at}
                for v in versions
            ],
            "updated_at": runbook.updated_at,
        }
        if content:
            view["draft_content"] = base64.b64encode(runbook.draft_content).decode()
        return view

    def decode(content: str) -> bytes:
        try:
            return base64.b64decode(content, validate=True)
        except ValueError:
            raise InputError("content: not valid base64") from None

    @app.post(f"{API}/runbooks", status_code=201, dependencies=[Admin], tags=["runbooks"])
    @guard(Access.ADMIN, limits.RUNBOOK_BODY)
    async def create_runbook(body: RunbookIn) -> dict[str, Any]:
        def op(session: Any) -> dict[str, Any]:
            runbook = service.create_runbook(
                session,
                body.name,
                body.type,
                decode(body.content),
                [p.model_dump() for p in body.parameters],
                body.description,
            )
            return runbook_view(session, runbook)

        result: dict[str, Any] = await run(op)
        return result

    @app.get(f"{API}/runbooks", dependencies=[Admin], tags=["runbooks"])
    @guard(Access.ADMIN, limits.NO_BODY)
    async def list_runbooks() -> list[dict[str, Any]]:
        def op(session: Any) -> list[dict[str, Any]]:
            return [
                runbook_view(session, r)
                for r in session.scalars(select(Runbook).order_by(Runbook.name)).all()
            ]

        result: list[dict[str, Any]] = await run(op)
        return result

    @app.get(f"{API}/runbooks/{{name}}", dependencies=[Admin], tags=["runbooks"])
    @guard(Access.ADMIN, limits.NO_BODY)
    async def show_runbook(name: str) -> dict[str, Any]:
        result: dict[str, Any] = await run(
            lambda s: runbook_view(s, service.get_runbook(s, name), content=True)
        )
        return result

    @app.patch(f"{API}/runbooks/{{name}}", dependencies=[Admin], tags=["runbooks"])
    @guard(Access.ADMIN, limits.RUNBOOK_BODY)
    async def update_runbook(name: str, body: RunbookUpdate) -> dict[str, Any]:
        def op(session: Any) -> dict[str, Any]:
            params = [p.model_dump() for p in body.parameters] if body.parameters is not None else None
            content = decode(body.content) if body.content is not None else None
            return runbook_view(
                session, service.update_runbook(session, name, content, params, body.description)
            )

        result: dict[str, Any] = await run(op)
        return result

    @app.post(f"{API}/runbooks/{{name}}/publish", dependencies=[Admin], tags=["runbooks"])
    @guard(Access.ADMIN)
    async def publish_runbook(name: str) -> dict[str, Any]:
        def op(session: Any) -> dict[str, Any]:
            version = service.publish_runbook(session, name)
            return {"name": name, "version": version.version, "content_hash": version.content_hash}

        result: dict[str, Any] = await run(op)
        return result

    @app.delete(f"{API}/runbooks/{{name}}", status_code=204, dependencies=[Admin], tags=["runbooks"])
    @guard(Access.ADMIN, limits.NO_BODY)
    async def delete_runbook(name: str) -> Response:
        await run(service.delete_runbook, name)
        return Response(status_code=204)

    # -- groups --

    def group_view(session: Any, group: WorkerGroup) -> dict[str, Any]:
        workers = session.scalars(select(Worker).where(Worker.group_id == group.id)).all()
        return {
            "name": group.name,
            "run_as": group.run_as,
            "local_user": group.local_user,
            "max_concurrent": group.max_concurrent,
            "allowed_workers": group.allowed_workers,
            "allow_system_user": group.allow_system_user,
            "workers": [worker_view(w, group) for w in workers],
            "identity": identity.identity_json(identity.group_identity(group)),
        }

    def worker_view(worker: Worker, group: WorkerGroup) -> dict[str, Any]:
        last = service._aware(worker.last_heartbeat)
        assert last is not None
        lost = (service.now() - last).total_seconds() > config.lost_after_seconds
        status = worker.status if worker.status != "online" else ("lost" if lost else "online")
        return {
            "id": worker.id,
            "principal": worker.principal,
            "group": group.name,
            "hostname": worker.hostname,
            "slots": worker.slots,
            "last_heartbeat": last,
            "status": status,
        }

    @app.post(f"{API}/groups", status_code=201, dependencies=[Admin], tags=["groups"])
    @guard(Access.ADMIN)
    async def create_group(body: GroupIn) -> dict[str, Any]:
        def op(session: Any) -> dict[str, Any]:
            group = service.create_group(
                session, body.name, body.run_as, body.local_user, body.max_concurrent, body.workers,
                body.allow_system_user,
            )  # fmt: skip
            return group_view(session, group)

        result: dict[str, Any] = await run(op)
        return result

    @app.get(f"{API}/groups", dependencies=[Admin], tags=["groups"])
    @guard(Access.ADMIN, limits.NO_BODY)
    async def list_groups() -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await run(
            lambda s: [
                group_view(s, g) for g in s.scalars(select(WorkerGroup).order_by(WorkerGroup.name)).all()
            ]
        )
        return result

    @app.get(f"{API}/groups/{{name}}", dependencies=[Admin], tags=["groups"])
    @guard(Access.ADMIN, limits.NO_BODY)
    async def show_group(name: str) -> dict[str, Any]:
        result: dict[str, Any] = await run(lambda s: group_view(s, service.get_group(s, name)))
        return result

    @app.patch(f"{API}/groups/{{name}}", dependencies=[Admin], tags=["groups"])
    @guard(Access.ADMIN)
    async def update_group(name: str, body: GroupUpdate) -> dict[str, Any]:
        """Set the group's workload identity settings (the fields sent; null clears one)."""

        def op(session: Any) -> dict[str, Any]:
            group = service.get_group(session, name)
            identity.set_group_identity(session, group, {f: getattr(body, f) for f in body.model_fields_set})
            return group_view(session, group)

        result: dict[str, Any] = await run(op)
        state.identities.clear()
        return result

    @app.delete(f"{API}/groups/{{name}}", status_code=204, dependencies=[Admin], tags=["groups"])
    @guard(Access.ADMIN, limits.NO_BODY)
    async def delete_group(name: str) -> Response:
        await run(service.delete_group, name)
        state.workers.clear()
        state.identities.clear()
        return Response(status_code=204)

    @app.get(f"{API}/workers", dependencies=[Admin], tags=["workers"])
    @guard(Access.ADMIN, limits.NO_BODY)
    async def list_workers() -> list[dict[str, Any]]:
        def op(session: Any) -> list[dict[str, Any]]:
            rows = session.execute(
                select(Worker, WorkerGroup).join(WorkerGroup, Worker.group_id == WorkerGroup.id)
            ).all()
            return [worker_view(w, g) for w, g in rows]

        result: list[dict[str, Any]] = await run(op)
        return result

    # -- jobs --

    @app.post(f"{API}/jobs", status_code=201, dependencies=[Admin], tags=["jobs"])
    @guard(Access.ADMIN, limits.JOB_BODY)
    async def start_job(body: JobIn, response: Response, test: bool = False) -> dict[str, Any]:
        def op(session: Any) -> tuple[dict[str, Any], bool, int]:
            job, created, view = service.start_job(
                session, body.runbook, body.group, body.parameters,
                idempotency_key=body.idempotency_key, timeout_seconds=body.timeout_seconds, test=test,
            )  # fmt: skip
            return view, created, job.group_id

        view, created, group_id = await run(op)
        if created:
            state.notifier.notify(group_id)
        else:
            response.status_code = 200
        result: dict[str, Any] = view
        return result

    @app.get(f"{API}/jobs", dependencies=[Admin], tags=["jobs"])
    @guard(Access.ADMIN, limits.NO_BODY)
    async def list_jobs(
        state_filter: Annotated[str | None, Query(alias="state")] = None,
        group: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> list[dict[str, Any]]:
        def op(session: Any) -> list[dict[str, Any]]:
            query = select(Job).order_by(Job.created_at.desc()).limit(limit)
            if state_filter:
                query = query.where(Job.state == state_filter)
            if group:
                query = query.where(Job.group_id == service.get_group(session, group).id)
            return service.job_views(session, session.scalars(query).all())

        result: list[dict[str, Any]] = await run(op)
        return result

    @app.get(f"{API}/jobs/{{job_id}}", dependencies=[Admin], tags=["jobs"])
    @guard(Access.ADMIN, limits.NO_BODY)
    async def show_job(job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await run(lambda s: service.job_view(s, service.get_job(s, job_id)))
        return result

    @app.post(f"{API}/jobs/{{job_id}}/stop", dependencies=[Admin], tags=["jobs"])
    @guard(Access.ADMIN)
    async def stop_job(job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await run(lambda s: service.job_view(s, service.stop_job(s, job_id)))
        return result

    @app.post(f"{API}/jobs/{{job_id}}/resume", dependencies=[Admin], tags=["jobs"])
    @guard(Access.ADMIN, limits.NO_BODY)
    async def resume_job(job_id: str) -> dict[str, Any]:
        """Queue a Suspended job again (from the start), with three more attempts."""

        def op(session: Any) -> tuple[dict[str, Any], int]:
            job = service.resume_job(session, job_id)
            return service.job_view(session, job), job.group_id

        view, group_id = await run(op)
        state.notifier.notify(group_id)
        result: dict[str, Any] = view
        return result

    def read_output(
        session: Any, job_id: str, stream: Stream | None, after: int, limit: int
    ) -> dict[str, Any]:
        job = service.get_job(session, job_id)
        query = select(JobOutput).where(JobOutput.job_id == job_id).order_by(JobOutput.id).limit(limit)
        if stream is not None:
            query = query.where(JobOutput.stream == stream.value, JobOutput.seq > after)
        else:
            query = query.where(JobOutput.id > after)
        chunks = session.scalars(query).all()
        return {
            "job_id": job_id,
            "state": job.state,
            "complete": JobState(job.state) in TERMINAL,
            "chunks": [
                {
                    "id": c.id,
                    "stream": c.stream,
                    "seq": c.seq,
                    "attempt": c.attempt,
                    "text": c.text,
                    "at": c.at,
                }
                for c in chunks
            ],
        }

    @app.get(f"{API}/jobs/{{job_id}}/output", dependencies=[Admin], tags=["jobs"])
    @guard(Access.ADMIN, limits.NO_BODY)
    async def job_output(
        job_id: str,
        stream: Stream | None = None,
        after: Annotated[
            int, Query(ge=0, description="seq (with stream) or id (all streams) already seen")
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await run(read_output, job_id, stream, after, limit)
        return result

    @app.get(f"{API}/jobs/{{job_id}}/output/events", dependencies=[Admin], tags=["jobs"])
    @guard(Access.ADMIN, limits.NO_BODY)
    async def job_output_events(
        job_id: str, stream: Stream | None = None, after: int = 0
    ) -> StreamingResponse:
        """Server-Sent Events: one ``chunk`` event per chunk, then ``end`` with the final state."""
        await run(service.get_job, job_id)

        async def events() -> AsyncIterator[str]:
            cursor = after
            while True:
                page = await run(read_output, job_id, stream, cursor, 1000)
                for chunk in page["chunks"]:
                    cursor = chunk["seq"] if stream is not None else chunk["id"]
                    yield f"event: chunk\nid: {cursor}\ndata: {json.dumps(chunk, default=str)}\n\n"
                if page["complete"] and not page["chunks"]:
                    yield f"event: end\ndata: {json.dumps({'state': page['state']})}\n\n"
                    return
                if not page["chunks"]:
                    await asyncio.sleep(0.1)

        return StreamingResponse(events(), media_type="text/event-stream")

    # -- workers --

    @app.post(f"{API}/workers/register", tags=["worker protocol"])
    @guard(Access.NEGOTIATE)
    async def register(body: RegisterIn, request: Request, response: Response) -> dict[str, Any]:
        # The gate accepted the Negotiate token before reading the body.
        principal = await worker_principal(request)
        reply = request.scope.get(NEGOTIATE_REPLY)
        if reply:
            response.headers["WWW-Authenticate"] = f"Negotiate {reply}"

        def op(session: Any) -> tuple[dict[str, Any], list[str], int]:
            worker, requeued = service.register_worker(
                session, principal, body.group, body.hostname, body.slots, body.instance
            )
            group = session.get(WorkerGroup, worker.group_id)
            return {"worker_id": worker.id, "principal": principal, "group": group.name, "run_as": group.run_as,
                    "local_user": group.local_user, "max_concurrent": group.max_concurrent,
                    "allow_system_user": group.allow_system_user}, requeued, group.id  # fmt: skip

        view, requeued, group_id = await run(op)
        if requeued:
            state.notifier.notify(group_id)
            log.info("worker %s restarted: %d job(s) requeued", principal, len(requeued))
        view["session_token"] = state.sessions.issue(principal)
        view["lease_seconds"] = config.lease_seconds
        answer: dict[str, Any] = view
        return answer

    @app.post(f"{API}/workers/{{worker_id}}/heartbeat", tags=["worker protocol"])
    @guard(Access.WORKER)
    async def worker_heartbeat(
        worker_id: int, body: HeartbeatIn, principal: Annotated[str, Depends(worker_principal)]
    ) -> dict[str, Any]:
        def op(session: Any) -> dict[str, Any]:
            worker = service.get_worker(session, worker_id, principal)
            stop = service.heartbeat(
                session,
                worker,
                [(lease.job_id, lease.lease_token) for lease in body.leases],
                config.lease_seconds,
            )
            return {"stop": stop}

        result: dict[str, Any] = await run(op)
        return result

    @app.post(f"{API}/workers/{{worker_id}}/drain", tags=["worker protocol"])
    @guard(Access.WORKER)
    async def worker_drain(
        worker_id: int, body: DrainIn, principal: Annotated[str, Depends(worker_principal)]
    ) -> dict[str, Any]:
        """The worker is stopping (``final``: has stopped): no new jobs; jobs it does not hold go back."""

        def op(session: Any) -> tuple[int, list[str]]:
            worker = known_worker(session, worker_id, principal)
            leases = [(lease.job_id, lease.lease_token) for lease in body.leases]
            return worker.group_id, service.drain_worker(session, worker, leases, body.final)

        group_id, requeued = await run(op)
        # Also ends the worker's own pending long-poll: its claim loop sees it is no longer online.
        state.notifier.notify(group_id)
        return {"requeued": requeued}

    @app.post(f"{API}/workers/{{worker_id}}/claim", tags=["worker protocol"])
    @guard(Access.WORKER)
    async def claim(
        request: Request,
        worker_id: int,
        principal: Annotated[str, Depends(worker_principal)],
        slots: Annotated[int, Query(ge=1, le=64)] = 1,
        wait: Annotated[float, Query(ge=0, le=60)] = 25.0,
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        group_id: int | None = None
        while True:

            def op(session: Any, woken: bool) -> tuple[int, list[dict[str, Any]], bool]:
                worker = known_worker(session, worker_id, principal)
                # Woken (not the first pass): a worker that said it is stopping waits no more.
                if woken and session.scalar(select(Worker.status).where(Worker.id == worker_id)) != "online":
                    return worker.group_id, [], False
                claimed = service.claim_jobs(session, worker, slots, config.lease_seconds, db.dialect)
                if claimed:
                    identity_of(session, worker.group_id)
                return worker.group_id, service.claim_payloads(session, claimed, state.versions), True

            if group_id is not None:
                state.notifier.event(group_id).clear()
                # A worker that went away (killed, restarted) must not be handed a job it will never run.
                if await request.is_disconnected():
                    return {"jobs": []}
            group_id, jobs, online = await run(op, group_id is not None)
            remaining = deadline - loop.time()
            if jobs or not online or remaining <= 0:
                return {"jobs": jobs, "identity": state.identities.get(group_id) if jobs else None}
            event = state.notifier.event(group_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(remaining, 5.0))

    @app.get(f"{API}/workers/{{worker_id}}/jobs/{{job_id}}/content", tags=["worker protocol"])
    @guard(Access.WORKER, limits.NO_BODY)
    async def job_content(
        worker_id: int, job_id: str, lease_token: int, principal: Annotated[str, Depends(worker_principal)]
    ) -> Response:
        def op(session: Any) -> bytes:
            worker = known_worker(session, worker_id, principal)
            job = service._fenced(session, job_id, worker, lease_token)
            version = session.get(RunbookVersion, job.version_id)
            return bytes(version.content)

        content: bytes = await run(op)
        return Response(content, media_type="application/octet-stream")

    @app.post(f"{API}/workers/{{worker_id}}/jobs/{{job_id}}/output", tags=["worker protocol"])
    @guard(Access.WORKER, limits.WORKER_REPORT_BODY)
    async def job_append(
        worker_id: int, job_id: str, body: OutputIn, principal: Annotated[str, Depends(worker_principal)]
    ) -> dict[str, Any]:
        def op(session: Any) -> dict[str, Any]:
            worker = known_worker(session, worker_id, principal)
            stop = service.append_output(
                session, worker, job_id, body.lease_token, [(c.stream.value, c.text) for c in body.chunks]
            )
            return {"stop": stop}

        result: dict[str, Any] = await run(op)
        return result

    @app.post(f"{API}/workers/{{worker_id}}/jobs/{{job_id}}/finish", tags=["worker protocol"])
    @guard(Access.WORKER, limits.WORKER_REPORT_BODY)
    async def job_finish(
        worker_id: int,
        job_id: str,
        body: FinishIn,
        principal: Annotated[str, Depends(worker_principal)],
        claim: Annotated[
            int, Query(ge=0, le=64, description="Also claim up to this many queued jobs (no waiting)")
        ] = 0,
    ) -> dict[str, Any]:
        def op(session: Any) -> dict[str, Any]:
            worker = known_worker(session, worker_id, principal)
            if body.chunks:
                chunks = [(c.stream.value, c.text) for c in body.chunks]
                service.append_output(session, worker, job_id, body.lease_token, chunks)
            finished, ended_now = service.finish_job(
                session, worker, job_id, body.lease_token, body.exit_code, body.reason, body.stopped,
                body.handback,
            )  # fmt: skip
            answer: dict[str, Any] = {"state": finished}
            if claim:
                # The slot this job leaves goes to the next queued job in the same round trip.
                claimed = service.claim_jobs(
                    session,
                    worker,
                    claim,
                    config.lease_seconds,
                    db.dialect,
                    handover=ended_now and claim == 1,
                )
                answer["jobs"] = service.claim_payloads(session, claimed, state.versions)
                answer["identity"] = identity_of(session, worker.group_id) if claimed else None
            return answer

        result: dict[str, Any] = await run(op)
        return result

    @app.post(f"{API}/workers/{{worker_id}}/jobs/{{job_id}}/token", tags=["worker protocol"])
    @guard(Access.WORKER, limits.TOKEN_BODY)
    async def job_token(
        worker_id: int, job_id: str, body: JobTokenIn, principal: Annotated[str, Depends(worker_principal)]
    ) -> Response:
        """A token for one of the worker's running jobs (403: not its lease, or an unlisted audience)."""

        def op(session: Any) -> dict[str, Any]:
            worker = known_worker(session, worker_id, principal)
            issued = identity.job_token(
                session, state.issuer, worker.id, worker.principal, job_id, body.lease, body.audience,
                body.runbook_subject, body.gmsa_sid,
            )  # fmt: skip
            return identity.token_answer(issued)

        return _no_store(await run(op))

    @app.post(f"{API}/tokens", tags=["worker protocol"])
    @guard(Access.NEGOTIATE, limits.TOKEN_BODY)
    async def host_token(body: HostTokenIn, request: Request) -> Response:
        """A token for a service on a host that may serve the group (Negotiate as its computer account)."""
        principal = await worker_principal(request)
        issued = await run(
            identity.host_token, state.issuer, principal, body.group, body.audience, body.service
        )
        response = _no_store(identity.token_answer(issued))
        reply = request.scope.get(NEGOTIATE_REPLY)
        if reply:
            response.headers["WWW-Authenticate"] = f"Negotiate {reply}"
        return response

    def well_known(document: str) -> Any:
        async def serve() -> Response:
            if state.issuer is None:
                raise NotFoundError(
                    "this server is no OIDC issuer",
                    hint="start it with --oidc-issuer https://... (docs/oidc.md)",
                )
            body = state.issuer.discovery() if document == "discovery" else state.issuer.jwks()
            # Cacheable: clouds refetch on their own schedule; five minutes lets a rotation show soon.
            return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})

        serve.__name__ = f"oidc_{document}"
        return guard(Access.PUBLIC, limits.NO_BODY)(serve)

    # At the root, and under the issuer's path if it has one (https://host/credo -> /credo/.well-known/...).
    prefixes = {""}
    if config.oidc_issuer:
        prefixes.add(urlsplit(config.oidc_issuer).path.rstrip("/"))
    for prefix in sorted(prefixes):
        app.get(prefix + DISCOVERY_PATH, tags=["oidc"])(well_known("discovery"))
        app.get(prefix + JWKS_PATH, tags=["oidc"])(well_known("jwks"))

    @app.get(f"{API}/health", tags=["server"])
    @guard(Access.PUBLIC, limits.NO_BODY)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    check_routes(app.router.routes, API)
    credentials = Credentials(
        admin=state.admin.check, session=state.sessions.principal, negotiate=state.acceptor.accept
    )
    app.add_middleware(Gate, routes=app.router.routes, prefix=API, credentials=credentials)
    return app


def _no_store(answer: dict[str, Any]) -> Response:
    """A token answer: no cache may keep it (RFC 9111 §5.2.2.5)."""
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


async def _sweep(state: State) -> None:
    """Expire leases of lost workers every ``sweep_interval`` seconds; wake their groups."""
    while True:
        await asyncio.sleep(state.config.sweep_interval)
        try:

            def op() -> list[int]:
                with state.db.session() as session:
                    requeued = service.expire_leases(session, state.config.leases.takeover_grace)
                    service.expire_queued(session)
                    return [job.group_id for j in requeued if (job := session.get(Job, j)) is not None]

            for group_id in await run_in_threadpool(op):
                state.notifier.notify(group_id)
        except Exception:  # the sweeper must survive a database hiccup
            log.exception("lease sweep failed; retrying in %.1f s", state.config.sweep_interval)
