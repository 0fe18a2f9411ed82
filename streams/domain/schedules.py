"""Business hours (contract 8.2): schedules, their assignment, business time.

A ``Schedule`` has an IANA time zone, weekly open intervals in that zone's
wall-clock time (``mon-fri 09:00-17:00``; several per day allowed) and
holidays (dates in the zone, closed all day). ``Assignment`` rules pick a
schedule by ``channel``/``team`` filters, first match wins; a key no rule
matches is open 24x7 (``ALWAYS_OPEN``, where business time is calendar time).

Business time between two instants is the length of the set of instants in
between whose **local wall-clock time** (by the zone's rules at that
instant) falls inside an open interval on a non-holiday date. So it is real
elapsed time, and DST is handled by the zone rules:

* an interval that contains a spring-forward gap is shorter by the gap
  (``sun 01:00-04:00`` in Europe/Berlin on the last Sunday of March is 2 h);
* an interval that contains a fall-back fold counts the repeated wall time
  twice (``sun 01:00-04:00`` on the last Sunday of October is 4 h);
* ``09:00-17:00`` is 8 h on every ordinary day in zones whose changes happen
  at night, and a changing day is never "8 h of wall time" when the change
  falls inside the interval.

Computation: the span is cut where the zone's UTC offset changes; within a
piece the offset is constant, so local time is the instant plus the offset,
and the open intervals of each local date are intersected exactly, in
integer microseconds. Offset changes are found by probing the zone every
hour of a year and bisecting to the second (cached per zone and year):
``zoneinfo`` does not publish its transition list.

Pure: no clock reads. Times are integer microseconds since the Unix epoch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.domain.configfile import FieldError, check_filters
from streams.domain.model import US_PER_S

if TYPE_CHECKING:  # sla imports this module
    from streams.domain.sla import SlaPolicy

__all__ = [
    "ALWAYS_OPEN",
    "DAYS",
    "Assignment",
    "OpenInterval",
    "Schedule",
    "SchedulesConfig",
    "business_us",
    "due_instant",
    "is_open",
    "offset_changes",
    "parse_hours",
]

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
US_PER_MIN: Final = 60 * US_PER_S
US_PER_HOUR: Final = 3600 * US_PER_S
US_PER_DAY: Final = 86_400 * US_PER_S
#: due_instant gives up (None) after this much calendar time without reaching
#: the target: only a schedule whose holidays cover years gets there.
DUE_SEARCH_LIMIT_US: Final = 3660 * US_PER_DAY

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_TIME_RANGE = re.compile(r"^(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})$")
_HOURS_HINT: Final = "like 'mon-fri 09:00-17:00' or 'sat,sun 10:00-12:00, 13:00-16:00'"


@dataclass(frozen=True, order=True)
class OpenInterval:
    """Open on ``weekday`` (0 = Monday) from ``start_us`` to ``end_us``
    after local midnight (``end_us`` may be 24:00)."""

    weekday: int
    start_us: int
    end_us: int

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise FieldError("hours", f"weekday {self.weekday} is not 0 (mon) .. 6 (sun)")
        if not 0 <= self.start_us < self.end_us <= US_PER_DAY:
            raise FieldError(
                "hours",
                f"{_clock(self.start_us)}-{_clock(self.end_us)} must start before it ends, "
                "within one day (00:00-24:00); split a night shift at midnight",
            )


def _clock(us: int) -> str:
    return f"{us // US_PER_HOUR:02d}:{us % US_PER_HOUR // US_PER_MIN:02d}"


def _days(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise FieldError("hours", f"{part.strip()!r} is not a day or day range of {DAYS}")
        a = DAYS.index(first)
        b = DAYS.index(last) if last else a
        out.extend((a + i) % 7 for i in range((b - a) % 7 + 1))  # fri-mon wraps
    return out


def parse_hours(spec: str) -> tuple[OpenInterval, ...]:
    """``mon-fri 09:00-17:00`` (days: ``mon``, ``mon-fri``, ``fri-mon``,
    ``mon,wed``; several time ranges separated by commas; end up to 24:00)."""
    parts = spec.strip().split(None, 1)
    if len(parts) != 2:
        raise FieldError("hours", f"{spec!r} is not {_HOURS_HINT}")
    days = _days(parts[0])
    out: list[OpenInterval] = []
    for rng in parts[1].split(","):
        match = _TIME_RANGE.match(rng.strip())
        if match is None:
            raise FieldError("hours", f"{rng.strip()!r} in {spec!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
            raise FieldError("hours", f"{rng.strip()!r} is not a time of day (00:00..24:00)")
        start, end = h1 * US_PER_HOUR + m1 * US_PER_MIN, h2 * US_PER_HOUR + m2 * US_PER_MIN
        out.extend(OpenInterval(day, start, end) for day in days)
    return tuple(out)


def _merge(intervals: tuple[OpenInterval, ...]) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Per weekday, the union of its intervals as sorted disjoint (start, end)."""
    per_day: list[list[tuple[int, int]]] = [[] for _ in DAYS]
    for iv in sorted(intervals):
        day = per_day[iv.weekday]
        if day and iv.start_us <= day[-1][1]:
            day[-1] = (day[-1][0], max(day[-1][1], iv.end_us))
        else:
            day.append((iv.start_us, iv.end_us))
    return tuple(tuple(d) for d in per_day)


