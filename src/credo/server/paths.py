"""Where the server keeps its state by default."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_server_dir"]


def default_server_dir() -> Path:
    """``/var/lib/credo/server`` for root, ``~/.local/share/credo/server`` for anyone else."""
    if os.geteuid() == 0:
        return Path("/var/lib/credo/server")
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "credo" / "server"
