"""Where the credo agent keeps what systemd units use: one convention, shared with the agent.

The agent (``credo agent run``) and the units that ``credo systemd service|timer`` writes must
agree on the ccache path of a (gMSA, local user) pair without talking to each other: the unit sets
``KRB5CCNAME=FILE:<path>`` and the agent's config lists the same path as an output. Both call
:func:`agent_ccache_path`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from credo.names import managed_account_sam, validate_local_user_name

__all__ = [
    "AGENT_CONFIG",
    "AGENT_SOCKET",
    "AGENT_STATE_DIR",
    "AGENT_UNIT",
    "CCACHE_ROOT",
    "RUNTIME_DIR",
    "UNIT_DIR",
    "agent_ccache_path",
    "bare_account_name",
]

# The agent's RuntimeDirectory= (systemd.exec(5)): /run/credo, created by systemd before the agent
# starts and kept when it stops (other credo units use it too; see credo.systemd.units).
RUNTIME_DIR = Path("/run/credo")
AGENT_SOCKET = RUNTIME_DIR / "agent.sock"
CCACHE_ROOT = RUNTIME_DIR / "ccache"
AGENT_CONFIG = Path("/etc/credo/agent.toml")
# The agent's default state_dir, its unit's StateDirectory= (writable under ProtectSystem=strict).
AGENT_STATE_DIR = Path("/var/lib/credo/agent")
AGENT_UNIT = "credo-agent.service"
# The directory for units the administrator installs (systemd.unit(5), "System Unit Search Path").
UNIT_DIR = Path("/etc/systemd/system")


def bare_account_name(gmsa: str) -> str:
    """``svcauto``, ``SvcAuto$`` -> ``SvcAuto``: the name the agent's config uses (no ``$``), validated."""
    return managed_account_sam(gmsa)[:-1]


def agent_ccache_path(gmsa: str, user: str, *, root: Path = CCACHE_ROOT) -> Path:
    """The ccache the agent keeps fresh for ``gmsa`` and the local ``user``:
    ``/run/credo/ccache/<gmsa>/<user>``, e.g. ``/run/credo/ccache/svcauto/credo-runner``.

    ``<gmsa>`` is the sAMAccountName without ``$``, lower-cased: AD compares account names
    case-insensitively, so ``SvcAuto`` and ``svcauto$`` must name one file. A validated
    sAMAccountName has no ``/`` and cannot be ``.`` or ``..`` (no trailing dot), so it is one path
    component; so is a validated local user name.
    """
    account = bare_account_name(gmsa).lower()
    validate_local_user_name(user, allow_system=True)
    path = PurePosixPath(root) / account / user
    return Path(path)
