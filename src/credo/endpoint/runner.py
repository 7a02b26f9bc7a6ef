"""Running one granted command: as the endpoint's local user, with the gMSA's ticket, no shell.

Called by the privileged broker (the agent), never by the login user. The child gets:
- the granted argv (``/proc/self/fd/N`` in place of each confined path, pinned just before the
  fork by ``pin_path`` and passed as fd N: no symlink swap after the check can redirect it);
- the endpoint's local user, its primary group and no supplementary group (setgroups(2) to
  none: the broker's root groups are not inherited);
- the command's environment (``command_env``: PATH, fixed values, allowed caller values), plus
  HOME/USER/LOGNAME of the local user, KRB5_CONFIG when the broker has one, and KRB5CCNAME
  pointing at a ccache of the run-as gMSA made for this command alone (0600, owned by the local
  user, in a 0700 directory of its own, removed when the command ends);
- no stdin (JEA commands are not interactive), stdout and stderr on pipes that the broker copies
  to the caller's descriptors and to the transcript's recording;
- a session and process group of its own, killed as a whole at the command's timeout.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from credo.endpoint.matching import Granted, pin_path
from credo.errors import EnvironmentProblem

__all__ = ["RunResult", "run_granted"]

CHUNK = 65536
TIMED_OUT = 124  # the exit status timeout(1) reports, for a command killed at its timeout


@dataclass(frozen=True)
class RunResult:
    exit_status: int
    bytes_out: int
    duration: float
    timed_out: bool


def _write_all(fd: int, data: bytes) -> bool:
    """Write to the caller's descriptor; False once the caller is gone (its output is dropped,
    the command still runs to its end so the transcript records how it ended)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except (BrokenPipeError, ConnectionResetError):
            return False
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        view = view[n:]
    return True


def run_granted(
    granted: Granted,
    user: str,
    *,
    runtime_dir: Path,
    write_ticket: Callable[[str], None] | None,
    stdout_fd: int,
    stderr_fd: int,
    record: Callable[[bytes], None],
) -> RunResult:
    """Run ``granted`` as local ``user``; ``write_ticket(ccache_name)`` makes the gMSA's ticket."""
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise EnvironmentProblem(
            f"the endpoint's local user {user!r} does not exist", hint=f"useradd --system {user}"
        ) from None
    pinned: list[int] = []
    private: Path | None = None
    try:
        argv = list(granted.argv)
        for confined in granted.paths:
            fd = pin_path(confined)
            pinned.append(fd)
            argv[confined.index] = f"/proc/self/fd/{fd}"
        env = dict(granted.env) | {"HOME": account.pw_dir, "USER": user, "LOGNAME": user}
        if os.environ.get("KRB5_CONFIG"):
            env["KRB5_CONFIG"] = os.environ["KRB5_CONFIG"]
        if write_ticket is not None:
            runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
            private = Path(tempfile.mkdtemp(prefix="run-", dir=runtime_dir))
            ccache = private / "krb5cc"
            write_ticket(f"FILE:{ccache}")
            os.chown(ccache, account.pw_uid, account.pw_gid)
            os.chmod(ccache, 0o600)
            os.chown(private, account.pw_uid, account.pw_gid)  # 0700 from mkdtemp
            env["KRB5CCNAME"] = f"FILE:{ccache}"
        return _run(argv, granted, account, env, pinned, stdout_fd, stderr_fd, record)
    finally:
        for fd in pinned:
            os.close(fd)
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


def _run(
    argv: list[str],
    granted: Granted,
    account: pwd.struct_passwd,
    env: dict[str, str],
    pinned: list[int],
    stdout_fd: int,
    stderr_fd: int,
    record: Callable[[bytes], None],
) -> RunResult:
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, env=env, cwd=granted.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, user=account.pw_uid, group=account.pw_gid, extra_groups=[],
            start_new_session=True, pass_fds=pinned, close_fds=True,
        )  # fmt: skip
    except OSError as exc:
        message = f"{granted.command}: cannot run {granted.argv[0]}: {exc.strerror}\n".encode()
        _write_all(stderr_fd, message)
        record(message)
        return RunResult(127 if isinstance(exc, FileNotFoundError) else 126, 0, 0.0, False)
    assert proc.stdout is not None and proc.stderr is not None
    pidfd = os.pidfd_open(proc.pid)
    try:
        return _copy(proc, pidfd, granted, started, stdout_fd, stderr_fd, record)
    except BaseException:
        # Recording failed (the transcript is unavailable) or the broker is stopping: output that
        # cannot be recorded must not be produced, so the command's process group goes now.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()


def _copy(
    proc: subprocess.Popen[bytes],
    pidfd: int,
    granted: Granted,
    started: float,
    stdout_fd: int,
    stderr_fd: int,
    record: Callable[[bytes], None],
) -> RunResult:
    """Copy the command's output to the caller and the recording (recorded first: nothing
    reaches the caller unrecorded) until it ends or its timeout."""
    assert proc.stdout is not None and proc.stderr is not None
    sinks = {proc.stdout.fileno(): stdout_fd, proc.stderr.fileno(): stderr_fd}
    open_pipes = set(sinks)
    deadline = started + granted.timeout
    bytes_out = 0
    timed_out = False
    while open_pipes:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(list(open_pipes), [], [], left)
        for fd in ready:
            data = os.read(fd, CHUNK)
            if not data:
                open_pipes.discard(fd)
                continue
            bytes_out += len(data)
            record(data)
            _write_all(sinks[fd], data)
    if not timed_out and not select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))[0]:
        timed_out = True
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        message = f"{granted.command}: stopped after its timeout of {granted.timeout:g} s\n".encode()
        _write_all(stderr_fd, message)
        record(message)
    code = proc.wait()
    status = TIMED_OUT if timed_out else (code if code >= 0 else 128 - code)
    return RunResult(status, bytes_out, time.monotonic() - started, timed_out)
