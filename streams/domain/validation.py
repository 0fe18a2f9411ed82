"""Where an input record is judged: bytes in, a typed event or one reason out.

Checks run in the contract's order so every record gets exactly one reason:
``too_large`` (before decoding) -> ``malformed`` -> ``unknown_type`` /
``schema`` -> ``out_of_range`` -> ``future_timestamp``. Pure: the caller passes
the processing time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
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

_DIMENSION = re.compile(r"[a-z0-9][a-z0-9 _./:-]{0,63}")
# RFC 3339 date-time with an explicit offset; 'T'/'t' or ' ' separator is not
# allowed (RFC 3339 permits a space only "for readability" in prose).
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WHITESPACE = " \t\r\n"


class _InvalidError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _show(value: object) -> str:
    """A short, safe rendering of a value for error details (never the payload)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_timestamp_us(text: str) -> int | None:
    """RFC 3339 with an explicit offset -> integer microseconds, else None.

    More than six fractional digits are truncated (microsecond resolution).
    """
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, frac, offset = match.groups()
    try:
        if offset in ("Z", "z"):
            tz = UTC
        else:
            sign = 1 if offset[0] == "+" else -1
            oh, om = int(offset[1:3]), int(offset[4:6])
            if oh > 23 or om > 59:
                return None
            tz = timezone(sign * timedelta(hours=oh, minutes=om))
        # A leap second (:60) is accepted as the last microsecond of :59.
        sec = int(second)
        leap = sec == 60
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), 59 if leap else sec, tzinfo=tz
        )
    except ValueError:
        return None
    micros = int((frac or "0").ljust(6, "0")[:6])
    delta = moment - _EPOCH
    us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + micros
    return us + (999_999 - micros if leap else 0)


def _string(doc: dict[str, Any], field: str, *, required: bool, max_chars: int) -> str | None:
    value = doc.get(field)
    if value is None:
        if required:
            raise _InvalidError("schema", f"{field} is required")
        return None
    if not isinstance(value, str):
        raise _InvalidError("schema", f"{field} must be a string, got {type(value).__name__}")
    if required and not 1 <= len(value) <= max_chars:
        raise _InvalidError("schema", f"{field} must be 1-{max_chars} characters")
    if not required and len(value) > max_chars:
        raise _InvalidError("schema", f"{field} must be at most {max_chars} characters")
    return value


def normalise_dimension(value: str) -> str | None:
    """Trim and lower-case; None when the result breaks the pattern.

    Only ASCII input is admitted: str.lower() maps some non-ASCII letters
    (the Kelvin sign) to ASCII ones, which no JSON Schema pattern can mirror.
    """
    if not value.isascii():
        return None
    normal = value.strip(_WHITESPACE).lower()
    return normal if _DIMENSION.fullmatch(normal) else None


