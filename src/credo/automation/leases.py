"""How long a job's lease lasts, and when each side acts on it: one policy for server and worker.

A claim gives the worker a lease of ``lease_seconds``, renewed by heartbeats. Two rules keep a job
from running twice at once (at-least-once delivery, never two runs together):

1. The worker fences itself: when it has not renewed a job's lease for ``kill_after`` seconds
   (measured from when it *sent* the last renewal that succeeded, on a clock that keeps counting
   while the process is stopped), the job's process group is killed. ``kill_after`` ends
   ``fence_margin`` before the lease does.
2. The server hands an expired job to another worker only ``takeover_grace`` after the lease
   ended, which covers the kill and the clocks' rounding.

So a stalled worker's job is dead ``fence_margin + takeover_grace`` before another attempt can
start. Heartbeats come often enough that a few lost ones do not fence a healthy job.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_DRAIN_GRACE", "DEFAULT_LEASE_SECONDS", "LeasePolicy"]

DEFAULT_LEASE_SECONDS = 15.0
# A stopping worker (SIGTERM) lets its running jobs finish for this long, then hands them back to
# be run elsewhere. A systemd unit's TimeoutStopSec= must be longer.
DEFAULT_DRAIN_GRACE = 60.0


@dataclass(frozen=True)
class LeasePolicy:
    lease_seconds: float = DEFAULT_LEASE_SECONDS

    @property
    def heartbeat_seconds(self) -> float:
        """How often a worker renews its leases: five chances per lease, at most every second."""
        return min(1.0, self.lease_seconds / 5)

    @property
    def fence_margin(self) -> float:
        return self.lease_seconds / 4

    @property
    def kill_after(self) -> float:
        """Seconds after a renewal was sent at which the worker kills the job if none followed."""
        return self.lease_seconds - self.fence_margin

    @property
    def takeover_grace(self) -> float:
        return max(1.0, self.lease_seconds / 4)
