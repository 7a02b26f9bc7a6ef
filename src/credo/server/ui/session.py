"""The web UI's sign-in session: a cookie the server signs, so a browser signs in once a day.

A browser cannot attach an API token to each request by itself, and Negotiate costs a round trip
and a ticket check per request, so after one sign-in (a token typed into the form, or the
browser's Kerberos ticket) the server sets a cookie naming who signed in and until when, with an
HMAC-SHA256 tag (RFC 2104) under a key of the data dir (``ui-session.key``, 0600, created on
first start; every server process on that data dir shares it, as they share the database). The
cookie holds no credential: not the token typed in, nor a ticket.

What a session is worth is checked again on every request (``SessionCookies.caller``): an API
token's session ends when the token is revoked or expires, the admin token's when that token is
replaced; a user's roles come from its groups at the time of each request, as for Negotiate.
The cookie is ``HttpOnly`` (scripts cannot read it), ``SameSite=Strict`` (another site's page
cannot make the browser send it: no cross-site request forgery) and ``Path=/ui``; ``Secure``
when the server is reached over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any

from credo.defaults import UI_SESSION_SECONDS
from credo.files import read_or_create_secret
from credo.server.gate import Caller, CallerKind

__all__ = ["COOKIE", "KEY_FILE", "SessionCookies"]

COOKIE = "credo_ui"
KEY_FILE = "ui-session.key"
# What a tag covers, so that a cookie of another kind signed with the same key never passes.
_CONTEXT = b"credo ui session v1\x00"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCookies:
    """Issue and open session cookies with the data dir's key."""

    def __init__(self, data_dir: Path, admin_fingerprint: str) -> None:
        self._key = _load_key(data_dir / KEY_FILE)
        self._admin = admin_fingerprint

    def issue(self, caller: Caller, now: float | None = None) -> str:
        claims: dict[str, Any] = {
            "k": caller.kind.name,
            "n": caller.name,
            "e": int((now if now is not None else time.time()) + UI_SESSION_SECONDS),
        }
        if caller.kind is CallerKind.API_TOKEN:
            claims["t"] = caller.token_id
        elif caller.kind is CallerKind.ADMIN_TOKEN:
            claims["a"] = self._admin
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{body}.{self._tag(body)}"

    def open(self, value: str, now: float | None = None) -> dict[str, Any] | None:
        """The claims of a cookie this server signed and that has not expired, else None."""
        if not value.isascii():  # not a cookie of ours (base64url); compare_digest takes ASCII str only
            return None
        body, _, tag = value.partition(".")
        if not body or not tag or not hmac.compare_digest(tag, self._tag(body)):
            return None
        try:
            claims = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(claims, dict) or claims.get("k") not in CallerKind.__members__:
            return None
        expires = claims.get("e")
        if not isinstance(expires, int) or expires <= (now if now is not None else time.time()):
            return None
        if claims["k"] == CallerKind.ADMIN_TOKEN.name and claims.get("a") != self._admin:
            return None  # the admin token was replaced since
        return claims

    def _tag(self, body: str) -> str:
        return _b64(hmac.new(self._key, _CONTEXT + body.encode(), hashlib.sha256).digest())


def _load_key(path: Path) -> bytes:
    return read_or_create_secret(path, lambda: secrets.token_urlsafe(32)).encode()
