"""The lab DC process: start it in the background, know whether it runs, stop it cleanly.

The DC runs as ``samba -s DIR/samba/etc/smb.conf -i -M single`` in its own session, with its
output in DIR/samba.log and its PID in DIR/samba.pid. A PID file is trusted only when that
process is alive, runs the samba binary and has the lab directory as its working directory
(samba rewrites its command line to "samba: root process", so argv cannot tell): a recycled
PID never makes credo signal a stranger.

Each DC runs in a mount namespace of its own in which the lab's run directory is bind-mounted
over /run/samba. Samba 4.22's winbind client library ignores the ``winbindd socket directory``
option and always looks for winbindd in the build-time /run/samba/winbindd (``samba -b``):
without the mount, smbd cannot map a session's SIDs to Unix ids, and every SMB session setup
fails with NT_STATUS_INTERNAL_ERROR (Kerberos or NTLM, even the administrator's) while LDAP and
Kerberos work. A private mount per DC lets several labs (and a lab's two DCs) run on one host,
each with its own winbindd. (../shared/reference/samba-lab.md, "SMB session setup fails".)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from credo.errors import EnvironmentProblem, UnreachableError
from credo.lab.clock import shared_clock_env
from credo.lab.settings import LabPaths

__all__ = ["DCProcess"]

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Where Samba's winbind client library looks for winbindd, whatever smb.conf says (see above).
WINBINDD_RUN_DIR = Path("/run/samba")
# <sched.h> and <sys/mount.h>
_CLONE_NEWNS = 0x00020000
_MS_BIND, _MS_REC, _MS_PRIVATE = 0x1000, 0x4000, 1 << 18


class DCProcess:
    """The Samba DC of one lab directory."""

    def __init__(self, paths: LabPaths) -> None:
        self.paths = paths

    def _is_ours(self, pid: int) -> bool:
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return False
        # Under --clock-offset the recorded process is faketime(1), which waits for its samba child.
        return Path(exe).name in ("samba", "faketime") and Path(cwd) == self.paths.root

    def _read_pid_file(self) -> int | None:
        try:
            text = self.paths.pid_file.read_text().strip()
        except FileNotFoundError:
            return None
        try:
            return int(text)
        except ValueError:
            return -1

    def pid(self) -> int | None:
        """The PID of this lab's running DC, or None.

        A PID file whose process is gone is removed (the DC died or the host rebooted). A PID file
        naming a live process that is not this lab's DC raises EnvironmentProblem: credo will not
        guess which process is which.
        """
        pid = self._read_pid_file()
        if pid is None:
            return None
        if pid > 0 and self._is_ours(pid):
            return pid
        if pid > 0 and _alive(pid):
            raise EnvironmentProblem(
                f"stale PID file {self.paths.pid_file}: process {pid} is running but is not this lab's DC",
                hint=f"check that process, then remove the file (rm {self.paths.pid_file}) and retry",
            )
        if pid < 0:
            raise EnvironmentProblem(
                f"unreadable PID file {self.paths.pid_file}",
                hint=f"remove it (rm {self.paths.pid_file}) and retry",
            )
        # The process is gone: the PID file is a leftover of a crash or a reboot.
        self.paths.pid_file.unlink(missing_ok=True)
        return None

    def start(
        self,
        address: str,
        clock_offset: str | None = None,
        krb5_conf: Path | None = None,
        clock_file: Path | None = None,
    ) -> int:
        """Start the DC in the background and wait until LDAP and Kerberos answer.

        ``clock_offset`` (``+14h``, ``+2d``) starts it under libfaketime with its clock shifted,
        to cross a gMSA rotation without waiting; Kerberos clients need the same offset.
        ``krb5_conf`` becomes the DC's KRB5_CONFIG: a DC is a Kerberos client too when it pulls
        replication from another DC (see ``Lab._dc_krb5_conf``).
        ``clock_file`` puts it on a clock shared with other processes (``credo.lab.clock``).
        """
        prefix = ["faketime", "-f", clock_offset] if clock_offset else []
        env = dict(os.environ)
        if krb5_conf is not None:
            env["KRB5_CONFIG"] = str(krb5_conf)
        if clock_file is not None:
            env |= shared_clock_env(clock_file)
        run = self.paths.samba_dir / "run"
        (run / "winbindd").mkdir(parents=True, exist_ok=True)
        WINBINDD_RUN_DIR.mkdir(parents=True, exist_ok=True)  # the mount point
        log = open(self.paths.log_file, "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [*prefix, "samba", "-s", str(self.paths.smb_conf), "-i", "-M", "single"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.paths.root,
                env=env,
                start_new_session=True,
                close_fds=True,
                # In the child, before exec: the PID stays the DC's (no wrapper process).
                preexec_fn=_private_run_dir(run),
            )
        except subprocess.SubprocessError as exc:
            raise EnvironmentProblem(
                f"cannot start the lab DC in a mount namespace of its own: {exc}",
                hint="the lab needs root with CAP_SYS_ADMIN (unshare(2) and mount(2))",
            ) from None
        finally:
            log.close()
        tmp = self.paths.pid_file.with_suffix(".pid.tmp")
        tmp.write_text(f"{proc.pid}\n")
        os.replace(tmp, self.paths.pid_file)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                self.paths.pid_file.unlink(missing_ok=True)
                raise EnvironmentProblem(
                    f"the lab DC exited during start (status {code}): {self.log_tail()}",
                    hint=f"see {self.paths.log_file}",
                )
            if all(_answers(address, port) for port in (88, 389, 636)):
                return proc.pid
            time.sleep(0.1)
        self.stop()
        raise UnreachableError(
            f"the lab DC did not answer on {address} within {READY_TIMEOUT:.0f} s",
            hint=f"see {self.paths.log_file}",
        )

    def has_private_run_dir(self) -> bool:
        """Does the running DC see its own run directory at /run/samba (its own mount namespace)?
        False for a DC started by an older credo, whose SMB sessions fail (see the module)."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            return os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        except OSError:
            return False

    def stop(self) -> bool:
        """Stop the DC (SIGTERM, then SIGKILL after a grace period). True if it was running.

        Every process of the DC's session is signalled, not only its process group: samba puts
        itself in a group of its own when it is not the session leader (under faketime(1)).
        """
        pid = self.pid()
        if pid is None:
            return False
        _signal_session(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _session_members(pid):
            time.sleep(0.05)
        if _session_members(pid):
            _signal_session(pid, signal.SIGKILL)
            while _session_members(pid):
                time.sleep(0.05)
        self.paths.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.paths.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail) or "(empty log)"


