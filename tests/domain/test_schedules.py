"""Business time against a naive minute-by-minute computation, across DST
changes in several zones (both hemispheres, a 30-minute shift, changes at
midnight) and across holidays; due_instant as the inverse of business_us."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.configfile import FieldError
from streams.domain.schedules import (
    ALWAYS_OPEN,
    Assignment,
    OpenInterval,
    Schedule,
    SchedulesConfig,
    business_us,
    due_instant,
    is_open,
    offset_changes,
    parse_hours,
)

S = 1_000_000
MIN = 60 * S
H = 3600 * S
DAY = 86_400 * S
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Zones and the years whose offset changes the tests straddle.
ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",  # southern hemisphere: summer time over new year
    "Australia/Lord_Howe",  # a 30-minute shift
    "America/Santiago",  # changes at local midnight
    "Asia/Kolkata",  # no DST, +05:30
)


def us(text: str) -> int:
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(microseconds=1)


def changes(zone: str) -> list[int]:
    """Hours in 2024-2026 after which the zone's UTC offset differs (found
    here independently of the module, by probing every hour)."""
    tz = ZoneInfo(zone)
    out = []
    t = datetime(2024, 1, 1, tzinfo=UTC)
    while t.year < 2027:
        nxt = t + timedelta(hours=1)
        if t.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            out.append((nxt - EPOCH) // timedelta(microseconds=1))
        t = nxt
    return out or [us("2025-06-01T00:00:00+00:00")]


CHANGES = {zone: changes(zone) for zone in ZONES}


def naive_business_us(schedule: Schedule, start_us: int, end_us: int) -> int:
    """Minute by minute: a minute counts when its local wall-clock time, read
    with datetime.astimezone, is inside an open interval on a non-holiday."""
    tz = schedule.tz
    total = 0
    for m in range(start_us, end_us, MIN):
        local = (EPOCH + timedelta(microseconds=m)).astimezone(tz)
        if local.date() in schedule.holidays:
            continue
        tod = (local.hour * 3600 + local.minute * 60) * S
        if any(
            iv.weekday == local.weekday() and iv.start_us <= tod < iv.end_us
            for iv in schedule.hours
        ):
            total += MIN
    return total


# Times of day around DST changes (00:00-04:00) and ordinary business hours.
CLOCK = st.sampled_from([0, 30, 60, 90, 120, 150, 180, 210, 240, 480, 540, 720, 1020, 1440])


@st.composite
def schedules(draw: st.DrawFn, zone: str, around: int) -> Schedule:
    intervals = []
    for _ in range(draw(st.integers(1, 8))):
        day = draw(st.integers(0, 6))
        a, b = sorted(draw(st.lists(CLOCK, min_size=2, max_size=2, unique=True)))
        intervals.append(OpenInterval(day, a * MIN, b * MIN))
    local_day = (EPOCH + timedelta(microseconds=around)).astimezone(ZoneInfo(zone)).date()
    holidays = draw(
        st.frozensets(st.integers(-3, 3).map(lambda k: local_day + timedelta(days=k)), max_size=3)
    )
    return Schedule("s", zone, tuple(intervals), holidays)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Schedule, int, int]:
    zone = draw(st.sampled_from(ZONES))
    around = draw(st.sampled_from(CHANGES[zone]))
    start = around + draw(st.integers(-3 * 24 * 60, 2 * 24 * 60)) * MIN
    end = start + draw(st.integers(0, 3 * 24 * 60)) * MIN
    return draw(schedules(zone, around)), start, end


@settings(max_examples=150, deadline=None)
@given(case=cases())
def test_business_time_equals_the_minute_by_minute_count(case: tuple[Schedule, int, int]) -> None:
    schedule, start, end = case
    assert business_us(schedule, start, end) == naive_business_us(schedule, start, end)


@settings(max_examples=200, deadline=None)
@given(case=cases(), jitter=st.tuples(st.integers(0, H), st.integers(0, H), st.integers(0, H)))
def test_business_time_is_additive_to_the_microsecond(
    case: tuple[Schedule, int, int], jitter: tuple[int, int, int]
) -> None:
    schedule, start, end = case
    a, b, c = sorted((start + jitter[0], end + jitter[1], end + jitter[1] + jitter[2]))
    whole = business_us(schedule, a, c)
    assert whole == business_us(schedule, a, b) + business_us(schedule, b, c)
    assert 0 <= whole <= c - a


@settings(max_examples=200, deadline=None)
@given(
    case=cases(),
    target=st.integers(0, 30 * H),
    jitter=st.integers(0, MIN - 1),
)
def test_due_instant_is_the_inverse_of_business_time(
    case: tuple[Schedule, int, int], target: int, jitter: int
) -> None:
    schedule, start, _ = case
    start += jitter
    due = due_instant(schedule, start, target)
    assert due is not None
    assert business_us(schedule, start, due) == target
    if target > 0:
        assert business_us(schedule, start, due - 1) == target - 1  # first such instant
        assert is_open(schedule, due - 1)


@settings(max_examples=100, deadline=None)
@given(case=cases())
def test_due_instant_of_the_business_time_is_at_or_before_the_end(
    case: tuple[Schedule, int, int],
) -> None:
    schedule, start, end = case
    spent = business_us(schedule, start, end)
    due = due_instant(schedule, start, spent)
    assert due is not None and start <= due <= end
    assert business_us(schedule, start, due) == spent


# ---------------------------------------------------------------------------
# Worked examples
# ---------------------------------------------------------------------------

BERLIN = Schedule(
    "berlin",
    "Europe/Berlin",
    parse_hours("mon-fri 09:00-17:00") + parse_hours("sun 01:00-04:00"),
    frozenset({date(2025, 12, 25)}),
)


def test_offset_changes_are_found_to_the_second() -> None:
    tz = ZoneInfo("America/New_York")
    found = offset_changes(tz, us("2025-01-01T00:00:00+00:00"), us("2026-01-01T00:00:00+00:00"))
    assert found == [us("2025-03-09T07:00:00+00:00"), us("2025-11-02T06:00:00+00:00")]
    assert len(CHANGES["Europe/Berlin"]) == 6 and len(CHANGES["Asia/Kolkata"]) == 1


def test_dst_gap_and_fold_in_berlin() -> None:
    spring = business_us(BERLIN, us("2025-03-30T00:00:00+01:00"), us("2025-03-31T00:00:00+02:00"))
    autumn = business_us(BERLIN, us("2025-10-26T00:00:00+02:00"), us("2025-10-27T00:00:00+01:00"))
    assert (spring, autumn) == (2 * H, 4 * H)  # 01:00-04:00 loses / repeats an hour
    ordinary = business_us(BERLIN, us("2025-03-31T00:00:00+02:00"), us("2025-04-01T00:00:00+02:00"))
    assert ordinary == 8 * H


def test_holiday_is_closed_all_day() -> None:
    christmas = business_us(
        BERLIN, us("2025-12-25T00:00:00+01:00"), us("2025-12-26T00:00:00+01:00")
    )
    boxing = business_us(BERLIN, us("2025-12-26T00:00:00+01:00"), us("2025-12-27T00:00:00+01:00"))
    assert (christmas, boxing) == (0, 8 * H)


def test_due_over_a_weekend_and_exact_microseconds() -> None:
    start = us("2025-03-28T16:30:00.000001+01:00")  # Friday
    due = due_instant(BERLIN, start, 3 * H)
    # 29 min 59.999999 s on Friday, then Sunday 01:00-04:00 has only 2 h
    # (the gap), then Monday 09:00 onwards.
    assert due == us("2025-03-31T09:30:00.000001+02:00")


def test_always_open_is_calendar_time() -> None:
    assert ALWAYS_OPEN.always_open
    assert business_us(ALWAYS_OPEN, 5, 5 + 7 * DAY + 3) == 7 * DAY + 3
    assert due_instant(ALWAYS_OPEN, 5, 11) == 16
    assert business_us(ALWAYS_OPEN, 10, 5) == 0


def test_unreachable_target_gives_none() -> None:
    start = date(2025, 1, 1)
    closed = frozenset(start + timedelta(days=k) for k in range(4000))
    sched = Schedule("closed", "UTC", parse_hours("mon 09:00-10:00"), closed)
    assert due_instant(sched, us("2025-01-01T00:00:00+00:00"), H) is None


# ---------------------------------------------------------------------------
# Hours syntax, model checks, assignment
# ---------------------------------------------------------------------------


def test_parse_hours_forms() -> None:
    ivs = parse_hours("sat,sun 10:00-12:00, 13:00-16:00")
    assert {(i.weekday, i.start_us // MIN, i.end_us // MIN) for i in ivs} == {
        (5, 600, 720),
        (6, 600, 720),
        (5, 780, 960),
        (6, 780, 960),
    }
    assert [i.weekday for i in parse_hours("fri-mon 00:00-24:00")] == [4, 5, 6, 0]


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("monday 09:00-17:00", "is not a day"),
        ("mon-fri", "is not like"),
        ("mon 9-17", "is not HH:MM-HH:MM"),
        ("mon 17:00-09:00", "must start before it ends"),
        ("mon 09:00-24:30", "is not a time of day"),
        ("mon 25:00-26:00", "is not a time of day"),
    ],
)
def test_parse_hours_rejects(spec: str, needle: str) -> None:
    with pytest.raises(FieldError, match=needle) as info:
        parse_hours(spec)
    assert info.value.field == "hours"


def test_schedule_checks() -> None:
    with pytest.raises(FieldError, match="IANA") as info:
        Schedule("x", "Mars/Olympus", parse_hours("mon 09:00-10:00"))
    assert info.value.field == "timezone"
    with pytest.raises(FieldError, match="at least one"):
        Schedule("x", "UTC", ())
    with pytest.raises(FieldError, match="schedule name"):
        Schedule("Bad Name", "UTC", parse_hours("mon 09:00-10:00"))


def test_overlapping_intervals_count_once() -> None:
    sched = Schedule("o", "UTC", parse_hours("mon 09:00-12:00") + parse_hours("mon 11:00-13:00"))
    monday = us("2025-06-02T00:00:00+00:00")
    assert business_us(sched, monday, monday + DAY) == 4 * H


def test_first_matching_assignment_wins_default_24x7() -> None:
    cfg = SchedulesConfig(
        schedules={"berlin": BERLIN},
        assignments=(
            Assignment("berlin", {"team": "billing"}),
            Assignment("berlin", {"channel": "chat"}),
        ),
    )
    assert cfg.schedule_for({"channel": "email", "team": "billing"}) is BERLIN
    assert cfg.schedule_for({"channel": "chat", "team": "x"}) is BERLIN
    assert cfg.schedule_for({"channel": "email", "team": "x"}) is ALWAYS_OPEN
    with pytest.raises(FieldError, match="no schedule named"):
        SchedulesConfig(schedules={}, assignments=(Assignment("nope"),))
