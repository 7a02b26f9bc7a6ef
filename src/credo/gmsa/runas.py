"""Run a command with a ticket cache of its own: the process side of ``credo run --as``.

The child gets a fresh private directory (0700) holding its ccache (0600), both owned by the local
user it runs as, and an environment built from scratch: PATH, HOME, USER, LOGNAME, LANG, TMPDIR,
KRB5CCNAME and KRB5_CONFIG, plus what the caller passes. It runs in its own process group, so
that a timeout or a forwarded signal reaches everything it started. The directory and the ccache
are removed when the child ends, whatever ends it (exit, SIGTERM, SIGINT, SIGHUP, timeout).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from credo.errors import EnvironmentProblem, InputError, NotPermittedError

__all__ = [
    "EXIT_TIMEOUT",
    "SAFE_PATH",
    "ChildResult",
    "LocalAccount",
    "RunOptions",
    "child_environment",
    "local_account",
    "private_run_directory",
    "run_child",
    "terminate_group",
]

EXIT_TIMEOUT = 124  # what timeout(1) returns
KILL_GRACE = 5.0
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


@dataclass(frozen=True)
class RunOptions:
    """What to run and how. ``env`` values are the caller's and are passed as given."""

    command: Sequence[str]
    local_user: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None


@dataclass(frozen=True)
class ChildResult:
    """How the child ended: an exit code, or the signal that killed it, or a timeout."""

    returncode: int
    timed_out: bool = False

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode < 0 else None


@dataclass(frozen=True)
class LocalAccount:
    """Who a child runs as. ``extra_groups``: supplementary gids beyond the user's own groups
    (a worker's private per-job group)."""

    uid: int
    gid: int
    name: str
    home: str
    extra_groups: tuple[int, ...] = ()


def local_account(local_user: str | None) -> LocalAccount:
    """``local_user``'s account (root only), or the current user's for None."""
    if local_user is None:
        entry = pwd.getpwuid(os.geteuid())
        return LocalAccount(entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir)
    if os.geteuid() != 0:
        raise NotPermittedError("--user needs root: only root may start a process as another user")
    try:
        entry = pwd.getpwnam(local_user)
    except KeyError:
        raise InputError(
            f"no local user {local_user!r}", hint="create it (useradd) or name another"
        ) from None
    return LocalAccount(entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir)


@contextlib.contextmanager
def private_run_directory(local_user: str | None) -> Iterator[tuple[Path, LocalAccount]]:
    """A 0700 directory owned by the child's user, removed on exit whatever happens."""
    account = local_account(local_user)
    directory = Path(tempfile.mkdtemp(prefix="credo-run-"))  # created 0700 whatever the umask
    try:
        os.chown(directory, account.uid, account.gid)
        os.chmod(directory, 0o700)
        yield directory, account
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def child_environment(
    options: RunOptions, account: LocalAccount, directory: Path, ccache: Path | None
) -> dict[str, str]:
    home = account.home if account.home and os.path.isdir(account.home) else str(directory)
    env = {
        "PATH": SAFE_PATH,
        "HOME": home,
        "USER": account.name,
        "LOGNAME": account.name,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TMPDIR": str(directory),
    }
    if ccache is not None:
        env["KRB5CCNAME"] = f"FILE:{ccache}"
    if os.environ.get("KRB5_CONFIG"):
        env["KRB5_CONFIG"] = os.environ["KRB5_CONFIG"]
    env.update(options.env)
    return env


def run_child(options: RunOptions, write_ccache: Callable[[Path], None]) -> ChildResult:
    """Create the private directory and ccache, run the command, clean up, report how it ended.

    ``write_ccache(path)`` must store the credentials at ``path``; it runs before the child starts.
    """
    if not options.command:
        raise InputError("no command to run", hint="put it after --, e.g. credo run --as svcauto -- id")
    with private_run_directory(options.local_user) as (directory, account):
        ccache = directory / "krb5cc"
        # Nobody but root and the child's user can enter the directory, so there is no window
        # between krb5 creating the file and its mode being set here; the umask, shared by the
        # whole process, is left alone.
        write_ccache(ccache)
        fd = os.open(ccache, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchown(fd, account.uid, account.gid)
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        env = child_environment(options, account, directory, ccache)
        cwd = os.getcwd() if options.local_user is None else env["HOME"]
        try:
            return _supervise(options, account, env, cwd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                ccache.unlink()


def _supervise(options: RunOptions, account: LocalAccount, env: dict[str, str], cwd: str) -> ChildResult:
    as_other = options.local_user is not None
    received: list[int] = []
    started: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        if started:
            with contextlib.suppress(ProcessLookupError):
                # A second signal of the same kind means "stop now".
                os.killpg(started[0].pid, signal.SIGKILL if received.count(signum) > 1 else signum)

    # Handlers go in before the child starts: a signal that arrives while it starts must still
    # reach it and leave credo alive to clean up (it is forwarded once the child exists).
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        try:
            child = subprocess.Popen(
                list(options.command),
                env=env,
                cwd=cwd,
                user=account.uid if as_other else None,
                group=account.gid if as_other else None,
                extra_groups=os.getgrouplist(account.name, account.gid) if as_other else None,
                start_new_session=True,
                close_fds=True,
            )
        except FileNotFoundError:
            raise InputError(f"command not found: {options.command[0]}") from None
        except PermissionError as exc:
            raise EnvironmentProblem(f"cannot run {options.command[0]}: {exc.strerror}") from None
        started.append(child)
        for signum in dict.fromkeys(received):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signum)
        deadline = time.monotonic() + options.timeout if options.timeout else None
        timed_out = False
        try:
            while True:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    returncode = child.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    timed_out = True
                    terminate_group(child)
                    deadline = None
        finally:
            # Whatever the leader did, leave nothing of the job running.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return ChildResult(returncode=returncode, timed_out=timed_out)


def terminate_group(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group; SIGKILL it if it has not exited after the grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
