"""The API's path prefix: every route but the issuer documents (``/.well-known/...``) is under it."""

from __future__ import annotations

__all__ = ["API"]

API = "/api/v1"
