"""Schedules: a cron expression in an IANA time zone, and which fires are due (no I/O here).

A schedule names its times the way a crontab does, in the local wall time of its zone
(``30 2 * * *`` in ``Europe/Berlin`` is 02:30 Berlin time, whatever the UTC offset that day).
Fires are computed as UTC instants; the server stores the last one it handled and asks
``due_fires`` for those since.

Cron syntax and DST rule
------------------------
Expressions are evaluated by cronsim (healthchecks.io's evaluator, which aims to match Debian's
cron, itself Vixie cron). Five fields: minute, hour, day of month, month, day of week (0-7, 7 is
Sunday; names JAN-DEC and SUN-SAT); ``*``, ranges, lists and steps; the extensions ``L``,
``LW``, ``5L`` and ``MON#2``. As in Vixie cron, when both day fields are restricted (neither
starts with ``*``) a day matching either runs. The aliases ``@yearly``, ``@annually``,
``@monthly``, ``@weekly``, ``@daily``, ``@midnight`` and ``@hourly`` are accepted (crontab(5));
``@reboot`` is not (a server start is not a time).

Around daylight-saving changes the rule is Debian cron's (cron(8), "Daylight Saving Time and
other time changes"), which cronsim reproduces:

* A *fixed-time* job, one whose minute and hour fields both start with something other than
  ``*`` (``30 2 * * *``, ``0 9,17 * * 1-5``), runs once per matching wall-clock time:
  - spring forward: a time in the skipped interval runs at the first minute after the gap
    (``30 2 * * *`` in Europe/Berlin on 2024-03-31 runs at 03:00 CEST). Several skipped times
    of one gap make one fire.
  - fall back: a time that occurs twice runs at its first occurrence only (``30 2 * * *`` in
    Europe/Berlin on 2024-10-27 runs at 02:30 CEST, not again at 02:30 CET).
* Any other job (minute or hour starts with ``*``: ``*/15 * * * *``, ``0 * * * *``) runs on
  the real clock: no fire in the skipped hour, and the repeated hour fires again, since it is
  an hour of real time.

Fires are at least one minute apart and strictly increasing: expressions with a seconds field
are refused, since credo's schedules fire at most once a minute.

Missed runs
-----------
A fire is *on time* when the server handles it within ``MISFIRE_GRACE`` (60 s, Quartz's default
``misfireThreshold``); later than that it is *missed* (the server was down or busy). Every missed
fire is reported so that the server can record it (a missed run is never silent, unlike
rundeck#3611). The schedule's policy then says what runs:

* ``skip``: none of the missed fires runs.
* ``run-once``: if no fire in the window is on time, the latest missed one runs, once, however
  many were missed (Quartz's ``MISFIRE_INSTRUCTION_FIRE_ONCE_NOW``, systemd's ``Persistent=``).
  If a fire is on time, it runs and covers the missed ones.

A disabled schedule has no fires: times that pass while it is paused are neither run nor missed.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from credo.errors import InputError

__all__ = [
    "MAX_LISTED_FIRES",
    "MAX_SCANNED_FIRES",
    "MISFIRE_GRACE",
    "DueFires",
    "Fire",
    "MissedRunPolicy",
    "Schedule",
    "due_fires",
    "next_fires",
    "parse_cron",
    "parse_timezone",
]

# A fire handled later than this after its time counts as missed (Quartz's misfireThreshold
# default is 60 s: org.quartz.jobStore.misfireThreshold).
MISFIRE_GRACE = timedelta(seconds=60)
# due_fires lists at most this many fires (the most recent ones); older missed fires are counted.
MAX_LISTED_FIRES = 100
# ... and walks at most this many fires: a per-minute schedule after 70 days of downtime.
MAX_SCANNED_FIRES = 100_000
_QUARTER = 900  # seconds

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_CRON_HINT = "five fields: minute hour day-of-month month day-of-week, e.g. '30 2 * * *'"
_SINGLE_RANGE_RE = re.compile(r"^(\w+)-(\w+)/\d+$")
_TZ_KEY_RE = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


class MissedRunPolicy(enum.StrEnum):
    SKIP = "skip"
    RUN_ONCE = "run-once"


def parse_cron(expression: str) -> str:
    """Check a cron expression; return it normalised (aliases expanded, single spaces).

    Raises ``InputError`` with a one-line message naming the bad field.
    """
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() == "@reboot":
            raise InputError("@reboot is not a schedule", hint="a schedule fires at times: " + _CRON_HINT)
        if text.lower() not in _ALIASES:
            raise InputError(
                f"unknown cron alias {text!r}", hint=f"use one of {', '.join(_ALIASES)} or {_CRON_HINT}"
            )
        return _ALIASES[text.lower()]
    fields = text.split(" ") if text else []
    if len(fields) == 6:
        raise InputError(
            f"cron expression {text!r} has a seconds field; schedules fire at most once a minute",
            hint=_CRON_HINT,
        )
    if len(fields) != 5:
        raise InputError(f"cron expression {text!r} has {len(fields)} fields, not 5", hint=_CRON_HINT)
    text = " ".join(_fix_single_ranges(f) for f in fields)
    start = datetime(2000, 1, 1, tzinfo=UTC)
    try:
        it = CronSim(text, start)
    except CronSimError as exc:
        # cronsim says "Bad minute", "Bad day-of-month"...: keep its field name.
        raise InputError(f"cron expression {text!r}: {str(exc).lower()} field", hint=_CRON_HINT) from None
    try:
        next(it)
    except StopIteration:
        raise InputError(
            f"cron expression {text!r} never fires", hint="check the day-of-month and month fields"
        ) from None
    return text


def _fix_single_ranges(spec: str) -> str:
    """``5-5/2`` -> ``5``: a one-value range with a step is that value in Vixie cron.

    cronsim 2.8 reads a one-value range with a step like ``5/2`` (5 to the field's end), which
    would make ``0 3-3/2 * * *`` fire every other hour. Rewriting it keeps Vixie's meaning.
    """
    parts = []
    for part in spec.split(","):
        m = _SINGLE_RANGE_RE.match(part)
        parts.append(m.group(1) if m and m.group(1).upper() == m.group(2).upper() else part)
    return ",".join(parts)


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA zone named ``name`` (``Europe/Berlin``, ``UTC``); InputError if unknown."""
    hint = "an IANA time zone name such as Europe/Berlin, America/New_York or UTC"
    # zoneinfo maps keys to file paths: refuse anything that is not a plain key before it does.
    if not _TZ_KEY_RE.match(name) or ".." in name:
        raise InputError(f"invalid time zone {name!r}", hint=hint)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InputError(f"unknown time zone {name!r}", hint=hint) from None


def _aware_utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Schedule:
    """A runbook's schedule. ``cron`` is normalised and ``timezone`` checked on creation."""

    cron: str
    timezone: str
    created: datetime
    parameters: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    missed_runs: MissedRunPolicy = MissedRunPolicy.SKIP

    def __post_init__(self) -> None:
        object.__setattr__(self, "cron", parse_cron(self.cron))
        parse_timezone(self.timezone)
        object.__setattr__(self, "created", _aware_utc(self.created, "created"))
        object.__setattr__(self, "missed_runs", MissedRunPolicy(self.missed_runs))

    @property
    def zone(self) -> ZoneInfo:
        return parse_timezone(self.timezone)


class _CronSim(CronSim):
    """cronsim 2.8 with its real-clock walk fixed (all found by the property tests).

    Jobs with ``*`` in the minute or hour field are walked by cronsim on the real clock (aware
    datetimes, steps of real time); fixed-time jobs in naive wall time, which this class leaves
    to cronsim. Three faults of the real-clock walk around offset changes:

    1. To the next hour cronsim adds 3600 s to hh:00. Where a change is not a whole hour or not
       on the hour, that skips the start of a wall-clock hour: ``* */2 * * *`` missed 02:00-02:29
       on Australia/Lord_Howe's fall-back day (back 30 minutes at 02:00) and the second pass of
       02:45-02:59 on Pacific/Chatham's (back from 03:45 to 02:45).
    2. To a given minute it adds the minutes' difference at once, which can jump over the
       repeated part of an hour (``40 * * * *`` would miss the second 01:40 on Lord Howe).
    3. ``replace(minute=0)`` or ``datetime.combine`` at local midnight can build a wall time
       that does not exist (America/Havana has no 00:00 on its spring-forward day); it then
       matched hour 0 and fired at the real 01:00. Such times are normalised through UTC.

    Every offset and every change in tzdata since 1980 is a multiple of 15 minutes, so the wall
    clock can only jump at a UTC quarter hour: a step never passes one, and between them the
    wall clock runs with real time and big steps are exact.
    """

    def _aware(self) -> bool:
        return self.dt.tzinfo is not None

    def _normalise(self) -> None:
        self.dt = self.dt.astimezone(UTC).astimezone(self.dt.tzinfo)

    def _to_quarter(self) -> int:
        return _QUARTER - int(self.dt.timestamp()) % _QUARTER

    def advance_day(self) -> bool:
        moved = super().advance_day()
        if moved and self._aware():
            self._normalise()
        return moved

    def advance_month(self) -> None:
        before = self.dt
        super().advance_month()
        if self.dt is not before and self._aware():
            self._normalise()

    def advance_hour(self) -> bool:
        if not self._aware():
            return super().advance_hour()
        if self.dt.hour in self.hours:
            return False
        self.dt = self.dt.replace(minute=0, second=0)
        self._normalise()
        day = self.dt.date()
        while self.dt.hour not in self.hours:
            self.tick(seconds=self._to_quarter())
            if self.dt.date() != day:
                break  # a new day: cronsim re-checks the month and day
        return True

    def advance_minute(self) -> bool:
        if not self._aware():
            return super().advance_minute()
        if self.dt.minute in self.minutes:
            return False
        self.dt = self.dt.replace(second=0)
        self._normalise()
        hour = self.dt.hour
        while self.dt.minute not in self.minutes:
            ahead = 60 * min((m - self.dt.minute) % 60 for m in self.minutes)
            self.tick(seconds=min(ahead, self._to_quarter()))
            if self.dt.hour != hour:
                break  # another hour: cronsim re-checks the day and hour
        return True


def _iter_fires(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Fires strictly after ``after``, as UTC instants, in increasing order."""
    after = _aware_utc(after, "after")
    local = after.astimezone(schedule.zone)
    last = after
    try:
        for fire in _CronSim(schedule.cron, local):
            instant = fire.astimezone(UTC)
            # cronsim walks a fixed-time job in naive wall time: from a start inside the second
            # pass of a repeated hour it yields that hour's first pass, which lies before
            # ``after`` (and already fired). Dropping it keeps "once" and the order.
            if instant <= last:
                continue
            last = instant
            yield instant
    except StopIteration:  # cronsim found nothing within 50 years (PEP 479 wraps it otherwise)
        return


def next_fires(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fires strictly after ``after``, as UTC instants (fewer if none remain).

    Ignores ``enabled``: a paused schedule still shows when it would run.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    result: list[datetime] = []
    for fire in _iter_fires(schedule, after):
        if len(result) >= count:
            break
        result.append(fire)
    return result


@dataclass(frozen=True)
class Fire:
    """One fire of a schedule: its instant (UTC), whether it was missed, whether to run it."""

    at: datetime
    missed: bool
    run: bool


@dataclass(frozen=True)
class DueFires:
    """What ``due_fires`` found in (last_fire, now].

    ``fires``: chronological, at most ``MAX_LISTED_FIRES``, the most recent ones; the server
    records each and starts a job for those with ``run``. ``omitted``: older missed fires not
    listed (the server records their number); ``omitted_at_least``: the walk stopped at
    ``MAX_SCANNED_FIRES`` so ``omitted`` is a lower bound. ``last_fire``: the instant to store
    as the schedule's last handled fire (``now`` when nothing fired, so the next call starts
    there).
    """

    fires: tuple[Fire, ...]
    omitted: int
    omitted_at_least: bool
    last_fire: datetime

    @property
    def runs(self) -> tuple[Fire, ...]:
        return tuple(f for f in self.fires if f.run)

    @property
    def missed_count(self) -> int:
        return self.omitted + sum(1 for f in self.fires if f.missed)


def due_fires(
    schedule: Schedule,
    last_fire: datetime | None,
    now: datetime,
    *,
    grace: timedelta = MISFIRE_GRACE,
    max_listed: int = MAX_LISTED_FIRES,
    max_scanned: int = MAX_SCANNED_FIRES,
) -> DueFires:
    """The fires in (last_fire, now], each marked on time or missed and run or not per policy.

    ``last_fire``: the last fire the server handled, or None for a new schedule (then the
    window starts at ``schedule.created``). A disabled schedule yields no fire.
    """
    now = _aware_utc(now, "now")
    start = schedule.created if last_fire is None else _aware_utc(last_fire, "last_fire")
    if not schedule.enabled or start >= now:
        return DueFires((), 0, False, max(start, now))
    recent: deque[datetime] = deque(maxlen=max(1, max_listed))
    scanned = 0
    truncated = False
    fires = _iter_fires(schedule, start)
    for instant in fires:
        if instant > now:
            break
        scanned += 1
        recent.append(instant)
        if scanned >= max_scanned:
            truncated = True
            break
    if truncated:
        # Too many to walk: list the most recent ones, found from a window that ends at now and
        # grows until it holds enough (the set of fires does not depend on where a walk starts).
        # Every walked fire is then omitted, and so are the unwalked ones between: a lower bound.
        later = _latest_fires(schedule, recent[-1], now, max(1, max_listed))
        if later:
            recent = later
        else:  # the walk stopped on the last fire after all
            truncated = False
    omitted = scanned if truncated else scanned - len(recent)
    if not recent:
        return DueFires((), 0, False, now)
    on_time = [now - at <= grace for at in recent]
    run_index: set[int] = {i for i, ok in enumerate(on_time) if ok}
    if not run_index and schedule.missed_runs is MissedRunPolicy.RUN_ONCE:
        run_index = {len(recent) - 1}
    listed = tuple(Fire(at=at, missed=not on_time[i], run=i in run_index) for i, at in enumerate(recent))
    return DueFires(listed, omitted, truncated, recent[-1])


def _latest_fires(schedule: Schedule, floor: datetime, now: datetime, count: int) -> deque[datetime]:
    """The last ``count`` fires in (floor, now], walking back in growing windows from ``now``."""
    window = timedelta(hours=1)
    while True:
        begin = max(floor, now - window)
        found: deque[datetime] = deque(maxlen=count)
        for instant in _iter_fires(schedule, begin):
            if instant > now:
                break
            found.append(instant)
        if len(found) >= count or begin == floor:
            return found
        window *= 2
