"""Where a job's files live: one directory per running job that only that job can reach.

Layout, under a runtime directory (``CREDO_WORKER_RUNTIME_DIR``; ``/run/credo/worker`` as root,
``$XDG_RUNTIME_DIR/credo/worker`` or ``/tmp/credo-worker-UID`` otherwise)::

    /run/credo/worker/            root, 0711: jobs may pass through, not list
        .lock                     root, 0600: serialises creating and sweeping
        lib-<random>/             root, 0755: one worker's ``credo.runbook`` helper
        2100012345/               root:2100012345, 02770: one job's script, parameters, ccache

Jobs of a group all run as the same local user, so a mode alone cannot keep one job out of
another's directory. As root, each job gets a private supplementary group id from a range no
/etc/group entry uses (``JOB_GID_RANGE``); its directory belongs to that group and its files to
the job's user (0600). The directory's name is the gid: ``mkdir`` claims it atomically, so a gid is
unique among the jobs of every worker of the host that shares the runtime directory.

Every directory is held by an ``flock`` on a descriptor its worker keeps open; the kernel drops it
when the worker dies, even by SIGKILL (flock(2)). A sweep removes every directory whose lock it can
take: what a dead worker left. Creating and sweeping happen under the host-wide ``.lock``, so that
a directory is never swept between its ``mkdir`` and its owner's ``flock``.

Files are created with their mode (``O_CREAT | O_EXCL | O_NOFOLLOW``, then ``fchmod``): the process
umask is never touched, it is shared by every thread of the worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from credo.errors import EnvironmentProblem
from credo.gmsa.runas import LocalAccount

__all__ = ["JOB_GID_RANGE", "JobDirectory", "RuntimeDirectory", "default_runtime_dir", "write_private_file"]

log = logging.getLogger(__name__)

ENV_RUNTIME_DIR = "CREDO_WORKER_RUNTIME_DIR"
# Above sssd's default ID-mapping range (200000..2000200000) and below the range systemd hands
# to containers (0x7FFE0000..): no account database on a usual host uses these ids.
JOB_GID_RANGE = range(2_100_000_000, 2_100_000_000 + 65536)
LOCK_NAME = ".lock"
LIB_PREFIX = "lib-"
_OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW


def default_runtime_dir() -> Path:
    """``CREDO_WORKER_RUNTIME_DIR``, else /run/credo/worker as root, else a per-user directory."""
    if os.environ.get(ENV_RUNTIME_DIR):
        return Path(os.environ[ENV_RUNTIME_DIR])
    if os.geteuid() == 0:
        return Path("/run/credo/worker")
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "credo" / "worker"
    return Path(f"/tmp/credo-worker-{os.geteuid()}")


def write_private_file(path: Path, data: bytes, uid: int, gid: int, mode: int = 0o600) -> None:
    """Create ``path`` (it must not exist, nor be a symlink) with ``mode`` and owner, then write."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, mode)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)  # the mode given to open(2) is filtered by the umask; this one is not
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _adopt_file(path: Path, uid: int, gid: int, mode: int = 0o600) -> None:
    """Give a file another library created (a ccache) its owner and mode, without following links."""
    fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


@dataclass
class JobDirectory:
    """A running job's directory, locked for as long as the job runs."""

    path: Path
    account: LocalAccount
    private_gid: int | None

    def write(self, name: str, data: bytes) -> Path:
        """A new 0600 file of the job's user in the directory."""
        path = self.path / name
        write_private_file(path, data, self.account.uid, self.account.gid)
        return path

    def adopt(self, name: str) -> Path:
        """Make ``name`` (written by someone else, e.g. krb5) the job user's, 0600."""
        path = self.path / name
        _adopt_file(path, self.account.uid, self.account.gid)
        return path