def _session_members(session: int) -> list[int]:
    """Live (non-zombie) processes whose session id is ``session`` (/proc/PID/stat field 6)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session and _alive(int(entry)):
            members.append(int(entry))
    return members


def _signal_session(session: int, signum: int) -> None:
    for member in _session_members(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signum)


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        # Our own child that exited: reap it so it disappears.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _private_run_dir(run: Path) -> Callable[[], None]:
    """What the DC's child process runs before exec: a mount namespace of its own, with ``run``
    over /run/samba. Its libc functions and arguments are prepared here, in the parent, so that
    the child, between fork and exec, only calls them (it raises OSError on failure, which Popen
    reports as a SubprocessError)."""
    libc = ctypes.CDLL(None, use_errno=True)
    unshare, mount, get_errno, strerror = libc.unshare, libc.mount, ctypes.get_errno, os.strerror
    source, target = bytes(run), bytes(WINBINDD_RUN_DIR)

    def check(result: int) -> None:
        if result != 0:
            errno = get_errno()
            raise OSError(errno, strerror(errno))

    def enter() -> None:
        check(unshare(_CLONE_NEWNS))
        # Nothing mounted here may propagate back to the host's namespace.
        check(mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None))
        check(mount(source, target, None, _MS_BIND, None))

    return enter
