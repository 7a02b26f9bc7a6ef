"""Self-fencing: a worker kills a job before its lease can expire on the server.

The rule (``credo.automation.leases``): a job's lease is renewed by heartbeats; when the worker
has not renewed it for ``kill_after`` seconds since the last renewal it *sent*, the job's process
group is killed, ahead of the server's ``takeover_grace``. Two mechanisms enforce it:

- the fence process (``fence_process.py``), which keeps running when the worker is stopped
  (SIGSTOP, a debugger, a frozen VM thread) and kills the group at its deadline;
- the worker's own check on every turn of a job's supervision loop (``expired``), which also
  holds if the fence process itself died.

Deadlines are on CLOCK_BOOTTIME: it keeps counting while a process is stopped, and wall-clock
jumps (NTP, an admin's ``date -s``) do not move it.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from credo.automation.leases import LeasePolicy

__all__ = ["LeaseFence", "boottime"]

log = logging.getLogger(__name__)
FENCE_SCRIPT = Path(__file__).with_name("fence_process.py")


def boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass
class _Lease:
    renewed_at: float
    pgid: int | None = None


class LeaseFence:
    """The leases of one worker's running jobs and the fence process that guards them."""

    def __init__(self, policy: LeasePolicy) -> None:
        self.policy = policy
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        with self._lock:
            self._start()

    def _start(self) -> None:
        # Its own session: signals for the worker's process group (Ctrl-C, a unit's KillMode) and a
        # SIGSTOP of the worker do not reach it. stdin is its only input; stderr goes to our log.
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(FENCE_SCRIPT)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True, close_fds=True,
        )  # fmt: skip

    def _send(self, line: str) -> None:
        """Tell the fence process; restart it (and re-arm every job) if it died."""
        for _ in range(2):
            process = self._process
            assert process is not None and process.stdin is not None
            try:
                process.stdin.write(line.encode() + b"\n")
                process.stdin.flush()
                return
            except (BrokenPipeError, ValueError, OSError):
                log.error("the fence process died (exit %s): starting it again", process.poll())
                self._start()
                for lease in self._leases.values():
                    if lease.pgid is not None:
                        self._write_arm(lease)

    def _write_arm(self, lease: _Lease) -> None:
        process = self._process
        assert process is not None and process.stdin is not None and lease.pgid is not None
        process.stdin.write(f"arm {lease.pgid} {self._deadline(lease):.3f}\n".encode())
        process.stdin.flush()

    def _deadline(self, lease: _Lease) -> float:
        return lease.renewed_at + self.policy.kill_after

    def begin(self, job_id: str, leased_at: float) -> None:
        """A job was claimed; ``leased_at``: when the answer that gave the lease arrived."""
        with self._lock:
            self._leases[job_id] = _Lease(leased_at)

    def attach(self, job_id: str, pgid: int) -> None:
        """The job's process group exists: guard it."""
        with self._lock:
            lease = self._leases.setdefault(job_id, _Lease(boottime()))
            lease.pgid = pgid
            self._send(f"arm {pgid} {self._deadline(lease):.3f}")

    def renewed(self, job_ids: list[str], sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` renewed these leases."""
        with self._lock:
            for job_id in job_ids:
                lease = self._leases.get(job_id)
                if lease is None or sent_at <= lease.renewed_at:
                    continue
                lease.renewed_at = sent_at
                if lease.pgid is not None:
                    self._send(f"arm {lease.pgid} {self._deadline(lease):.3f}")

    def expired(self, job_id: str) -> bool:
        with self._lock:
            lease = self._leases.get(job_id)
            return lease is not None and boottime() >= self._deadline(lease)

    def end(self, job_id: str) -> None:
        with self._lock:
            lease = self._leases.pop(job_id, None)
            if lease is not None and lease.pgid is not None:
                self._send(f"disarm {lease.pgid}")

    def close(self) -> None:
        """Stop the fence process (it kills whatever is still armed: nothing, after a clean stop)."""
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
