"""The HTTP API (FastAPI): paths under /api/v1, OpenAPI at /openapi.json, errors as problem JSON.

``create_app`` only assembles: the data dir and database, the server's state, one router per
resource (credo.server.routes), the error handlers (credo.server.problems) and the gate.

User endpoints take ``Authorization: Negotiate`` (a user's Kerberos ticket) or ``Bearer`` (an API
token, or the admin token for bootstrap), then check the route's permission (credo.server.access);
worker endpoints take a worker session token obtained with Kerberos (``POST
/api/v1/workers/register`` with Negotiate).
Each route declares that access and its body cap with ``@guard``; the gate (credo.server.gate)
enforces both before the body is read.
With ``oidc_issuer`` set, the server is also an OIDC issuer (docs/oidc.md): it serves the
discovery document and JWKS under ``/.well-known/`` (public) and mints tokens for running jobs
(``POST .../jobs/{job_id}/token``, worker session) and for hosts' services (``POST /api/v1/tokens``,
Negotiate).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from credo.defaults import AUDIT_LINK_INTERVAL
from credo.oidc.issuer import Issuer
from credo.oidc.keys import KEY_FILE_NAME
from credo.server import audit, queue, scheduling, tokens
from credo.server.access import check_needs
from credo.server.audit import AuditTrail
from credo.server.auth import SESSION_KEY_FILE, AdminToken, NegotiateAcceptor, SessionTokens
from credo.server.database import Database
from credo.server.directory import GroupResolver
from credo.server.gate import Caller, Credentials, Gate, check_routes
from credo.server.models import Job
from credo.server.paths import prepare_data_dir
from credo.server.problems import install_error_handlers
from credo.server.routes import (
    API,
    auditlog,
    auth,
    groups,
    health,
    jobs,
    metrics,
    oidc,
    roles,
    runbooks,
    schedules,
    webhooks,
    workers,
)
from credo.server.state import ServerConfig, State
from credo.server.ui import routes as ui
from credo.server.ui.session import SessionCookies
from credo.server.wakeups import PgWakeups

__all__ = ["API", "ServerConfig", "create_app"]

log = logging.getLogger(__name__)


def create_app(config: ServerConfig) -> FastAPI:
    prepare_data_dir(config.data_dir)
    db = Database(config.database_url)
    db.upgrade()
    state = State(
        config=config,
        db=db,
        admin=AdminToken(config.data_dir / "admin.token"),
        sessions=SessionTokens(config.data_dir / SESSION_KEY_FILE),
        acceptor=NegotiateAcceptor(config.keytab),
        groups=GroupResolver(config.keytab),
    )
    state.ui_sessions = SessionCookies(config.data_dir, state.admin.fingerprint)
    if config.oidc_issuer:
        state.issuer = Issuer(config.oidc_issuer, config.oidc_key_file or config.data_dir / KEY_FILE_NAME)
    with db.session() as session:
        queue.grace_leases(session, config.lease_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        notifier = state.notifier
        notifier.loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(_sweep(state)), asyncio.create_task(_schedule(state))]
        wakeups = None
        if db.dialect == "postgresql":  # several server processes may share it (docs/scaling.md)
            wakeups = state.wakeups = PgWakeups(db.url, notifier.wake, notifier.wake_all)
            notifier.publish = wakeups.publish
            tasks.append(asyncio.create_task(wakeups.run()))
            tasks.append(asyncio.create_task(_link_audit(state)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if wakeups is not None:
                notifier.publish = None
                await wakeups.close()
            db.engine.dispose()

    app = FastAPI(title="credo", version="1", lifespan=lifespan, openapi_url="/openapi.json")
    app.state.credo = state
    install_error_handlers(app)
    ui.install_error_pages(app)
    # The routers' routes join the app's own list, flat (not with include_router, which newer
    # FastAPI keeps as one nested entry per router): the gate matches each request against that
    # list, and check_routes reads each route's declared policy from it.
    for router in (
        runbooks.router,
        groups.router,
        groups.workers_router,
        jobs.router,
        schedules.router,
        webhooks.router,
        webhooks.hooks_router,
        workers.router,
        oidc.router,
        health.router,
        auditlog.router,
        metrics.router,
        auth.router,
        roles.router,
        oidc.well_known_router(config.oidc_issuer),
        ui.router,
    ):
        app.router.routes.extend(router.routes)

    check_routes(app.router.routes, API)
    check_needs(app.router.routes)

    def api_token(presented: str) -> Caller | None:
        generation = state.api_tokens.generation
        with db.session() as session:
            found = tokens.verify(session, presented)
        return None if found is None else state.api_tokens.put(presented, found, generation)

    credentials = Credentials(
        admin=state.admin.check,
        session=state.sessions.principal,
        api_token=api_token,
        recent_api_token=state.api_tokens.get,
        negotiate=state.acceptor.accept,
        ui_session=lambda cookie: ui.session_caller(state, cookie),
    )
    app.add_middleware(Gate, routes=app.router.routes, prefix=API, credentials=credentials)
    # Added last, so outermost: it records the gate's refusals too (credo.server.audit).
    app.add_middleware(AuditTrail, routes=app.router.routes, prefixes=(API, ui.UI), db=db)
    return app


async def _sweep(state: State) -> None:
    """Expire leases of lost workers every ``sweep_interval`` seconds; wake their groups."""
    while True:
        await asyncio.sleep(state.config.sweep_interval)
        try:

            def op() -> list[int]:
                with state.db.session() as session:
                    requeued = queue.expire_leases(session, state.config.leases.takeover_grace)
                    queue.expire_queued(session)
                    return [job.group_id for j in requeued if (job := session.get(Job, j)) is not None]

            for group_id in await run_in_threadpool(op):
                state.notifier.notify(group_id)
        except Exception:  # the sweeper must survive a database hiccup
            log.exception("lease sweep failed; retrying in %.1f s", state.config.sweep_interval)


async def _link_audit(state: State) -> None:
    """Chain the audit records appended since, every AUDIT_LINK_INTERVAL (PostgreSQL; see
    credo.server.audit): a batch a transaction, so that none holds the chain's lock long."""
    while True:
        await asyncio.sleep(AUDIT_LINK_INTERVAL)
        try:
            while await state.run(audit.link_in, audit.LINK_BATCH) == audit.LINK_BATCH:
                pass
        except Exception:  # the linker must survive a database hiccup; readers link as well
            log.exception("audit linking failed; retrying in %.1f s", AUDIT_LINK_INTERVAL)


async def _schedule(state: State) -> None:
    """Fire due schedules every ``schedule_interval`` seconds (credo.server.scheduling.tick)."""
    while True:
        await asyncio.sleep(state.config.schedule_interval)
        try:
            fired = await state.run(scheduling.tick, state.db.dialect, None)
            for f in fired:
                if f.started:
                    state.metrics.schedule_fires.labels(f.schedule).inc(f.started)
                    state.notifier.notify(f.group_id, f.started)
                if f.missed:
                    state.metrics.schedule_misses.labels(f.schedule, f.policy).inc(f.missed)
        except Exception:  # the scheduler must survive a database hiccup; the window waits for it
            log.exception("schedule tick failed; retrying in %.1f s", state.config.schedule_interval)
