"""Where the server keeps its state: the default directory, and making sure one is usable."""

from __future__ import annotations

import os
from pathlib import Path

from credo.errors import EnvironmentProblem

__all__ = ["default_server_dir", "prepare_data_dir"]


def default_server_dir() -> Path:
    """``/var/lib/credo/server`` for root, ``~/.local/share/credo/server`` for anyone else."""
    if os.geteuid() == 0:
        return Path("/var/lib/credo/server")
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "credo" / "server"


def prepare_data_dir(path: Path) -> Path:
    """Create the data dir (0700) if need be; an unusable one is an EnvironmentProblem (exit 3)."""
    hint = "give --data-dir (or CREDO_SERVER_DIR) a directory this user may create and write"
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise EnvironmentProblem(f"data dir {path} exists and is not a directory", hint=hint) from None
    except OSError as exc:
        # NotADirectoryError (a parent is a file), PermissionError, a read-only file system...
        raise EnvironmentProblem(f"cannot create data dir {path}: {exc.strerror}", hint=hint) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise EnvironmentProblem(f"data dir {path} is not writable by uid {os.geteuid()}", hint=hint)
    return path
