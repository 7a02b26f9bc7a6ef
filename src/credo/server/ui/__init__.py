"""The web UI (issue 15 point 6): pages at /ui over the server's services (credo.server.ui.routes)."""

from __future__ import annotations

__all__: list[str] = []
