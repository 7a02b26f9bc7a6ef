"""The agent's refresh schedule: inside the DC's pre-rotation window, never ahead of it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from credo.agent.schedule import MAX_JITTER, MIN_INTERVAL, next_refresh, retry_delay

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@given(
    hours=st.floats(0.01, 24 * 30),
    jitter=st.floats(0, 10_000),
    seed=st.integers(0, 2**32),
)
def test_a_refresh_falls_inside_the_window_it_waits_for(hours: float, jitter: float, seed: int) -> None:
    window_opens = NOW + timedelta(hours=hours)
    due = next_refresh(NOW, window_opens, jitter, None, random.Random(seed))
    assert due >= NOW + MIN_INTERVAL
    if window_opens >= NOW + MIN_INTERVAL:
        # The window lasts 5 minutes: the refresh leaves at least one of them for retries.
        assert window_opens <= due <= window_opens + timedelta(seconds=MAX_JITTER)


def test_a_ccache_is_renewed_an_hour_before_its_ticket_ends() -> None:
    due = next_refresh(NOW, NOW + timedelta(days=10), 0, NOW + timedelta(hours=10), random.Random(1))
    assert due == NOW + timedelta(hours=9)


def test_retries_back_off_to_five_minutes() -> None:
    rng = random.Random(7)
    delays = [retry_delay(n, rng) for n in range(1, 12)]
    assert 1 <= delays[0] <= 2 and all(d <= 300 for d in delays) and delays[-1] >= 150


def test_an_answer_for_the_same_keys_that_moves_a_passed_time_later_is_read_again_soon() -> None:
    # The previous answer (inside the window) said: right after the rotation, 10 s ago. This one,
    # from a DC whose clock is still a step behind ours, says 200 s from now: read again soon.
    passed = NOW - timedelta(seconds=10)
    later = NOW + timedelta(seconds=200)
    assert next_refresh(NOW, later, 5, None, random.Random(1), earlier=passed) == NOW + MIN_INTERVAL
    # The earlier time still ahead, or the same time again: the answer is trusted as it is.
    ahead = NOW + timedelta(seconds=100)
    assert next_refresh(NOW, later, 0, None, random.Random(1), earlier=ahead) == later
    assert next_refresh(NOW, later, 0, None, random.Random(1), earlier=later) == later
    assert next_refresh(NOW, later, 0, None, random.Random(1), earlier=None) == later