def _zone(key: str) -> ZoneInfo:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        raise FieldError(
            "timezone", f"{key!r} is not an IANA time zone (e.g. Europe/Berlin)"
        ) from None


@dataclass(frozen=True)
class Schedule:
    """A named schedule. ``hours`` may overlap (their union is open)."""

    name: str
    timezone: str
    hours: tuple[OpenInterval, ...]
    holidays: frozenset[date] = frozenset()
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)
    _open: tuple[tuple[tuple[int, int], ...], ...] = field(init=False, repr=False, compare=False)
    _holiday_days: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise FieldError("name", f"{self.name!r} is not a schedule name [a-z0-9][a-z0-9_.-]*")
        object.__setattr__(self, "_tz", _zone(self.timezone))
        if not self.hours:
            raise FieldError("hours", "a schedule needs at least one open interval")
        object.__setattr__(self, "_open", _merge(self.hours))
        object.__setattr__(
            self, "_holiday_days", frozenset(d.toordinal() - _EPOCH_ORDINAL for d in self.holidays)
        )

    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    @property
    def always_open(self) -> bool:
        return not self._holiday_days and all(day == ((0, US_PER_DAY),) for day in self._open)

    def open_on(self, day: int) -> tuple[tuple[int, int], ...]:
        """Open (start, end) after local midnight of local day ``day`` (days
        since 1970-01-01): none on a holiday."""
        if day in self._holiday_days:
            return ()
        return self._open[(day + 3) % 7]  # 1970-01-01 was a Thursday


#: The default for keys no assignment matches: open all the time, in UTC.
ALWAYS_OPEN: Final = Schedule(
    "24x7", "UTC", tuple(OpenInterval(d, 0, US_PER_DAY) for d in range(7))
)


@dataclass(frozen=True)
class Assignment:
    """Keys whose labels match every filter get ``schedule``."""

    schedule: str
    filters: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_filters(self.filters, frozenset())

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.filters.items())


@dataclass(frozen=True)
class SchedulesConfig:
    """The schedules file: named schedules, their assignment and the SLA policy."""

    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    assignments: tuple[Assignment, ...] = ()
    sla: SlaPolicy | None = None
    source: str = "<built-in>"

    def __post_init__(self) -> None:
        for a in self.assignments:
            if a.schedule not in self.schedules:
                raise FieldError("schedule", f"no schedule named {a.schedule!r}")

    def schedule_for(self, labels: Mapping[str, str]) -> Schedule:
        """The first matching assignment's schedule; 24x7 when none matches."""
        for a in self.assignments:
            if a.matches(labels):
                return self.schedules[a.schedule]
        return ALWAYS_OPEN


# ---------------------------------------------------------------------------
# Zone offsets
# ---------------------------------------------------------------------------


def _offset_us(tz: ZoneInfo, us: int) -> int:
    off = (_EPOCH + timedelta(microseconds=us)).astimezone(tz).utcoffset()
    return 0 if off is None else off // timedelta(microseconds=1)