def _dims(doc: dict[str, Any], names: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        value = doc.get(name)
        if value is None:  # missing or null: the dimension is unknown
            continue
        if not isinstance(value, str):
            raise _InvalidError("schema", f"{name} must be a string, got {type(value).__name__}")
        normal = normalise_dimension(value)
        if normal is None:
            raise _InvalidError(
                "schema", f"{name} {_show(value)} does not match [a-z0-9][a-z0-9 _./:-]{{0,63}}"
            )
        out[name] = normal
    return out


def _check(
    raw: bytes | None,
    source: Source,
    now_us: int,
    dimensions: Sequence[str],
    max_bytes: int,
    future_tolerance_us: int,
) -> Event:
    if raw is None:
        raise _InvalidError("malformed", "the record has no value")
    if len(raw) > max_bytes:
        raise _InvalidError(
            "too_large", f"value is {len(raw)} bytes, over the {max_bytes} byte limit"
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson rejects invalid UTF-8 as a decode error too; say which.
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _InvalidError("malformed", "value is not valid UTF-8") from None
        raise _InvalidError("malformed", f"value is not JSON: {str(exc)[:80]}") from None
    if not isinstance(doc, dict):
        raise _InvalidError("malformed", f"value is a JSON {type(doc).__name__}, not an object")

    kind = doc.get("type")
    if kind is None:
        raise _InvalidError("schema", "type is required")
    if not isinstance(kind, str):
        raise _InvalidError("schema", f"type must be a string, got {type(kind).__name__}")
    allowed = TICKET_TYPES if source == "tickets" else SURVEY_TYPES
    if kind not in allowed:
        raise _InvalidError("unknown_type", f"type {_show(kind)} is not a {source} event type")

    event_id = _string(doc, "event_id", required=True, max_chars=MAX_ID_CHARS)
    occurred_raw = doc.get("occurred_at")
    if occurred_raw is None:
        raise _InvalidError("schema", "occurred_at is required")
    if not isinstance(occurred_raw, str):
        raise _InvalidError("schema", "occurred_at must be an RFC 3339 string")
    occurred_us = parse_timestamp_us(occurred_raw)
    if occurred_us is None:
        raise _InvalidError(
            "schema",
            f"occurred_at {_show(occurred_raw)} is not RFC 3339 with an offset (Z or +hh:mm)",
        )
    dims = _dims(doc, dimensions)
    assert event_id is not None

    event: Event
    if source == "tickets":
        ticket_id = _string(doc, "ticket_id", required=True, max_chars=MAX_ID_CHARS)
        assert ticket_id is not None
        priority = author = None
        if kind == "ticket.created":
            priority = doc.get("priority")
            if priority is not None and priority not in PRIORITIES:
                raise _InvalidError(
                    "schema", f"priority {_show(priority)} is not one of {', '.join(PRIORITIES)}"
                )
        elif kind == "ticket.replied":
            author = doc.get("author")
            if author is None:
                raise _InvalidError("schema", "author is required on ticket.replied")
            if author not in AUTHORS:
                raise _InvalidError(
                    "schema", f"author {_show(author)} is not one of {', '.join(AUTHORS)}"
                )
        event = TicketEvent(event_id, kind, occurred_us, ticket_id, dims, priority, author)
    else:
        score = doc.get("score")
        if score is None:
            raise _InvalidError("schema", "score is required")
        # bool is an int in Python; JSON true is not a score. Neither is 9.5.
        if isinstance(score, bool) or not isinstance(score, int):
            raise _InvalidError("schema", f"score must be a JSON integer, got {_show(score)}")
        ticket_id = _string(doc, "ticket_id", required=False, max_chars=MAX_ID_CHARS)
        if ticket_id == "":
            raise _InvalidError("schema", "ticket_id must be 1-128 characters")
        comment = _string(doc, "comment", required=False, max_chars=MAX_COMMENT_CHARS)
        respondent = _string(doc, "respondent_id", required=False, max_chars=MAX_RESPONDENT_CHARS)
        lo, hi = SCORE_RANGES[kind]
        if not lo <= score <= hi:
            raise _InvalidError("out_of_range", f"score {score} is outside {lo}-{hi} for {kind}")
        event = SurveyResponse(
            event_id, kind, occurred_us, score, dims, ticket_id, comment, respondent
        )

    if occurred_us > now_us + future_tolerance_us:
        ahead = (occurred_us - now_us) / 1e6
        raise _InvalidError(
            "future_timestamp", f"occurred_at is {ahead:.0f}s after the processing time"
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
    """Validate one input record of ``source`` at processing time ``now_us``."""
    try:
        return _check(raw, source, now_us, dimensions, max_bytes, future_tolerance_us)
    except _InvalidError as inv:
        return Rejection(inv.reason, inv.detail)
    except RecursionError:
        return Rejection("malformed", "value nests too deeply")


def is_late(occurred_us: int, now_us: int, longest_window_us: int) -> bool:
    """Valid but older than the longest window: outside every window."""
    return occurred_us <= now_us - longest_window_us
