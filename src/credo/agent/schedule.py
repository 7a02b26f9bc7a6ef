"""When the agent refreshes an account: pure functions of times and a random source.

A rotation is caught inside the DC's pre-rotation window, not ahead of it. ``refresh_after`` is
when that window opens: the last five minutes before the password changes, during which the DC
answers with the *future* password as current and the still-valid one as previous (MS-ADTS
3.1.1.4.5.39; Samba ``gmsa_recalculate_managed_pwd``). A refresh inside the window writes the
next key (kvno+1) beside the current one, so services hold it before the KDC issues a single
ticket for it; a refresh before the window would only read the old password again. So the
agent refreshes at ``refresh_after`` plus a jitter of up to ``jitter`` seconds (at most 4 of the
window's 5 minutes, so that many agents or accounts do not ask the DCs at the same second and a
retry still fits before the rotation), then again right after the rotation (``refresh_after``
of a blob read inside the window), and before the TGT a ccache holds runs out. A failed refresh
is retried with capped exponential backoff and jitter (dramatiq's ``compute_backoff``), while the
last good outputs stay in place.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

__all__ = ["DEFAULT_JITTER", "MAX_JITTER", "MIN_INTERVAL", "RETRY_CAP", "next_refresh", "retry_delay"]

MIN_INTERVAL = timedelta(seconds=30)
DEFAULT_JITTER = 60.0
# The pre-rotation window lasts 5 minutes: leave at least one for retries.
MAX_JITTER = 240.0
RETRY_BASE = 2.0
RETRY_CAP = 300.0
# A ccache's TGT is renewed this long before it ends.
TICKET_LEAD = timedelta(hours=1)


def next_refresh(
    now: datetime,
    refresh_after: datetime,
    jitter: float,
    ticket_end: datetime | None,
    rng: random.Random,
    earlier: datetime | None = None,
) -> datetime:
    """The next time to refresh after a success at ``now``.

    ``earlier``: the ``refresh_after`` of the previous answer when it gave the same keys (kvno and
    key versions). The DC's intervals are relative to its clock and turned into times by ours, so
    for the same keys they name the same time, unless a clock moved between the two answers. When
    the earlier time has passed and the new answer puts it later, the agent reads again after
    ``MIN_INTERVAL`` rather than wait for it: a DC still a step behind (the rotation tests' shared
    clock, which each process reads again within a second; a stepped clock; another DC) would
    otherwise have it wait out the step, up to the window's 5 minutes past the rotation, or a whole
    interval when the answer came from before the window. A second answer is trusted as it is.
    """
    if earlier is not None and earlier <= now and refresh_after > earlier + MIN_INTERVAL:
        return now + MIN_INTERVAL
    due = refresh_after + timedelta(seconds=rng.uniform(0, min(jitter, MAX_JITTER)))
    if ticket_end is not None:
        due = min(due, ticket_end - TICKET_LEAD)
    return max(due, now + MIN_INTERVAL)


def retry_delay(failures: int, rng: random.Random) -> float:
    """Seconds before retry number ``failures`` (1, 2, ...): 2, 4, 8 ... capped at 5 min, 50-100 %."""
    return float(min(RETRY_CAP, RETRY_BASE * 2 ** (failures - 1)) * rng.uniform(0.5, 1.0))
