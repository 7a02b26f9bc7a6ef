"""Every refusal as a problem document (RFC 9457): credo errors, invalid requests, the framework's own.

A problem names what was wrong in ``title`` (one line, as the CLI prints it), adds ``hint`` where
credo knows the fix and ``field`` where one field is at fault; clients rebuild the credo error
from the status with ``credo.errors.error_for_status``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from credo.errors import CredoError
from credo.server.gate import Unauthenticated

__all__ = ["install_error_handlers", "problem"]


def problem(
    status: int, exc: CredoError | str, field_name: str | None = None, **members: Any
) -> JSONResponse:
    """A problem document (RFC 9457); ``members`` are its extension members (§3.2)."""
    message = exc.message if isinstance(exc, CredoError) else exc
    body: dict[str, Any] = {"title": message, "status": status, **members}
    if isinstance(exc, CredoError) and exc.hint:
        body["hint"] = exc.hint
    if field_name:
        body["field"] = field_name
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


async def _credo_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CredoError)
    response = problem(exc.http_status, exc, getattr(exc, "field", None))
    if isinstance(exc, Unauthenticated):
        response.headers["WWW-Authenticate"] = exc.challenge
    return response


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        # FastAPI puts the decoder's position (a character index) where a field name goes.
        position = int(first["loc"][-1])
        document = exc.body if isinstance(exc.body, str) else ""
        offset = len(document[:position].encode())
        reason = first.get("ctx", {}).get("error", "malformed")
        return problem(422, f"body: invalid JSON at byte offset {offset}: {reason}", offset=offset)
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return problem(422, f"{where}: {first.get('msg', 'invalid request')}", where or None)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    # The framework's own refusals (no such path, wrong method, a body it cannot decode) are
    # problem documents too, not {"detail": ...}.
    assert isinstance(exc, StarletteHTTPException)
    title = str(exc.detail)
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        title = f"body: not valid UTF-8 at byte offset {cause.start}"
    response = problem(exc.status_code, title)
    response.headers.update(exc.headers or {})
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CredoError, _credo_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
