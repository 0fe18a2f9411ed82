"""Where an input record is judged: bytes in, a typed event or one reason out.

Every record gets exactly one reason, so the checks run in the contract's
order and the first failure wins:

1. ``too_large``: the value is over ``max_bytes``; checked on the raw bytes,
   before any decoding, so an oversized record costs nothing to refuse.
2. ``malformed``: no value, not UTF-8, not JSON, or JSON that is not an object.
3. ``schema`` when ``type`` is missing or not a string; ``unknown_type`` when it
   is a string that is not a type of this topic (a survey type on the tickets
   topic included).
4. ``schema``: required fields, JSON types, lengths, timestamps, dimension
   values, ``author`` and ``priority``.
5. ``out_of_range``: a well-typed ``score`` outside its type's scale.
6. ``future_timestamp``: ``occurred_at`` more than the tolerance after ``now``.

Rules the contract leaves open, decided here and mirrored by ``schemas/``:

* Timestamps: RFC 3339 ``date-time`` with an explicit offset (``Z``, ``z`` or
  ``+hh:mm``/``-hh:mm``), a ``T`` or ``t`` separator, ASCII digits only and a
  real calendar date (proleptic Gregorian, years 0000-9999). Any number of
  fractional digits is accepted; digits past the sixth are truncated (never
  rounded), because times are integer microseconds. A leap second (``:60``)
  is read as the last microsecond of ``:59``, so ordering is kept.
* Dimension values: surrounding ASCII space, tab, CR and LF are trimmed, then
  the value is lower-cased and must fully match ``DIMENSION_PATTERN``. Only
  ASCII values are accepted: ``str.lower`` maps some non-ASCII letters (the
  Kelvin sign) onto ASCII ones, which no JSON Schema pattern could mirror.
  A dimension that is ``null`` counts as missing.
* ``null`` is the same as absent for every optional field (``priority``,
  ``ticket_id`` on surveys, ``comment``, ``respondent_id``, dimensions).
* ``respondent_id`` is a string of at most 256 characters (room for an e-mail
  address); an empty ``ticket_id`` on a survey is a ``schema`` error, as the
  contract's 1-128 rule applies whenever it is present.
* A score must be written as a JSON integer: ``9.0``, ``1e1``, ``true`` and
  ``"9"`` are ``schema`` errors. An integer literal too large for 64 bits is
  still an integer, so it is ``out_of_range``.
* Numbers beyond the range of a double, strings with lone surrogate escapes,
  a byte order mark and nesting deeper than 1024 are ``malformed``: limits a
  JSON implementation may set (RFC 8259, sections 8 and 9).

Pure: no clock is read (the caller passes the processing time), nothing is
imported from the pipeline. ``decode`` never raises on any input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import orjson

from streams.domain.model import (
    AUTHORS,
    DEFAULT_DIMENSIONS,
    PRIORITIES,
    SCORE_RANGES,
    SURVEY_TYPES,
    TICKET_TYPES,
    Event,
    Rejection,
    Source,
    SurveyResponse,
    TicketEvent,
)

MAX_BYTES = 65_536
FUTURE_TOLERANCE_US = 300_000_000
MAX_ID_CHARS = 128
MAX_COMMENT_CHARS = 2_000
MAX_RESPONDENT_CHARS = 256
#: What a dimension value must fully match after trimming and lower-casing.
DIMENSION_PATTERN = "[a-z0-9][a-z0-9 _./:-]{0,63}"
#: The characters trimmed from both ends of a dimension value.
DIMENSION_TRIM = " \t\r\n"
#: Longest echo of an input value in a rejection detail (it may be personal data).
MAX_ECHO_CHARS = 40

_MAX_SHOWN = MAX_ECHO_CHARS + 2  # the quotes of a rendered string
_US_PER_S = 1_000_000
_DIMENSION = re.compile(DIMENSION_PATTERN)
# Field ranges (month, day, hour, offset) are checked in code after the match;
# [0-9] and not \d, which would also match non-ASCII digits.
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_TYPES: dict[str, tuple[str, ...]] = {"tickets": TICKET_TYPES, "surveys": SURVEY_TYPES}


class _InvalidError(Exception):
    """Raised inside the checks; ``decode`` turns it into a ``Rejection``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type: event sources think in JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: object) -> str:
    """A short rendering of an input value for a detail.

    Details end up in logs and dead-letter headers: a string shows at most
    ``MAX_ECHO_CHARS`` of its characters, escaped (so a control character
    cannot forge a log line) and capped again after escaping; containers are
    named, never rendered.
    """
    if isinstance(value, str):
        text = repr(value[:MAX_ECHO_CHARS])
        if len(value) > MAX_ECHO_CHARS or len(text) > _MAX_SHOWN:
            return text[:_MAX_SHOWN] + "..."
        return text
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "..."
    return f"an {_json_type(value)}"


