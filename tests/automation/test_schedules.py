"""Schedules: cron parsing, fires across DST changes (Debian cron's rule), missed-run policy."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credo.automation.schedules import (
    MISFIRE_GRACE,
    MissedRunPolicy,
    Schedule,
    due_fires,
    next_fires,
    parse_cron,
    parse_timezone,
)
from credo.errors import InputError

CREATED = datetime(2020, 1, 1, tzinfo=UTC)


def sched(cron: str, tz: str = "UTC", **kw: object) -> Schedule:
    return Schedule(cron=cron, timezone=tz, created=kw.pop("created", CREATED), **kw)  # type: ignore[arg-type]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- parsing -------------------------------------------------------------------------------


def test_parse_normalises_and_expands_aliases() -> None:
    assert parse_cron("  30   2 * *  * ") == "30 2 * * *"
    assert parse_cron("@daily") == "0 0 * * *"
    assert parse_cron("@HOURLY") == "0 * * * *"
    assert parse_cron("0 9 * * mon-fri") == "0 9 * * mon-fri"


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("* * * * * *", "seconds field; schedules fire at most once a minute"),
        ("*/10 * * * * *", "at most once a minute"),
        ("* * * *", "has 4 fields, not 5"),
        ("", "has 0 fields, not 5"),
        ("61 * * * *", "bad minute field"),
        ("0 24 * * *", "bad hour field"),
        ("0 0 32 * *", "bad day-of-month field"),
        ("0 0 * 13 *", "bad month field"),
        ("0 0 * * 8", "bad day-of-week field"),
        ("0 0 30 2 *", "bad day-of-month field"),  # 30 February: cronsim refuses it outright
        ("@reboot", "@reboot is not a schedule"),
        ("@fortnightly", "unknown cron alias"),
    ],
)
def test_bad_cron_is_one_clear_line(expr: str, words: str) -> None:
    with pytest.raises(InputError) as info:
        parse_cron(expr)
    assert words in info.value.message
    assert "\n" not in info.value.message
    assert info.value.hint


@pytest.mark.parametrize("name", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", "Europe/", ""])
def test_bad_time_zone_is_refused(name: str) -> None:
    with pytest.raises(InputError, match="time zone"):
        parse_timezone(name)


def test_schedule_checks_its_fields() -> None:
    s = sched("@weekly", "Europe/Berlin", missed_runs="run-once")
    assert s.cron == "0 0 * * 0"
    assert s.missed_runs is MissedRunPolicy.RUN_ONCE
    with pytest.raises(InputError):
        sched("0 0 * * *", "Nowhere/Town")
    with pytest.raises(ValueError, match="aware"):
        Schedule(cron="0 0 * * *", timezone="UTC", created=datetime(2020, 1, 1))


# --- DST: Debian cron's rule, examples -------------------------------------------------------


def test_spring_forward_fixed_time_runs_once_right_after_the_gap() -> None:
    # Europe/Berlin 2024-03-31: 02:00 CET -> 03:00 CEST; 02:30 does not exist that day.
    s = sched("30 2 * * *", "Europe/Berlin")
    fires = next_fires(s, utc(2024, 3, 29, 12), 4)
    assert fires == [
        utc(2024, 3, 30, 1, 30),
        utc(2024, 3, 31, 1, 0),
        utc(2024, 4, 1, 0, 30),
        utc(2024, 4, 2, 0, 30),
    ]
    assert fires[1].astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M %Z") == "03:00 CEST"


def test_spring_forward_new_york() -> None:
    s = sched("30 2 * * *", "America/New_York")
    assert next_fires(s, utc(2024, 3, 9, 12), 2) == [utc(2024, 3, 10, 7, 0), utc(2024, 3, 11, 6, 30)]


def test_several_times_in_one_gap_make_one_fire() -> None:
    s = sched("0,30 2 * * *", "Europe/Berlin")
    assert next_fires(s, utc(2024, 3, 30, 23), 3) == [
        utc(2024, 3, 31, 1, 0),
        utc(2024, 4, 1, 0, 0),
        utc(2024, 4, 1, 0, 30),
    ]


def test_fall_back_fixed_time_runs_once_at_first_occurrence() -> None:
    # Europe/Berlin 2024-10-27: 03:00 CEST -> 02:00 CET; 02:30 happens twice.
    s = sched("30 2 * * *", "Europe/Berlin")
    assert next_fires(s, utc(2024, 10, 26, 12), 3) == [
        utc(2024, 10, 27, 0, 30),
        utc(2024, 10, 28, 1, 30),
        utc(2024, 10, 29, 1, 30),
    ]


def test_fall_back_start_inside_the_second_pass_does_not_fire_again() -> None:
    # America/New_York 2024-11-03: 01:30 EDT = 05:30Z, 01:30 EST = 06:30Z. From 06:10Z (01:10 EST)
    # the 01:30 job already ran at 05:30Z: next is the following day.
    s = sched("30 1 * * *", "America/New_York")
    assert next_fires(s, utc(2024, 11, 3, 6, 10), 1) == [utc(2024, 11, 4, 6, 30)]
    assert next_fires(s, utc(2024, 11, 3, 5, 0), 2) == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]


def test_hourly_jobs_follow_the_real_clock() -> None:
    ny = "America/New_York"
    # Fall back: 01:30 happens twice and an hourly job runs in both (an hour of real time apart).
    fires = next_fires(sched("30 * * * *", ny), utc(2024, 11, 3, 4, 0), 3)
    assert fires == [utc(2024, 11, 3, 4, 30), utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6, 30)]
    # Spring forward: there is no 02:30, so 01:30 EST is followed by 03:30 EDT.
    fires = next_fires(sched("30 * * * *", ny), utc(2024, 3, 10, 6, 0), 2)
    assert fires == [utc(2024, 3, 10, 6, 30), utc(2024, 3, 10, 7, 30)]


def test_quarter_hourly_across_fall_back_is_evenly_spaced() -> None:
    fires = next_fires(sched("*/15 * * * *", "Europe/Berlin"), utc(2024, 10, 26, 23, 0), 16)
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(fires))


def test_half_hour_dst_lord_howe() -> None:
    # Australia/Lord_Howe moves by 30 minutes: 2024-10-06 02:00 -> 02:30 (+10:30 -> +11:00).
    s = sched("15 2 * * *", "Australia/Lord_Howe")
    fires = next_fires(s, utc(2024, 10, 3, 12), 3)  # 22:30 local on the 3rd
    local = [f.astimezone(ZoneInfo("Australia/Lord_Howe")).strftime("%d %H:%M") for f in fires]
    assert local == ["04 02:15", "05 02:15", "06 02:30"]


def test_next_fires_edges() -> None:
    s = sched("0 0 * * *")
    assert next_fires(s, utc(2024, 1, 1), 0) == []
    assert next_fires(s, utc(2024, 1, 1), 1) == [utc(2024, 1, 2)]  # strictly after
    assert next_fires(s, utc(2024, 1, 1, 0, 0, 0) - timedelta(microseconds=1), 1) == [utc(2024, 1, 1)]
    # 29 February: rare, still found.
    assert next_fires(sched("0 0 29 2 *"), utc(2024, 3, 1), 1) == [utc(2028, 2, 29)]
    # Vixie's rule: with both day fields restricted, either matches (29 Feb or a Monday in Feb).
    assert next_fires(sched("0 0 29 2 1"), utc(2024, 3, 1), 1) == [utc(2025, 2, 3)]
    with pytest.raises(ValueError):
        next_fires(s, datetime(2024, 1, 1), 1)


# --- due fires and the missed-run policy -----------------------------------------------------


def test_on_time_fire_runs() -> None:
    s = sched("*/5 * * * *")
    due = due_fires(s, utc(2024, 5, 1, 10, 0), utc(2024, 5, 1, 10, 5, 3))
    assert [(f.at, f.missed, f.run) for f in due.fires] == [(utc(2024, 5, 1, 10, 5), False, True)]
    assert due.last_fire == utc(2024, 5, 1, 10, 5)
    assert due.missed_count == 0


def test_nothing_due_advances_to_now() -> None:
    s = sched("0 0 * * *")
    due = due_fires(s, utc(2024, 5, 1), utc(2024, 5, 1, 10))
    assert due.fires == () and due.last_fire == utc(2024, 5, 1, 10)
    # The interval is half-open: a fire exactly at last_fire was handled before.
    assert due_fires(s, utc(2024, 5, 1), utc(2024, 5, 1)).fires == ()


def test_downtime_skip_records_every_missed_fire_and_runs_none() -> None:
    s = sched("0 * * * *")
    due = due_fires(s, utc(2024, 5, 1, 0, 0), utc(2024, 5, 1, 3, 30))
    assert [(f.at.hour, f.missed, f.run) for f in due.fires] == [
        (1, True, False),
        (2, True, False),
        (3, True, False),
    ]
    assert due.runs == () and due.missed_count == 3 and due.last_fire == utc(2024, 5, 1, 3)


def test_downtime_run_once_runs_the_latest_missed_fire_once() -> None:
    s = sched("0 * * * *", missed_runs=MissedRunPolicy.RUN_ONCE)
    due = due_fires(s, utc(2024, 5, 1, 0, 0), utc(2024, 5, 1, 3, 30))
    assert [(f.at.hour, f.missed, f.run) for f in due.fires] == [
        (1, True, False),
        (2, True, False),
        (3, True, True),
    ]
    assert len(due.runs) == 1


def test_run_once_with_an_on_time_fire_runs_only_that() -> None:
    s = sched("0 * * * *", missed_runs="run-once")
    now = utc(2024, 5, 1, 3, 0) + MISFIRE_GRACE
    due = due_fires(s, utc(2024, 5, 1, 0, 0), now)
    assert [(f.at.hour, f.missed, f.run) for f in due.fires] == [
        (1, True, False),
        (2, True, False),
        (3, False, True),
    ]


def test_grace_boundary() -> None:
    s = sched("0 * * * *")
    fire = utc(2024, 5, 1, 1)
    assert due_fires(s, utc(2024, 5, 1), fire + MISFIRE_GRACE).fires[0].missed is False
    assert due_fires(s, utc(2024, 5, 1), fire + MISFIRE_GRACE + timedelta(seconds=1)).fires[0].missed is True


def test_disabled_schedule_has_no_fires_and_moves_on() -> None:
    s = sched("* * * * *", enabled=False)
    due = due_fires(s, utc(2024, 5, 1), utc(2024, 5, 2))
    assert due.fires == () and due.missed_count == 0 and due.last_fire == utc(2024, 5, 2)


def test_new_schedule_starts_at_creation() -> None:
    s = sched("0 * * * *", created=utc(2024, 5, 1, 9, 59))
    due = due_fires(s, None, utc(2024, 5, 1, 10, 0, 1))
    assert [f.at for f in due.fires] == [utc(2024, 5, 1, 10)]


def test_clock_going_back_yields_nothing_and_keeps_last_fire() -> None:
    due = due_fires(sched("* * * * *"), utc(2024, 5, 1, 10), utc(2024, 5, 1, 9))
    assert due.fires == () and due.last_fire == utc(2024, 5, 1, 10)


def test_long_downtime_lists_the_latest_and_counts_the_rest() -> None:
    s = sched("* * * * *", missed_runs="run-once")
    now = utc(2024, 5, 2, 0, 0, 30)  # the 00:00 fire is on time, the rest of the day missed
    due = due_fires(s, utc(2024, 5, 1), now, max_listed=10)
    assert len(due.fires) == 10 and due.fires[-1].at == utc(2024, 5, 2)
    assert [f.at for f in due.runs] == [utc(2024, 5, 2)]  # run-once: the on-time fire covers it
    assert due.omitted == 1440 - 10 and not due.omitted_at_least and due.missed_count == 1439
    # Past the scan bound the count is a lower bound; the latest fires are still exact.
    due = due_fires(s, utc(2024, 5, 1), utc(2024, 5, 2), max_listed=10, max_scanned=100)
    assert [f.at for f in due.fires] == [utc(2024, 5, 2) - timedelta(minutes=9 - i) for i in range(10)]
    assert due.omitted == 100 and due.omitted_at_least
    assert due.last_fire == utc(2024, 5, 2)


def test_due_fires_across_fall_back_fire_once() -> None:
    s = sched("30 2 * * *", "Europe/Berlin")
    due = due_fires(s, utc(2024, 10, 26, 12), utc(2024, 10, 27, 12))
    assert [f.at for f in due.fires] == [utc(2024, 10, 27, 0, 30)]


# --- properties ------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST
    "America/Santiago",  # changes at midnight
    "America/Havana",  # changes at midnight
    "Pacific/Chatham",  # +12:45 / +13:45
    "Africa/Casablanca",  # DST suspended during Ramadan: two changes a year in the "wrong" order
]


def _transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    """Instants (UTC) at which the zone's offset changes in ``year``, to the minute."""
    found: list[datetime] = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    while t < end:
        if t.astimezone(zone).utcoffset() != (t + step).astimezone(zone).utcoffset():
            lo, hi = t, t + step
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        t += step
    return found


