"""Fuzzing the validator: whatever arrives, ``decode`` returns exactly one
event or one rejection with a contract reason, and what it accepts satisfies
every rule of the contract."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain.model import (
    AUTHORS,
    PRIORITIES,
    REASONS,
    SCORE_RANGES,
    SURVEY_TYPES,
    TICKET_TYPES,
    Rejection,
    SurveyResponse,
    TicketEvent,
)
from streams.domain.validation import (
    DIMENSION_PATTERN,
    FUTURE_TOLERANCE_US,
    decode,
    parse_timestamp_us,
)
from tests.domain.corpus import BASES, INVALID, NOW_US, VALID
from tests.domain.corpus.strategies import encode, json_values, near_valid_records

ALLOWED = set(REASONS) - {"processing_error"}
DIMENSION = re.compile(DIMENSION_PATTERN)
sources = st.sampled_from(["tickets", "surveys"])
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_contract(
    raw: bytes | None, source: str, dimensions: tuple[str, ...] = ("channel", "team")
) -> None:
    """``decode`` returns one outcome; an accepted event obeys every rule."""
    result = decode(raw, source, NOW_US, dimensions=dimensions)  # type: ignore[arg-type]
    assert decode(raw, source, NOW_US, dimensions=dimensions) == result  # type: ignore[arg-type]
    if isinstance(result, Rejection):
        assert result.reason in ALLOWED, result
        assert isinstance(result.detail, str) and 0 < len(result.detail) <= 160, result
        return
    assert raw is not None and len(raw) <= 65_536
    assert 1 <= len(result.event_id) <= 128
    assert result.occurred_us <= NOW_US + FUTURE_TOLERANCE_US
    assert set(result.dims) <= set(dimensions)
    assert all(DIMENSION.fullmatch(v) for v in result.dims.values()), result.dims
    if source == "tickets":
        assert type(result) is TicketEvent
        assert result.type in TICKET_TYPES and 1 <= len(result.ticket_id) <= 128
        assert result.priority is None or (
            result.type == "ticket.created" and result.priority in PRIORITIES
        )
        assert (result.author is not None) == (result.type == "ticket.replied")
        assert result.author is None or result.author in AUTHORS
    else:
        assert type(result) is SurveyResponse
        assert result.type in SURVEY_TYPES and type(result.score) is int
        low, high = SCORE_RANGES[result.type]
        assert low <= result.score <= high
        assert result.ticket_id is None or 1 <= len(result.ticket_id) <= 128
        assert result.comment is None or len(result.comment) <= 2000
        assert result.respondent_id is None or len(result.respondent_id) <= 256


@FUZZ
@given(st.binary(max_size=400), sources)
def test_arbitrary_bytes(raw: bytes, source: str) -> None:
    assert_contract(raw, source)


@FUZZ
@given(json_values, sources)
def test_arbitrary_json_values(value: Any, source: str) -> None:
    assert_contract(encode(value), source)


@FUZZ
@given(near_valid_records())
def test_mutated_valid_events(record: tuple[dict[str, Any], str]) -> None:
    doc, source = record
    assert_contract(encode(doc), source)


@FUZZ
@given(
    near_valid_records(),
    st.lists(
        st.sampled_from(["channel", "team", "region", "type", "score"]), max_size=3, unique=True
    ),
)
def test_mutated_events_with_other_dimensions(
    record: tuple[dict[str, Any], str], dims: list[str]
) -> None:
    doc, source = record
    assert_contract(encode(doc), source, tuple(dims))


@st.composite
def byte_edits(draw: st.DrawFn) -> bytes:
    """A corpus record with a few bytes replaced, inserted or deleted:
    almost-JSON, broken escapes, cut multi-byte characters."""
    seed = draw(st.sampled_from([c.raw for c in VALID + INVALID if c.raw and len(c.raw) < 3000]))
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        byte = draw(st.sampled_from([*b'{}[]",:\\0123456789.eE+-tfn \n', 0x80, 0xC3, 0xE2, 0xFF]))
        action = draw(st.sampled_from(["insert", "replace", "delete"]))
        if action == "insert" or pos == len(data):
            data.insert(pos, byte)
        elif action == "replace":
            data[pos] = byte
        else:
            del data[pos]
    return bytes(data)


@FUZZ
@given(byte_edits(), sources)
def test_byte_edits_of_the_corpus(raw: bytes, source: str) -> None:
    assert_contract(raw, source)


MARKER = "Mary Major, mary.major@example.com, 4111 1111 1111 1111"  # 55 characters


@FUZZ
@given(
    st.sampled_from(sorted(BASES)),
    st.sampled_from(
        [
            "event_id",
            "type",
            "occurred_at",
            "ticket_id",
            "score",
            "author",
            "priority",
            "comment",
            "respondent_id",
            "channel",
            "team",
            "other",
        ]
    ),
    sources,
)
def test_a_rejection_never_echoes_a_whole_value(base: str, field: str, source: str) -> None:
    doc = {**BASES[base], field: MARKER}
    result = decode(orjson.dumps(doc), source, NOW_US)  # type: ignore[arg-type]
    if isinstance(result, Rejection):
        assert MARKER[:41] not in result.detail, result.detail


def _iso(moment: datetime, digits: int, extra: str) -> str:
    """RFC 3339 text of an aware datetime: ``digits`` (0-6) fractional digits,
    then ``extra`` further digits below the microsecond."""
    offset = moment.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    zone = f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    frac = f"{moment.microsecond:06d}"[:digits] + (extra if digits == 6 else "")
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
        + ("." + frac if frac else "")
        + zone
    )


@settings(max_examples=1000, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(-(23 * 60 + 59), 23 * 60 + 59),
    st.integers(0, 6),
    st.text(alphabet="0123456789", max_size=6),
)
def test_timestamps_match_datetime_to_the_microsecond(
    naive: datetime, offset_min: int, digits: int, extra: str
) -> None:
    moment = naive.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    text = _iso(moment, digits, extra)
    kept = int(f"{moment.microsecond:06d}"[:digits].ljust(6, "0"))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    want = (moment.replace(microsecond=kept) - epoch) // timedelta(microseconds=1)
    assert parse_timestamp_us(text) == want, text
    assert parse_timestamp_us(text.replace("T", "t")) == want
    if offset_min == 0:
        assert parse_timestamp_us(text[:-6] + "Z") == want