def _seconds(us: int) -> str:
    """Microseconds as exact decimal seconds: ``300``, ``300.000001``."""
    whole, frac = divmod(abs(us), _US_PER_S)
    text = str(whole) if frac == 0 else f"{whole}.{frac:06d}".rstrip("0")
    return "-" + text if us < 0 else text


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date.

    Integer arithmetic (H. Hinnant's algorithm) instead of ``datetime``: exact
    for years 0000-9999, which ``datetime`` cannot represent, and faster.
    """
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (9 if month <= 2 else -3)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def parse_timestamp_us(text: str) -> int | None:
    """RFC 3339 ``date-time`` with an explicit offset -> integer microseconds
    since the epoch; None when ``text`` is not one (see the module docstring
    for the exact rules: truncation past microseconds, leap seconds)."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    year_s, month_s, day_s, hour_s, minute_s, second_s, frac, sign, off_h, off_m = match.groups()
    year, month, day = int(year_s), int(month_s), int(day_s)
    hour, minute, second = int(hour_s), int(minute_s), int(second_s)
    if not 1 <= month <= 12 or day < 1 or hour > 23 or minute > 59 or second > 60:
        return None
    if day > _DAYS_IN_MONTH[month] and not (month == 2 and day == 29 and _is_leap(year)):
        return None
    offset_s = 0
    if sign is not None:
        oh, om = int(off_h), int(off_m)
        if oh > 23 or om > 59:
            return None
        offset_s = (oh * 3600 + om * 60) * (1 if sign == "+" else -1)
    if second == 60:  # leap second: the last representable instant of :59
        second, micros = 59, 999_999
    elif frac is None:
        micros = 0
    else:
        micros = int(frac[:6].ljust(6, "0"))
    seconds = _days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
    return (seconds - offset_s) * _US_PER_S + micros


def normalise_dimension(value: str) -> str | None:
    """The label value of a dimension string: trimmed and lower-cased; None
    when that breaks the contract's pattern (or the value is not ASCII)."""
    if not value.isascii():
        return None
    normal = value.strip(DIMENSION_TRIM).lower()
    return normal if _DIMENSION.fullmatch(normal) else None


def is_late(occurred_us: int, now_us: int, longest_window_us: int) -> bool:
    """Valid but at or past the old edge of the longest window at ``now_us``.

    A window holds ``now - W < placed_at <= now``, so an event placed exactly
    at ``now - W`` is already outside every window: late.
    """
    return occurred_us <= now_us - longest_window_us


def _text(doc: dict[str, Any], field: str, max_chars: int, *, required: bool) -> str | None:
    """A string field of at most ``max_chars`` characters; absent or null is
    None, or a ``schema`` error when the field is required."""
    value = doc.get(field)
    if value is None:
        if required:
            raise _InvalidError("schema", f"{field} is required")
        return None
    if not isinstance(value, str):
        raise _InvalidError("schema", f"{field} must be a string, got {_json_type(value)}")
    if len(value) > max_chars:
        raise _InvalidError(
            "schema", f"{field} must be at most {max_chars} characters, got {len(value)}"
        )
    return value


def _identifier(doc: dict[str, Any], field: str, *, required: bool) -> str | None:
    """An id field: a string of 1-128 characters whenever it is present."""
    value = _text(doc, field, MAX_ID_CHARS, required=required)
    if value == "":
        raise _InvalidError("schema", f"{field} must be 1-{MAX_ID_CHARS} characters, got 0")
    return value


def _dims(doc: dict[str, Any], names: Sequence[str]) -> dict[str, str]:
    """The normalised dimensions present in the event (null = missing)."""
    out: dict[str, str] = {}
    for name in names:
        value = doc.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _InvalidError("schema", f"{name} must be a string, got {_json_type(value)}")
        normal = normalise_dimension(value)
        if normal is None:
            raise _InvalidError(
                "schema",
                f"{name} must match {DIMENSION_PATTERN} after trimming and lower-casing,"
                f" got {_show(value)}",
            )
        out[name] = normal
    return out


def _score(doc: dict[str, Any], raw: bytes) -> int:
    """The score as written: a JSON integer, never a boolean, fraction or string."""
    score = doc.get("score")
    if score is None:
        raise _InvalidError("schema", "score is required")
    if isinstance(score, int) and not isinstance(score, bool):
        return score
    if isinstance(score, float) and score.is_integer():
        # orjson reads integers beyond 64 bits as floats; the standard parser
        # keeps the literal's kind. Only this rare path pays for it.
        try:
            literal = json.loads(raw).get("score")
        except (ValueError, RecursionError):
            literal = None
        if isinstance(literal, int) and not isinstance(literal, bool):
            return literal
    raise _InvalidError("schema", f"score must be a JSON integer, got {_show(score)}")


def _load(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    """Size check on the bytes, then decode to a JSON object."""
    if raw is None:
        raise _InvalidError("malformed", "the record has no value")
    if len(raw) > max_bytes:
        raise _InvalidError(
            "too_large", f"value is {len(raw)} bytes, over the {max_bytes} byte limit"
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if not raw:
            raise _InvalidError("malformed", "value is empty") from None
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise _InvalidError(
                "malformed", f"value is not valid UTF-8 (byte {bad.start})"
            ) from None
        # orjson's message names the problem and position, never the content.
        raise _InvalidError("malformed", f"value is not JSON: {exc}"[:120]) from None
    if not isinstance(doc, dict):
        raise _InvalidError("malformed", f"value is a JSON {_json_type(doc)}, not an object")
    return doc


def _check(
    raw: bytes | None,
    source: Source,
    now_us: int,
    dimensions: Sequence[str],
    max_bytes: int,
    future_tolerance_us: int,
) -> Event:
    """All checks in contract order; raises ``_InvalidError`` at the first failure."""
    doc = _load(raw, max_bytes)

    kind = doc.get("type")
    if kind is None:
        raise _InvalidError("schema", "type is required")
    if not isinstance(kind, str):
        raise _InvalidError("schema", f"type must be a string, got {_json_type(kind)}")
    if kind not in _TYPES[source]:
        raise _InvalidError(
            "unknown_type", f"type {_show(kind)} is not a type of the {source} topic"
        )

    event_id = _identifier(doc, "event_id", required=True)
    assert event_id is not None
    occurred = doc.get("occurred_at")
    if occurred is None:
        raise _InvalidError("schema", "occurred_at is required")
    if not isinstance(occurred, str):
        raise _InvalidError("schema", f"occurred_at must be a string, got {_json_type(occurred)}")
    occurred_us = parse_timestamp_us(occurred)
    if occurred_us is None:
        raise _InvalidError(
            "schema",
            "occurred_at must be an RFC 3339 date-time with an offset (Z or +hh:mm),"
            f" got {_show(occurred)}",
        )
    dims = _dims(doc, dimensions)

    event: Event
    if source == "tickets":
        ticket_id = _identifier(doc, "ticket_id", required=True)
        assert ticket_id is not None
        priority: str | None = None
        author: str | None = None
        if kind == "ticket.created":
            value = doc.get("priority")
            if value is not None:
                if value not in PRIORITIES:
                    raise _InvalidError(
                        "schema",
                        f"priority must be one of {', '.join(PRIORITIES)}, got {_show(value)}",
                    )
                priority = value
        elif kind == "ticket.replied":
            value = doc.get("author")
            if value is None:
                raise _InvalidError("schema", "author is required on ticket.replied")
            if value not in AUTHORS:
                raise _InvalidError(
                    "schema", f"author must be one of {', '.join(AUTHORS)}, got {_show(value)}"
                )
            author = value
        event = TicketEvent(event_id, kind, occurred_us, ticket_id, dims, priority, author)
    else:
        score = _score(doc, raw or b"")
        ticket_ref = _identifier(doc, "ticket_id", required=False)
        comment = _text(doc, "comment", MAX_COMMENT_CHARS, required=False)
        respondent = _text(doc, "respondent_id", MAX_RESPONDENT_CHARS, required=False)
        low, high = SCORE_RANGES[kind]
        if not low <= score <= high:
            raise _InvalidError(
                "out_of_range", f"score {_show(score)} is outside {low}-{high} for {kind}"
            )
        event = SurveyResponse(
            event_id, kind, occurred_us, score, dims, ticket_ref, comment, respondent
        )

    if occurred_us - now_us > future_tolerance_us:
        raise _InvalidError(
            "future_timestamp",
            f"occurred_at is {_seconds(occurred_us - now_us)} s after the processing time"
            f" (tolerance {_seconds(future_tolerance_us)} s)",
        )
    return event


def decode(
    raw: bytes | None,
    source: Source,
    now_us: int,
    *,
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    max_bytes: int = MAX_BYTES,
    future_tolerance_us: int = FUTURE_TOLERANCE_US,
) -> Event | Rejection:
    """Judge one input record of ``source`` at processing time ``now_us``.

    Returns the typed event, or a ``Rejection`` whose reason is one of the
    contract's (never ``processing_error``, which is the pipeline's) and whose
    detail names the field without echoing the payload. Never raises: a bad
    record must become a dead letter, not stop the stream.
    """
    try:
        return _check(raw, source, now_us, dimensions, max_bytes, future_tolerance_us)
    except _InvalidError as invalid:
        return Rejection(invalid.reason, invalid.detail)
