"""When the agent refreshes an account: pure functions of times and a random source.

Ahead of ``refresh_after`` (the blob's query interval: after it the DC may hand out a new
password, MS-ADTS 2.2.19), by the account's lead, less a jitter of up to 10 % of the lead so that
many agents (or accounts) do not ask the DCs at the same second; also before the TGT a ccache
holds runs out. A failed refresh is retried with capped exponential backoff and jitter (dramatiq's
``compute_backoff``), while the last good outputs stay in place.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

__all__ = ["MIN_INTERVAL", "RETRY_CAP", "next_refresh", "retry_delay"]

MIN_INTERVAL = timedelta(seconds=30)
RETRY_BASE = 2.0
RETRY_CAP = 300.0
# A ccache's TGT is renewed this long before it ends.
TICKET_LEAD = timedelta(hours=1)


def next_refresh(
    now: datetime,
    refresh_after: datetime,
    lead: float,
    ticket_end: datetime | None,
    rng: random.Random,
) -> datetime:
    """The next time to refresh after a success at ``now``."""
    jitter = timedelta(seconds=rng.uniform(0, lead * 0.1))
    due = refresh_after - timedelta(seconds=lead) - jitter
    if ticket_end is not None:
        due = min(due, ticket_end - TICKET_LEAD)
    return max(due, now + MIN_INTERVAL)


def retry_delay(failures: int, rng: random.Random) -> float:
    """Seconds before retry number ``failures`` (1, 2, ...): 2, 4, 8 ... capped at 5 min, 50-100 %."""
    return float(min(RETRY_CAP, RETRY_BASE * 2 ** (failures - 1)) * rng.uniform(0.5, 1.0))
