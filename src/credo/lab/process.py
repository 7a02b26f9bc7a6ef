"""The lab DC process: start it in the background, know whether it runs, stop it cleanly.

The DC runs as ``samba -s DIR/samba/etc/smb.conf -i -M single`` in its own session, with its
output in DIR/samba.log and its PID in DIR/samba.pid. A PID file is trusted only when that
process is alive, runs the samba binary and has the lab directory as its working directory
(samba rewrites its command line to "samba: root process", so argv cannot tell): a recycled
PID never makes credo signal a stranger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from credo.errors import EnvironmentProblem, UnreachableError
from credo.lab.clock import shared_clock_env
from credo.lab.settings import LabPaths

__all__ = ["DCProcess"]

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


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
            )
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
