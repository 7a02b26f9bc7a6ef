"""/api/v1/runbooks: drafts, published versions (admin)."""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

import base64

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from credo.automation.rbac import Permission
from credo.errors import InputError
from credo.server import catalog, limits, views
from credo.server.api import API
from credo.server.dependencies import Admin, AppState, SignedIn, check_target
from credo.server.gate import Access, guard
from credo.server.schemas import Published, RunbookDetail, RunbookIn, RunbookOut, RunbookUpdate

__all__ = ["router"]

router = APIRouter(prefix=f"{API}/runbooks", tags=["runbooks"], dependencies=[Admin])


def _decode(content: str) -> bytes:
    try:
        return base64.b64decode(content, validate=True)
    except ValueError:
        raise InputError("content: not valid base64") from None


async def _may_choose_subject(state: AppState, caller: SignedIn, runbook: str) -> None:
    """Which token subject a runbook's jobs carry decides which cloud rights they get (the
    federated credentials that match it): the admin's choice (docs/oidc.md), not an author's."""
    await check_target(state, caller, Permission.ADMIN, runbook, None)


@router.post("", status_code=201)
@guard(Access.ADMIN, limits.RUNBOOK_BODY)
async def create_runbook(body: RunbookIn, state: AppState, caller: SignedIn) -> RunbookOut:
    if body.own_token_subject:
        await _may_choose_subject(state, caller, body.name)

    def op(session: Session) -> RunbookOut:
        runbook = catalog.create_runbook(
            session,
            body.name,
            body.type,
            _decode(body.content),
            [p.model_dump() for p in body.parameters],
            body.description,
            body.own_token_subject,
        )
        return views.runbook_view(session, runbook)

    return await state.run(op)


@router.get("")
@guard(Access.ADMIN, limits.NO_BODY)
async def list_runbooks(state: AppState) -> list[RunbookOut]:
    return await state.run(views.list_runbooks)


@router.get("/{name}")
@guard(Access.ADMIN, limits.NO_BODY)
async def show_runbook(name: str, state: AppState) -> RunbookDetail:
    return await state.run(lambda s: views.runbook_detail(s, catalog.get_runbook(s, name)))


@router.patch("/{name}")
@guard(Access.ADMIN, limits.RUNBOOK_BODY)
async def update_runbook(name: str, body: RunbookUpdate, state: AppState, caller: SignedIn) -> RunbookOut:
    if body.own_token_subject is not None:
        await _may_choose_subject(state, caller, name)

    def op(session: Session) -> RunbookOut:
        params = [p.model_dump() for p in body.parameters] if body.parameters is not None else None
        content = _decode(body.content) if body.content is not None else None
        runbook = catalog.update_runbook(
            session, name, content, params, body.description, body.own_token_subject
        )
        return views.runbook_view(session, runbook)

    return await state.run(op)


@router.post("/{name}/publish")
@guard(Access.ADMIN)
async def publish_runbook(name: str, state: AppState) -> Published:
    def op(session: Session) -> Published:
        version = catalog.publish_runbook(session, name)
        return Published(name=name, version=version.version, content_hash=version.content_hash)

    return await state.run(op)


@router.delete("/{name}", status_code=204, response_class=Response)
@guard(Access.ADMIN, limits.NO_BODY)
async def delete_runbook(name: str, state: AppState) -> Response:
    await state.run(catalog.delete_runbook, name)
    return Response(status_code=204)
