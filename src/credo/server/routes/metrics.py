"""/metrics: Prometheus metrics (text exposition format), from loopback or with the admin token.

Who may scrape: the metrics name runbooks' worker groups and show the load, which is not for
anyone on the network, yet a Prometheus on the same host should not need the admin token (which
would then sit in its configuration). So a caller on a loopback address may scrape without a
credential; any other caller sends ``Authorization: Bearer <admin token>`` (401 otherwise).
A reverse proxy on the same host makes every caller look local: put it in front of /metrics
only with its own access rule.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

import ipaddress
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool

from credo.server import limits
from credo.server.dependencies import AppState
from credo.server.gate import Access, Unauthenticated, guard
from credo.server.metrics import CONTENT_TYPE

__all__ = ["METRICS_PATH", "router"]

METRICS_PATH = "/metrics"
router = APIRouter(tags=["server"])


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get(
    METRICS_PATH,
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": f"Prometheus text format ({CONTENT_TYPE})"}
    },
)
# PUBLIC to the gate: the rule (loopback, else admin) is checked here, where the peer is known.
@guard(Access.PUBLIC, limits.NO_BODY)
async def metrics(
    request: Request, state: AppState, authorization: Annotated[str | None, Header()] = None
) -> Response:
    if not _loopback(request):
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not state.admin.check(value.strip()):
            raise Unauthenticated(Access.ADMIN)
    # The snapshot reads the database: off the event loop.
    body = await run_in_threadpool(state.metrics.render)
    return Response(body, media_type=CONTENT_TYPE)
