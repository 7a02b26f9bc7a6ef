"""/api/v1/webhooks (admin: create, list, show, rotate, enable, disable, delete) and the public
POST /api/v1/hooks/{token} that a sender calls, signed (docs/control-plane.md, "Webhooks")."""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

import math
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from credo.automation import webhooks as rules
from credo.server import audit, limits
from credo.server import webhooks as service
from credo.server.api import API
from credo.server.dependencies import Admin, AppState
from credo.server.gate import Access, guard
from credo.server.problems import problem
from credo.server.schemas import WebhookAccepted, WebhookIn, WebhookOut

__all__ = ["hooks_router", "router"]

router = APIRouter(prefix=f"{API}/webhooks", tags=["webhooks"], dependencies=[Admin])
hooks_router = APIRouter(prefix=f"{API}{service.HOOK_PATH}", tags=["webhooks"])


@router.post("", status_code=201)
@guard(Access.ADMIN)
async def create_webhook(body: WebhookIn, request: Request, state: AppState) -> WebhookOut:
    """The URL and the signing secret are in this answer only."""
    base = str(request.base_url).rstrip("/") + API
    return await state.run(lambda s: service.create_webhook(s, state.sealer, body, base))


@router.get("")
@guard(Access.ADMIN, limits.NO_BODY)
async def list_webhooks(state: AppState) -> list[WebhookOut]:
    return await state.run(service.list_webhooks)


@router.get("/{name}")
@guard(Access.ADMIN, limits.NO_BODY)
async def show_webhook(name: str, state: AppState) -> WebhookOut:
    return await state.run(lambda s: service.webhook_view(s, service.get_webhook(s, name)))


@router.post("/{name}/rotate")
@guard(Access.ADMIN, limits.NO_BODY)
async def rotate_webhook(
    name: str,
    state: AppState,
    overlap: Annotated[
        int, Query(ge=0, le=30 * 86400, description="seconds the old secret stays accepted")
    ] = int(rules.DEFAULT_ROTATION_OVERLAP.total_seconds()),
) -> WebhookOut:
    """A new signing secret (in this answer only); the URL stays."""
    return await state.run(lambda s: service.rotate_webhook(s, state.sealer, name, overlap))


@router.post("/{name}/disable")
@guard(Access.ADMIN, limits.NO_BODY)
async def disable_webhook(name: str, state: AppState) -> WebhookOut:
    return await state.run(lambda s: service.set_enabled(s, name, False))


@router.post("/{name}/enable")
@guard(Access.ADMIN, limits.NO_BODY)
async def enable_webhook(name: str, state: AppState) -> WebhookOut:
    return await state.run(lambda s: service.set_enabled(s, name, True))


@router.delete("/{name}", status_code=204, response_class=Response)
@guard(Access.ADMIN, limits.NO_BODY)
async def delete_webhook(name: str, state: AppState) -> Response:
    await state.run(service.delete_webhook, name)
    return Response(status_code=204)


def _not_found() -> JSONResponse:
    # The framework's own answer to an unknown path, byte for byte: nothing tells them apart.
    return problem(404, "Not Found")


@hooks_router.post(
    "/{token}",
    status_code=202,
    responses={202: {"model": WebhookAccepted, "description": "A job was queued"},
               404: {"description": "Unknown, unsigned, badly signed, replayed, expired or disabled"},
               429: {"description": "Rate-limited; see Retry-After"}},
)  # fmt: skip
@guard(Access.PUBLIC, rules.MAX_BODY_BYTES)
async def call_webhook(
    token: str,
    request: Request,
    state: AppState,
    signature: Annotated[str | None, Header(alias=rules.SIGNATURE_HEADER)] = None,
) -> Response:
    """A signed call: the body becomes the webhook's declared parameter of a new job (202)."""
    body = await request.body()

    def op(session: Session) -> service.CallResult:
        called = service.call(session, state.db.dialect, state.sealer, token, signature, body)
        if called.job_id is not None:  # the job and the record of its start commit together
            audit.record_in(session, request, 202, actor=f"webhook:{called.name}", target=f"webhook/{called.name}",
                            result=str(called.outcome), job=called.job_id)  # fmt: skip
        return called

    result = await state.run(op)
    if result.name is None or result.outcome is None:
        audit.note(request, skip=True)  # a stranger's guess: nothing exists to record
        return _not_found()
    audit.note(request, actor=f"webhook:{result.name}", target=f"webhook/{result.name}",
               result=str(result.outcome))  # fmt: skip
    state.metrics.webhook_calls.labels(result.name, str(result.outcome)).inc()
    if result.outcome is rules.Outcome.RATE_LIMITED:
        response = problem(429, "too many calls", hint="retry after the time in Retry-After")
        response.headers["Retry-After"] = str(max(1, math.ceil(result.retry_after)))
        return response
    if result.outcome is not rules.Outcome.OK:
        return _not_found()
    if result.error is not None:
        return problem(result.error.http_status, result.error)
    assert result.job_id is not None and result.group_id is not None
    audit.note(request, job=result.job_id)
    state.notifier.notify(result.group_id)
    return JSONResponse(WebhookAccepted(job_id=result.job_id).model_dump(), status_code=202)