_TRANSITIONS = {(z, y): _transitions(ZoneInfo(z), y) for z in ZONES for y in (2024, 2025)}


def _field(lo: int, hi: int) -> st.SearchStrategy[str]:
    num = st.integers(lo, hi)
    return st.one_of(
        st.just("*"),
        st.integers(2, 30).map(lambda n: f"*/{n}"),
        num.map(str),
        st.lists(num, min_size=2, max_size=4, unique=True).map(lambda v: ",".join(map(str, sorted(v)))),
        st.tuples(num, num).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.tuples(num, num, st.integers(2, 5)).map(lambda abn: f"{min(abn[:2])}-{max(abn[:2])}/{abn[2]}"),
    )


CRONS = st.tuples(
    _field(0, 59), _field(0, 23), st.sampled_from(["*", "1", "1-15", "*/2", "28-31"]), st.just("*"),
    st.sampled_from(["*", "0", "1-5", "6,0", "7"]),
).map(" ".join)  # fmt: skip


def _values(spec: str, lo: int, hi: int) -> set[int]:
    """An independent reading of one field (the subset of the syntax the strategy makes)."""
    out: set[int] = set()
    for part in spec.split(","):
        rng, _, step = part.partition("/")
        if rng == "*":
            a, b = lo, hi
        elif "-" in rng:
            a, b = map(int, rng.split("-"))
        else:
            a = b = int(rng)
            if step:
                b = hi
        out.update(range(a, b + 1, int(step or 1)))
    return out