@lru_cache(maxsize=512)
def _year_changes(tz: ZoneInfo, year: int) -> tuple[tuple[int, int], ...]:
    """(instant, offset from then on) of each offset change in (start of
    ``year``, start of ``year + 1``], UTC years."""
    lo = int((datetime(year, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()) * US_PER_S
    hi = int((datetime(year + 1, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()) * US_PER_S
    out: list[tuple[int, int]] = []
    prev_t, prev_off = lo, _offset_us(tz, lo)
    t = lo
    while t < hi:
        t = min(t + US_PER_HOUR, hi)
        off = _offset_us(tz, t)
        if off != prev_off:
            # Zone rules change on whole seconds: bisect (prev_t, t] to one.
            a, b = prev_t // US_PER_S, t // US_PER_S
            while b - a > 1:
                mid = (a + b) // 2
                if _offset_us(tz, mid * US_PER_S) == prev_off:
                    a = mid
                else:
                    b = mid
            out.append((b * US_PER_S, off))
            prev_off = off
        prev_t = t
    return tuple(out)


def _year_of(us: int) -> int:
    return (_EPOCH + timedelta(microseconds=us)).year


def _pieces(tz: ZoneInfo, start_us: int, end_us: int) -> Iterator[tuple[int, int, int]]:
    """(from, to, offset): [start, end) cut where the UTC offset changes."""
    changes: list[tuple[int, int]] = []
    for year in range(_year_of(start_us) - 1, _year_of(end_us) + 1):
        changes.extend(c for c in _year_changes(tz, year) if start_us < c[0] < end_us)
    a, off = start_us, _offset_us(tz, start_us)
    for t, new_off in changes:
        yield a, t, off
        a, off = t, new_off
    yield a, end_us, off


def _open_runs(schedule: Schedule, a: int, b: int, off: int) -> Iterator[tuple[int, int]]:
    """Open instants in [a, b) where the offset is constant, as ascending runs."""
    la, lb = a + off, b + off
    for day in range(la // US_PER_DAY, (lb - 1) // US_PER_DAY + 1):
        base = day * US_PER_DAY
        for s, e in schedule.open_on(day):
            lo, hi = max(la, base + s), min(lb, base + e)
            if hi > lo:
                yield lo - off, hi - off


# ---------------------------------------------------------------------------
# Business time
# ---------------------------------------------------------------------------


def is_open(schedule: Schedule, us: int) -> bool:
    """Whether the instant's local wall-clock time is inside an open interval."""
    off = _offset_us(schedule.tz, us)
    local = us + off
    day, tod = divmod(local, US_PER_DAY)
    return any(s <= tod < e for s, e in schedule.open_on(day))


def business_us(schedule: Schedule, start_us: int, end_us: int) -> int:
    """Open time between two instants, exact in microseconds; 0 when
    ``end_us <= start_us`` (a negative duration is recorded as 0)."""
    if end_us <= start_us:
        return 0
    if schedule.always_open:
        return end_us - start_us
    total = 0
    for a, b, off in _pieces(schedule.tz, start_us, end_us):
        for lo, hi in _open_runs(schedule, a, b, off):
            total += hi - lo
    return total


def due_instant(schedule: Schedule, start_us: int, target_us: int) -> int | None:
    """The first instant whose business time since ``start_us`` reaches
    ``target_us``: ``business_us(s, start, due) == target`` and any earlier
    instant has less. None when not reached within ``DUE_SEARCH_LIMIT_US``."""
    if target_us <= 0:
        return start_us
    if schedule.always_open:
        return start_us + target_us
    done = 0
    chunk_start = start_us
    limit = start_us + DUE_SEARCH_LIMIT_US
    while chunk_start < limit:
        chunk_end = min(chunk_start + 7 * US_PER_DAY, limit)
        for a, b, off in _pieces(schedule.tz, chunk_start, chunk_end):
            for lo, hi in _open_runs(schedule, a, b, off):
                if done + (hi - lo) >= target_us:
                    return lo + (target_us - done)
                done += hi - lo
        chunk_start = chunk_end
    return None


def offset_changes(tz: ZoneInfo, start_us: int, end_us: int) -> list[int]:
    """The instants in (start, end) where the zone's UTC offset changes."""
    return [a for a, _, _ in _pieces(tz, start_us, end_us)][1:]
