"""What the server does, independent of HTTP: one import for the services of its three modules.

- ``credo.server.catalog``: runbooks (drafts, published versions) and worker groups;
- ``credo.server.queue``: jobs, workers, claims, leases, fences and handbacks;
- ``credo.server.views``: the read models the API answers with.

Every function takes a SQLAlchemy session inside a transaction (``Database.session``) and raises
credo errors; the routes (``credo.server.routes``) turn them into problem documents.
"""

from __future__ import annotations

from credo.defaults import DEFAULT_JOB_TIMEOUT as DEFAULT_TIMEOUT
from credo.errors import Conflict
from credo.server.catalog import (
    create_group,
    create_runbook,
    delete_group,
    delete_runbook,
    get_group,
    get_runbook,
    publish_runbook,
    update_runbook,
)
from credo.server.clock import now
from credo.server.queue import (
    VersionCache,
    WorkerRef,
    append_output,
    claim_jobs,
    claim_payloads,
    drain_worker,
    expire_leases,
    expire_queued,
    finish_job,
    get_worker,
    grace_leases,
    heartbeat,
    register_worker,
    resume_job,
    start_job,
    stop_job,
    worker_ref,
)
from credo.server.views import get_job, job_view, job_views

__all__ = [
    "DEFAULT_TIMEOUT",
    "Conflict",  # moved to credo.errors; kept importable from here
    "VersionCache",
    "WorkerRef",
    "append_output",
    "claim_jobs",
    "claim_payloads",
    "create_group",
    "create_runbook",
    "delete_group",
    "delete_runbook",
    "drain_worker",
    "expire_leases",
    "expire_queued",
    "finish_job",
    "get_group",
    "get_job",
    "get_runbook",
    "get_worker",
    "grace_leases",
    "heartbeat",
    "job_view",
    "job_views",
    "now",
    "publish_runbook",
    "register_worker",
    "resume_job",
    "start_job",
    "stop_job",
    "update_runbook",
    "worker_ref",
]
