"""The OIDC issuer's routes (docs/oidc.md): discovery and JWKS (public), host service tokens.

Job tokens are part of the worker protocol (``routes.workers``: ``.../jobs/{job_id}/token``).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from credo.errors import NotFoundError
from credo.oidc.documents import DISCOVERY_PATH, JWKS_PATH
from credo.server import identity, limits
from credo.server.api import API
from credo.server.dependencies import AppState, get_state, negotiate_reply, worker_principal
from credo.server.gate import Access, guard
from credo.server.routes.workers import no_store
from credo.server.schemas import HostTokenIn, Jwks, OidcDiscovery, TokenAnswer

__all__ = ["router", "well_known_router"]

router = APIRouter(prefix=API, tags=["worker protocol"])


@router.post("/tokens", dependencies=[Depends(negotiate_reply)])
@guard(Access.NEGOTIATE, limits.TOKEN_BODY)
async def host_token(body: HostTokenIn, request: Request, response: Response, state: AppState) -> TokenAnswer:
    """A token for a service on a host that may serve the group (Negotiate as its computer account)."""
    principal = await worker_principal(request)
    issued = await state.run(
        identity.host_token, state.issuer, principal, body.group, body.audience, body.service
    )
    no_store(response)
    return TokenAnswer(**identity.token_answer(issued))


def _well_known(document: str) -> Callable[..., Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        issuer = get_state(request).issuer
        if issuer is None:
            raise NotFoundError(
                "this server is no OIDC issuer",
                hint="start it with --oidc-issuer https://... (docs/oidc.md)",
            )
        body = issuer.discovery() if document == "discovery" else issuer.jwks()
        # Cacheable: clouds refetch on their own schedule; five minutes lets a rotation show soon.
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})

    serve.__name__ = f"oidc_{document}"
    return guard(Access.PUBLIC, limits.NO_BODY)(serve)


def well_known_router(oidc_issuer: str | None) -> APIRouter:
    """The issuer documents at the root, and under the issuer URL's path if it has one
    (https://host/credo -> /credo/.well-known/...), where the clouds look for them."""
    router = APIRouter(tags=["oidc"])
    prefixes = {""}
    if oidc_issuer:
        prefixes.add(urlsplit(oidc_issuer).path.rstrip("/"))
    documents: dict[str, Any] = {DISCOVERY_PATH: ("discovery", OidcDiscovery), JWKS_PATH: ("jwks", Jwks)}
    for prefix in sorted(prefixes):
        for path, (name, model) in documents.items():
            router.get(prefix + path, response_model=model)(_well_known(name))
    return router
