"""What a running server holds: its configuration, database, credentials and in-process caches.

One ``State`` per app (``app.state.credo``); routes reach it through ``credo.server.dependencies``.
The caches hold only what never changes under them, or is cleared where it changes: who a worker
is, a group's identity for claim answers, runbook versions (immutable).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from credo.automation.leases import DEFAULT_LEASE_SECONDS, LeasePolicy
from credo.automation.rbac import Grant
from credo.automation.webhooks import SecretSealer
from credo.defaults import (
    ACCESS_CACHE_SECONDS,
    CLAIM_RECHECK_SECONDS,
    CLAIM_RECHECK_UNLINKED_SECONDS,
    LOST_AFTER_SECONDS,
)
from credo.oidc.issuer import Issuer
from credo.server import grants, identity, queue, views, webhooks
from credo.server.access import grantee, own_role
from credo.server.auth import AdminToken, NegotiateAcceptor, SessionTokens
from credo.server.clock import aware, now
from credo.server.database import Database
from credo.server.directory import GroupResolver
from credo.server.gate import Caller
from credo.server.metrics import QueueSnapshot, ServerMetrics
from credo.server.models import WorkerGroup
from credo.server.notifier import Notifier
from credo.server.schemas import GroupIdentity
from credo.server.tokens import RecentTokens
from credo.server.ui.session import SessionCookies
from credo.server.wakeups import PgWakeups

__all__ = ["Notifier", "ServerConfig", "State"]

T = TypeVar("T")


@dataclass
class ServerConfig:
    data_dir: Path
    database_url: str
    keytab: Path | None = None
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    lost_after_seconds: float = LOST_AFTER_SECONDS
    sweep_interval: float = 1.0
    # How often the scheduler looks for due schedules: well inside MISFIRE_GRACE (60 s), so a
    # fire counts as on time unless the server was down or stalled.
    schedule_interval: float = 5.0
    # The OIDC issuer URL, exactly as the clouds will compare it (none: no tokens), and its key
    # store (default: oidc-keys.json in the data dir, created 0600 at first start).
    oidc_issuer: str | None = None
    oidc_key_file: Path | None = None

    @property
    def leases(self) -> LeasePolicy:
        return LeasePolicy(self.lease_seconds)


@dataclass
class State:
    config: ServerConfig
    db: Database
    admin: AdminToken
    sessions: SessionTokens
    acceptor: NegotiateAcceptor
    notifier: Notifier = field(default_factory=Notifier)
    versions: queue.VersionCache = field(default_factory=queue.VersionCache)
    # Worker id -> who it is: registrations never change these, and deleting a group clears it.
    workers: dict[int, queue.WorkerRef] = field(default_factory=dict)
    issuer: Issuer | None = None
    # The web UI's session cookies (credo.server.ui.session); set by create_app.
    ui_sessions: SessionCookies | None = None
    # Wake-ups from the other server processes on the same PostgreSQL (credo.server.wakeups);
    # set by the app's lifespan, None on SQLite.
    wakeups: PgWakeups | None = None
    # Group id -> its identity for the claim answer (None: no tokens); cleared when a group changes.
    identities: dict[int, GroupIdentity | None] = field(default_factory=dict)
    metrics: ServerMetrics = field(init=False)
    # Seals and opens webhook signing secrets (the key file in the data dir).
    sealer: SecretSealer = field(init=False)
    # API tokens verified in the last few seconds (credo.server.tokens).
    api_tokens: RecentTokens = field(default_factory=lambda: RecentTokens(ACCESS_CACHE_SECONDS))

    def __post_init__(self) -> None:
        self.metrics = ServerMetrics(self.queue_snapshot)
        self.sealer = webhooks.load_sealer(self.config.data_dir)

    def queue_snapshot(self) -> QueueSnapshot:
        """What /metrics reads from the database at scrape time (blocking)."""
        with self.db.session() as session:
            return views.queue_snapshot(session, self.config.lost_after_seconds)

    # Who is in which group: the directory's tokenGroups, cached per user (credo.server.directory).
    groups: GroupResolver = field(default_factory=lambda: GroupResolver(None))
    _grants: tuple[float, list[Grant]] | None = None
    _grants_lock: threading.Lock = field(default_factory=threading.Lock)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(session, *args)`` in one transaction, on a worker thread (the database blocks)."""

        def call() -> T:
            with self.db.session() as session:
                return fn(session, *args)

        return await run_in_threadpool(call)

    def claim_recheck(self) -> float:
        """How long a waiting claim trusts the wake-ups (credo.server.notifier) before it looks."""
        if self.wakeups is not None and not self.wakeups.listening.is_set():
            return CLAIM_RECHECK_UNLINKED_SECONDS
        return CLAIM_RECHECK_SECONDS

    def worker(self, session: Session, worker_id: int, principal: str) -> queue.WorkerRef:
        """Who worker ``worker_id`` is, if it is ``principal``'s (NotPermittedError otherwise)."""
        ref = self.workers.get(worker_id)
        if ref is None or ref.principal != principal:
            ref = queue.worker_ref(session, worker_id, principal)
            self.workers[worker_id] = ref
        return ref

    def identity(self, session: Session, group_id: int) -> GroupIdentity | None:
        """The claim answer's ``identity`` (contract §3), cached per group: claims are the hot path."""
        if group_id not in self.identities:
            found = identity.claim_identity(session, self.issuer, group_id)
            self.identities[group_id] = GroupIdentity(**found) if found is not None else None
        return self.identities[group_id]

    def observe_claims(self, session: Session, group_id: int, claimed: list[queue.Claimed]) -> None:
        """Submit-to-start of the jobs just claimed (first attempts: a retry's wait is not a start)."""
        first = [c for c in claimed if c.attempt == 1]
        if not first:
            return
        group = session.get(WorkerGroup, group_id)
        stamp = now()
        for c in first:
            created = aware(c.created_at)
            assert created is not None
            self.metrics.job_started(
                group.name if group else str(group_id), (stamp - created).total_seconds()
            )

    def grants(self) -> list[Grant]:
        """The role grants (credo.automation.rbac), read again after ACCESS_CACHE_SECONDS (another
        server process on the same database may have changed them) or after a change here."""
        with self._grants_lock:
            cached = self._grants
            if cached is None or time.monotonic() - cached[0] > ACCESS_CACHE_SECONDS:
                with self.db.session() as session:
                    cached = self._grants = (time.monotonic(), grants.current(session))
            return cached[1]

    def decides_at_once(self, caller: Caller) -> bool:
        """Can what ``caller`` may do be decided without blocking on the database or the
        directory (then on the event loop, without a thread's round trip)? Yes for a role of its
        own, and for grants and the grantee's groups both cached."""
        if own_role(caller) is not None:
            return True
        with self._grants_lock:
            cached = self._grants
        if cached is None or time.monotonic() - cached[0] > ACCESS_CACHE_SECONDS:
            return False
        principal = grantee(caller)
        return not cached[1] or not principal or self.groups.cached(principal)

    def forget_grants(self) -> None:
        with self._grants_lock:
            self._grants = None

    def groups_of(self, principal: str) -> frozenset[str]:
        """The names and SIDs of a user's groups, nested included (``groups``, cached per user
        for its TTL); the principal itself too, so that a grant may name one user."""
        return self.groups.of(principal)

    def forget_groups(self) -> None:
        """A group changed or went: what was cached of groups and their workers is stale."""
        self.workers.clear()
        self.identities.clear()
