"""/api/v1/audit-log: the audit log's records in chain order, for ``credo audit-log export`` (admin)."""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from credo.automation.auditlog import AuditRecord
from credo.defaults import MAX_AUDIT_PAGE, MAX_POSITION
from credo.server import audit, limits
from credo.server.api import API
from credo.server.dependencies import Admin, AppState
from credo.server.gate import Access, guard
from credo.server.schemas import AuditRecordOut

__all__ = ["router"]

router = APIRouter(prefix=f"{API}/audit-log", tags=["audit log"], dependencies=[Admin])


def _out(record: AuditRecord) -> AuditRecordOut:
    return AuditRecordOut(**record.body(), hash=record.hash)


@router.get("")
@guard(Access.ADMIN, limits.NO_BODY)
async def audit_log(
    state: AppState,
    since: Annotated[datetime | None, Query(description="records from this time on (ISO 8601)")] = None,
    after: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="records after this seq (the last one seen)")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 1000,
) -> list[AuditRecordOut]:
    """A page of records, oldest first; the client verifies the chain (the server is not trusted to)."""
    found = await state.run(audit.records, since, after, limit)
    return [_out(r) for r in found]
