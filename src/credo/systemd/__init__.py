"""systemd units for credo: the agent's own unit, and services and timers that run as a gMSA.

``credo systemd agent-unit|service|timer`` renders them (credo.systemd.units) with values quoted
per systemd.syntax(7) (credo.systemd.syntax); the ccache path a unit sets and the agent keeps is
one function, :func:`agent_ccache_path` (credo.systemd.paths).
"""

from __future__ import annotations

from credo.systemd.paths import AGENT_SOCKET, AGENT_UNIT, CCACHE_ROOT, agent_ccache_path
from credo.systemd.units import GmsaCommand, UnitFile, account_snippet, agent_unit, gmsa_service, gmsa_timer

__all__ = [
    "AGENT_SOCKET",
    "AGENT_UNIT",
    "CCACHE_ROOT",
    "GmsaCommand",
    "UnitFile",
    "account_snippet",
    "agent_ccache_path",
    "agent_unit",
    "gmsa_service",
    "gmsa_timer",
]
