"""/api/v1/auth/tokens: named API tokens for automation (role admin): create (shown once), list, revoke."""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from credo.automation.api_tokens import parse_lifetime
from credo.server import limits, tokens
from credo.server.api import API
from credo.server.clock import aware
from credo.server.dependencies import AppState, SignedIn
from credo.server.gate import Access, guard
from credo.server.models import ApiToken
from credo.server.routes.workers import no_store
from credo.server.schemas import ApiTokenCreated, ApiTokenIn, ApiTokenOut

__all__ = ["router"]

router = APIRouter(prefix=f"{API}/auth", tags=["auth"])


def _view(row: ApiToken) -> ApiTokenOut:
    return ApiTokenOut(
        id=row.id, name=row.name, role=row.role, created_by=row.created_by,
        created_at=aware(row.created_at) or row.created_at,
        expires_at=aware(row.expires_at) or row.expires_at,
        last_used_at=aware(row.last_used_at), revoked=row.revoked,
    )  # fmt: skip


@router.post("/tokens", status_code=201)
@guard(Access.ADMIN, limits.TOKEN_BODY)
async def create_token(
    body: ApiTokenIn, caller: SignedIn, state: AppState, response: Response
) -> ApiTokenCreated:
    """A new token: the answer is the only place it appears in clear (stored as its SHA-256)."""
    lifetime = parse_lifetime(body.expires)

    def op(session: Session) -> ApiTokenCreated:
        token, row = tokens.create_token(session, body.name, lifetime, body.role, caller.name)
        return ApiTokenCreated(token=token, **_view(row).model_dump())

    created = await state.run(op)
    no_store(response)
    return created


@router.get("/tokens")
@guard(Access.ADMIN, limits.NO_BODY)
async def list_tokens(caller: SignedIn, state: AppState) -> list[ApiTokenOut]:
    return await state.run(lambda s: [_view(row) for row in tokens.list_tokens(s)])


@router.delete("/tokens/{token_id}")
@guard(Access.ADMIN, limits.NO_BODY)
async def revoke_token(token_id: str, caller: SignedIn, state: AppState) -> ApiTokenOut:
    revoked = await state.run(lambda s: _view(tokens.revoke_token(s, token_id)))
    state.api_tokens.forget()  # at once in this process; in others within ACCESS_CACHE_SECONDS
    return revoked
