"""Files credo writes for people and programs to read: whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from credo.errors import EnvironmentProblem

__all__ = ["write_text_atomically"]


def write_text_atomically(
    path: str | Path, text: str, *, mode: int = 0o644, hint: str = "choose a writable path"
) -> Path:
    """Write ``text`` to ``path`` through a temp file in the same directory, fsync and rename(2).

    A reader (a person, systemd) never sees a half-written file; a failure leaves the previous
    file as it was and no temp file behind.
    """
    path = Path(path)
    directory = path.absolute().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {path}: {exc.strerror}", hint=hint) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise EnvironmentProblem(f"cannot write {path}: {exc.strerror}", hint=hint) from exc
    return path
