"""Files credo writes for people and programs to read: whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from credo.errors import EnvironmentProblem

__all__ = ["read_or_create_secret", "write_text_atomically"]


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


def read_or_create_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in ``path`` (0600); on first use ``make()`` creates it.

    Server processes sharing a data dir may start together: the file appears whole or not at all
    (written aside, then link(2), which fails if another process got there first: then its file
    is the one everybody reads), so nobody reads it half-written or overwrites another's.
    """
    if not path.exists():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(make().strip() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return path.read_text(encoding="utf-8").strip()