def _matcher(cron: str):  # type: ignore[no-untyped-def]
    m, h, dom, mon, dow = cron.split()
    ms, hs, doms, mons = _values(m, 0, 59), _values(h, 0, 23), _values(dom, 1, 31), _values(mon, 1, 12)
    dows = {d % 7 for d in _values(dow, 0, 7)}
    either = not dom.startswith("*") and not dow.startswith("*")  # Vixie: either day field may match

    def matches(wall: datetime) -> bool:
        day_ok = wall.day in doms, (wall.weekday() + 1) % 7 in dows
        day = any(day_ok) if either else all(day_ok)
        return wall.minute in ms and wall.hour in hs and wall.month in mons and day

    return matches


@st.composite
def _cases(draw: st.DrawFn) -> tuple[str, str, datetime]:
    zone = draw(st.sampled_from(ZONES))
    cron = draw(CRONS)
    transitions = _TRANSITIONS[(zone, draw(st.sampled_from([2024, 2025])))]
    if transitions and draw(st.booleans()):
        base = draw(st.sampled_from(transitions))
        after = base - timedelta(minutes=draw(st.integers(0, 36 * 60)), seconds=draw(st.integers(0, 59)))
    else:
        after = draw(st.datetimes(datetime(2024, 1, 1), datetime(2025, 12, 31), timezones=st.just(UTC)))
    return zone, cron, after


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_fires_increase_and_name_the_cron_wall_time(case: tuple[str, str, datetime]) -> None:
    zone_name, cron, after = case
    zone = ZoneInfo(zone_name)
    fixed = not cron.split()[0].startswith("*") and not cron.split()[1].startswith("*")
    matches = _matcher(cron)
    fires = next_fires(sched(cron, zone_name), after, 20)
    assert fires, "every generated expression fires within a year"
    previous = after
    for fire in fires:
        assert fire.tzinfo is UTC and fire.second == 0 and fire.microsecond == 0
        assert fire > previous and (previous is after or fire - previous >= timedelta(minutes=1))
        previous = fire
        wall = fire.astimezone(zone)
        if matches(wall.replace(tzinfo=None)):
            continue
        # Not its own wall time: only a fixed-time job that fires right after a gap, for a wall
        # time inside the gap (Debian cron runs those "immediately").
        before = (fire - timedelta(minutes=1)).astimezone(zone)
        assert fixed, f"{fire} ({wall}) does not match {cron!r}"
        gap_start = before.replace(tzinfo=None) + timedelta(minutes=1)
        gap_end = wall.replace(tzinfo=None)
        assert gap_start < gap_end, f"{fire} ({wall}) does not match {cron!r} and follows no gap"
        t = gap_start
        while t < gap_end and not matches(t):
            t += timedelta(minutes=1)
        assert t < gap_end, f"{fire}: no time of {cron!r} in the gap {gap_start}..{gap_end}"

    # Completeness over the first three days: every matching real minute fires, except the
    # second pass of a repeated wall time for a fixed-time job; a gap holding a match fires
    # at its end.
    end = min(fires[-1], after + timedelta(days=3))
    fired = set(fires)
    minute = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute <= end:
        wall = minute.astimezone(zone)
        naive = wall.replace(tzinfo=None)
        prev_wall = (minute - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None)
        second_pass = naive <= prev_wall or (naive.replace(tzinfo=zone, fold=0).astimezone(UTC) != minute)
        if matches(naive) and not (fixed and second_pass):
            assert minute in fired, f"{minute} ({wall}) matches {cron!r} but did not fire"
        if fixed and naive - prev_wall > timedelta(minutes=1):  # a gap ends at this minute
            t = prev_wall + timedelta(minutes=1)
            if any(matches(t + timedelta(minutes=i)) for i in range(int((naive - t).total_seconds() // 60))):
                assert minute in fired, f"{minute}: the gap before {wall} holds a time of {cron!r}"
        minute += timedelta(minutes=1)


@settings(max_examples=100, deadline=None)
@given(_cases(), st.integers(1, 2000))
def test_due_fires_agree_with_next_fires(case: tuple[str, str, datetime], minutes: int) -> None:
    zone_name, cron, after = case
    s = sched(cron, zone_name)
    now = after + timedelta(minutes=minutes)
    expected = [f for f in next_fires(s, after, 2000) if f <= now]
    due = due_fires(s, after, now, max_listed=5000)
    assert [f.at for f in due.fires] == expected
    assert len({f.at for f in due.fires}) == len(due.fires)
    assert due.last_fire == (expected[-1] if expected else now)


def test_one_value_range_with_step_is_that_value() -> None:
    # Vixie: 3-3/2 is {3}; cronsim alone would read it as 3/2 (3, 5, 7, ...).
    assert parse_cron("0 3-3/2 * * *") == "0 3 * * *"
    assert parse_cron("0 1,3-3/2,5-9/2 * * mon-mon/2") == "0 1,3,5-9/2 * * mon"


def test_lord_howe_fall_back_hour_field_with_star_minutes() -> None:
    # 2024-04-07 02:00 +11:00 -> 01:30 +10:30. The next 02:00 is 15:30Z; cronsim alone jumped
    # from 01:30 to 02:30 (16:00Z), an hour of real time, and skipped 02:00-02:29.
    s = sched("* */2 * * *", "Australia/Lord_Howe")
    assert next_fires(s, utc(2024, 4, 6, 14, 0), 1) == [utc(2024, 4, 6, 15, 30)]
    assert next_fires(s, utc(2024, 4, 6, 15, 10), 1) == [utc(2024, 4, 6, 15, 30)]


def test_midnight_that_does_not_exist_does_not_fire_hour_zero() -> None:
    # America/Havana 2024-03-10 (a Sunday): 00:00 -05:00 -> 01:00 -04:00, there is no hour 0.
    # cronsim alone built an imaginary 00:00 and fired at 01:00 (05:00Z).
    fires = next_fires(sched("* */2 * * 0", "America/Havana"), utc(2024, 3, 10, 4, 0), 1)
    assert fires == [utc(2024, 3, 10, 6, 0)]  # 02:00 -04:00


def test_chatham_fall_back_off_the_hour() -> None:
    # Pacific/Chatham 2024-04-07: 03:45 +13:45 -> 02:45 +12:45, so 02:45-03:44 happens twice.
    # A real-clock job on even hours runs in both passes of 02:45-02:59.
    s = sched("* */2 * * *", "Pacific/Chatham")
    fires = next_fires(s, utc(2024, 4, 6, 13, 10), 40)
    assert fires[:5] == [
        utc(2024, 4, 6, 13, 11),
        utc(2024, 4, 6, 13, 12),
        utc(2024, 4, 6, 13, 13),
        utc(2024, 4, 6, 13, 14),
        utc(2024, 4, 6, 14, 0),
    ]
    assert fires[18] == utc(2024, 4, 6, 14, 14) and fires[19] == utc(2024, 4, 6, 15, 15)  # then 04:00 +12:45


def test_lord_howe_hourly_runs_in_both_passes_of_the_repeated_half_hour() -> None:
    # 2024-04-07 02:00 +11:00 -> 01:30 +10:30: 01:40 happens at 14:40Z and again at 15:10Z.
    s = sched("40 * * * *", "Australia/Lord_Howe")
    assert next_fires(s, utc(2024, 4, 6, 14, 30), 3) == [
        utc(2024, 4, 6, 14, 40),
        utc(2024, 4, 6, 15, 10),
        utc(2024, 4, 6, 16, 10),
    ]
