"""The API's routes, one ``APIRouter`` per resource; ``credo.server.app`` includes them all.

Each route declares who may call it and its body cap with ``@guard`` under its ``@router.<verb>``
(credo.server.gate checks both before the body is read), answers with a model of
``credo.server.schemas``, and leaves the work, and its transaction, to a service
(catalog, queue, views, identity) run by ``State.run``.
"""

from __future__ import annotations

from credo.server.api import API
from credo.server.routes import (
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

__all__ = [
    "API",
    "auditlog",
    "auth",
    "groups",
    "health",
    "jobs",
    "metrics",
    "oidc",
    "roles",
    "runbooks",
    "schedules",
    "webhooks",
    "workers",
]
