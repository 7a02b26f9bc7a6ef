"""credo as an installed program that any local user may run (the test venv lives under /root).

A world-readable copy of credo's sources and a launcher on Debian's /usr/bin/python3: enough for
what runs as an unprivileged login user and loads only the standard library (`credo endpoint
serve`, `credo run --as` through the agent).
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def install_credo_for_users(base: Path) -> Path:
    """Copy credo under ``base`` (0755 dirs, 0644 files) and return its launcher ``base/bin/credo``."""
    lib = base / "lib"
    shutil.copytree(REPO / "src" / "credo", lib / "credo", ignore=shutil.ignore_patterns("__pycache__"))
    launcher = base / "bin" / "credo"
    launcher.parent.mkdir()
    launcher.write_text(
        f"#!/usr/bin/python3 -I\nimport sys\nsys.path.insert(0, {str(lib)!r})\nfrom credo.launch import main\nmain()\n"
    )
    for path in [base, *base.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path == launcher else 0o644)
    return launcher