class RuntimeDirectory:
    """The host's runtime directory for worker files; sweeps what dead workers left when opened."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_runtime_dir()
        self._prepare()
        self.sweep()

    def _prepare(self) -> None:
        euid = os.geteuid()
        try:
            self.root.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                self.root.mkdir(mode=0o711 if euid == 0 else 0o700)
            info = self.root.lstat()
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot create the worker's runtime directory {self.root}: {exc.strerror}",
                hint=f"create it (root-owned, 0711) or point {ENV_RUNTIME_DIR} elsewhere",
            ) from None
        # Someone else's directory, or one others can write to, would let them plant links or
        # read the jobs' files: refuse it rather than fix it.
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != euid or info.st_mode & 0o022:
            raise EnvironmentProblem(
                f"the worker's runtime directory {self.root} is not a directory of this user "
                "that only it may write to",
                hint=f"remove it, or point {ENV_RUNTIME_DIR} elsewhere",
            )
        # As root, jobs (other users) must pass through to their own directory; as another
        # user, the jobs run as that user and nobody else needs to.
        os.chmod(self.root, 0o711 if euid == 0 else 0o700)

    @contextlib.contextmanager
    def _host_lock(self) -> Iterator[None]:
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def sweep(self) -> int:
        """Remove every directory no live worker holds; the number removed."""
        with self._host_lock():
            return self._sweep_locked()

    def _sweep_locked(self) -> int:
        removed = 0
        for entry in os.scandir(self.root):
            if entry.name == LOCK_NAME:
                continue
            if not entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                removed += 1
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | _OPEN_FLAGS)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live worker holds it
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
                log.info("removed %s, left by a worker that is gone", entry.path)
            finally:
                os.close(fd)
        return removed

    def _claim(self, name: str, mode: int, gid: int = -1) -> int | None:
        """mkdir + lock ``name`` (with the host lock held); its descriptor, or None if it exists."""
        path = self.root / name
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _OPEN_FLAGS)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if gid != -1:
                os.fchown(fd, -1, gid)
            os.fchmod(fd, mode)  # after the chown, which clears the set-group-ID bit
        except BaseException:
            os.close(fd)
            shutil.rmtree(path, ignore_errors=True)
            raise
        return fd

    @contextlib.contextmanager
    def library_directory(self) -> Iterator[Path]:
        """A 0755 directory for this worker's lifetime (the ``credo.runbook`` helper)."""
        with self._host_lock():
            while True:
                path = self.root / f"{LIB_PREFIX}{secrets.token_hex(8)}"
                fd = self._claim(path.name, 0o755)
                if fd is not None:
                    break
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)

    @contextlib.contextmanager
    def job_directory(self, account: LocalAccount, private_group: bool) -> Iterator[JobDirectory]:
        """A directory for one job, removed (with everything in it) when the job ends.

        With ``private_group`` (root, the job runs as another user): root-owned, group a fresh
        private gid, 02770; the job must run with that gid as a supplementary group. Without:
        0700, owned by ``account`` (the job runs as the worker's own user).
        """
        with self._host_lock():
            self._sweep_locked()  # cheap: one open and one flock per directory
            fd, gid, path = self._new_job_directory(account, private_group)
        try:
            yield JobDirectory(path, account, gid)
        finally:
            # Remove first, unlock after: a sweep never sees a half-removed directory as free.
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)

    def _new_job_directory(self, account: LocalAccount, private_group: bool) -> tuple[int, int | None, Path]:
        if not private_group:
            while True:
                name = f"job-{secrets.token_hex(8)}"
                fd = self._claim(name, 0o700)
                if fd is not None:
                    os.fchown(fd, account.uid, account.gid)
                    return fd, None, self.root / name
        # Start at a random place: workers on one host rarely try the same gid twice.
        start = secrets.randbelow(len(JOB_GID_RANGE))
        for i in range(len(JOB_GID_RANGE)):
            gid = JOB_GID_RANGE[(start + i) % len(JOB_GID_RANGE)]
            if _gid_in_use(gid):
                continue
            fd = self._claim(str(gid), 0o2770, gid)
            if fd is not None:
                return fd, gid, self.root / str(gid)
        raise EnvironmentProblem(
            f"no free private group id for a job in {JOB_GID_RANGE.start}..{JOB_GID_RANGE.stop - 1}",
            hint="too many jobs on this host; lower --slots",
        )


def _gid_in_use(gid: int) -> bool:
    """Whether the account database names ``gid``: such a gid is not private to one job."""
    try:
        grp.getgrgid(gid)
    except KeyError:
        return False
    return True
