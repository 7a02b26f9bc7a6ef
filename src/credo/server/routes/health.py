"""/api/v1/health: whether the server answers (public)."""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

from fastapi import APIRouter

from credo.server import limits
from credo.server.api import API
from credo.server.gate import Access, guard
from credo.server.schemas import Health

__all__ = ["router"]

router = APIRouter(prefix=API, tags=["server"])


@router.get("/health")
@guard(Access.PUBLIC, limits.NO_BODY)
async def health() -> Health:
    return Health(status="ok")
