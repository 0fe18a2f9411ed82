"""Validation: one clear reason per bad record, the schemas say the same thing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.model import REASONS, Rejection, SurveyResponse, TicketEvent
from streams.domain.validation import decode, is_late, parse_timestamp_us
from streams.validate_file import run

S = 1_000_000
NOW = 1_800_000_000 * S  # 2027-01-15T08:00:00Z
T = "2027-01-15T07:59:00Z"
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
TICKET_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((SCHEMAS / "ticket-event.schema.json").read_text())
)
SURVEY_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((SCHEMAS / "survey-response.schema.json").read_text())
)

NPS = {"event_id": "e1", "type": "survey.nps", "occurred_at": T, "score": 9}
CREATED = {"event_id": "e2", "type": "ticket.created", "occurred_at": T, "ticket_id": "t1"}
REPLY = {
    "event_id": "e3",
    "type": "ticket.replied",
    "occurred_at": T,
    "ticket_id": "t1",
    "author": "agent",
}


def j(doc: Any) -> bytes:
    return orjson.dumps(doc)


INVALID: list[tuple[str, str, bytes | None, str]] = [
    # (case, source, raw, reason)
    ("none", "surveys", None, "malformed"),
    ("empty", "surveys", b"", "malformed"),
    ("invalid utf-8", "surveys", b'{"a": "\xff\xfe"}', "malformed"),
    ("not json", "tickets", b"{event_id: 1}", "malformed"),
    ("null", "surveys", b"null", "malformed"),
    ("array", "surveys", b"[1, 2]", "malformed"),
    ("number", "tickets", b"42", "malformed"),
    ("string", "tickets", b'"ticket.created"', "malformed"),
    ("70 KB", "surveys", j({**NPS, "comment": "x" * 70_000}), "too_large"),
    ("just over 64 KiB", "tickets", b" " * 65_537, "too_large"),
    ("unknown type", "surveys", j({**NPS, "type": "survey.sentiment"}), "unknown_type"),
    ("survey on tickets", "tickets", j(NPS), "unknown_type"),
    ("ticket on surveys", "surveys", j(CREATED), "unknown_type"),
    ("type missing", "surveys", j({k: v for k, v in NPS.items() if k != "type"}), "schema"),
    ("type not a string", "surveys", j({**NPS, "type": 3}), "schema"),
    ("score true", "surveys", j({**NPS, "score": True}), "schema"),
    ("score 9.5", "surveys", j({**NPS, "score": 9.5}), "schema"),
    (
        "score 9.0",
        "surveys",
        b'{"event_id":"e","type":"survey.nps","occurred_at":"' + T.encode() + b'","score":9.0}',
        "schema",
    ),
    ("score string", "surveys", j({**NPS, "score": "9"}), "schema"),
    ("score missing", "surveys", j({k: v for k, v in NPS.items() if k != "score"}), "schema"),
    ("naive timestamp", "surveys", j({**NPS, "occurred_at": "2027-01-15T07:59:00"}), "schema"),
    ("date only", "surveys", j({**NPS, "occurred_at": "2027-01-15"}), "schema"),
    ("30 February", "surveys", j({**NPS, "occurred_at": "2027-02-30T10:00:00Z"}), "schema"),
    ("epoch number", "surveys", j({**NPS, "occurred_at": 1800000000}), "schema"),
    (
        "event_id missing",
        "tickets",
        j({k: v for k, v in CREATED.items() if k != "event_id"}),
        "schema",
    ),
    ("event_id empty", "tickets", j({**CREATED, "event_id": ""}), "schema"),
    ("event_id 129", "tickets", j({**CREATED, "event_id": "x" * 129}), "schema"),
    ("event_id number", "tickets", j({**CREATED, "event_id": 7}), "schema"),
    (
        "ticket_id missing",
        "tickets",
        j({k: v for k, v in CREATED.items() if k != "ticket_id"}),
        "schema",
    ),
    ("author missing", "tickets", j({k: v for k, v in REPLY.items() if k != "author"}), "schema"),
    ("unknown author", "tickets", j({**REPLY, "author": "manager"}), "schema"),
    ("unknown priority", "tickets", j({**CREATED, "priority": "p1"}), "schema"),
    ("bad dimension", "tickets", j({**CREATED, "channel": "Bad!Value"}), "schema"),
    ("65-char dimension", "tickets", j({**CREATED, "team": "a" * 65}), "schema"),
    ("dimension number", "tickets", j({**CREATED, "team": 5}), "schema"),
    ("non-ascii dimension", "surveys", j({**NPS, "team": "équipe"}), "schema"),
    ("comment too long", "surveys", j({**NPS, "comment": "c" * 2001}), "schema"),
    ("nps 11", "surveys", j({**NPS, "score": 11}), "out_of_range"),
    ("nps -1", "surveys", j({**NPS, "score": -1}), "out_of_range"),
    ("csat 0", "surveys", j({**NPS, "type": "survey.csat", "score": 0}), "out_of_range"),
    ("csat 6", "surveys", j({**NPS, "type": "survey.csat", "score": 6}), "out_of_range"),
    ("ces 8", "surveys", j({**NPS, "type": "survey.ces", "score": 8}), "out_of_range"),
    (
        "six minutes ahead",
        "surveys",
        j({**NPS, "occurred_at": "2027-01-15T08:06:00Z"}),
        "future_timestamp",
    ),
    (
        "a day ahead, with offset",
        "tickets",
        j({**CREATED, "occurred_at": "2027-01-16T10:00:00+02:00"}),
        "future_timestamp",
    ),
]


@pytest.mark.parametrize(("case", "source", "raw", "reason"), INVALID, ids=[c[0] for c in INVALID])
def test_each_invalid_event_gets_its_reason(
    case: str, source: str, raw: bytes | None, reason: str
) -> None:
    result = decode(raw, source, NOW)  # type: ignore[arg-type]
    assert isinstance(result, Rejection), case
    assert result.reason == reason, (case, result)
    assert result.detail and len(result.detail) < 300
    assert "x" * 50 not in result.detail  # never the payload


def test_every_reason_but_processing_error_is_covered() -> None:
    assert {c[3] for c in INVALID} == set(REASONS) - {"processing_error"}


def test_valid_events_are_normalised() -> None:
    ev = decode(
        j(
            {
                **CREATED,
                "channel": "  Chat ",
                "team": "Billing/EU",
                "priority": "high",
                "extra": [1],
            }
        ),
        "tickets",
        NOW,
    )
    assert isinstance(ev, TicketEvent)
    assert ev.dims == {"channel": "chat", "team": "billing/eu"} and ev.priority == "high"
    ev2 = decode(
        j({**NPS, "occurred_at": "2027-01-15T09:58:59.123456789+02:00", "team": None}),
        "surveys",
        NOW,
    )
    assert isinstance(ev2, SurveyResponse)
    assert ev2.occurred_us == NOW - 61 * S + 123_456
    assert ev2.dims == {}  # null and missing both mean unknown
    assert decode(j({**NPS, "occurred_at": "2027-01-15T08:04:59Z"}), "surveys", NOW) is not None
    assert isinstance(
        decode(j({**NPS, "occurred_at": "2027-01-15T08:05:00Z"}), "surveys", NOW), SurveyResponse
    )


def test_timestamps() -> None:
    assert parse_timestamp_us("1970-01-01T00:00:00Z") == 0
    assert parse_timestamp_us("1970-01-01T01:00:00+01:00") == 0
    assert parse_timestamp_us("1970-01-01T00:00:00.5z") == 500_000
    assert parse_timestamp_us("1970-01-01T00:00:00") is None
    assert parse_timestamp_us("1970-01-01 00:00:00Z") is None
    assert parse_timestamp_us("1970-01-01T00:00:00+24:00") is None
    assert is_late(NOW - 31 * 86400 * S, NOW, 30 * 86400 * S)
    assert not is_late(NOW - 29 * 86400 * S, NOW, 30 * 86400 * S)


# -- fuzzing -----------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
VALID_DOCS = [
    NPS,
    CREATED,
    REPLY,
    {"event_id": "e4", "type": "ticket.resolved", "occurred_at": T, "ticket_id": "t1", "team": "a"},
    {
        "event_id": "e5",
        "type": "survey.ces",
        "occurred_at": T,
        "score": 4,
        "ticket_id": "t",
        "comment": "ok",
    },
]


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    doc = dict(draw(st.sampled_from(VALID_DOCS)))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "set", "add", "dimension", "field"]))
        if action == "dimension":
            # Dimension values: near-valid strings and arbitrary JSON.
            doc[draw(st.sampled_from(["channel", "team"]))] = draw(
                st.text(alphabet=" \t\nabcXYZ09_./:-!é\u212a", max_size=70) | json_values
            )
        elif action == "field":
            key = draw(
                st.sampled_from(
                    [
                        "score",
                        "author",
                        "priority",
                        "event_id",
                        "ticket_id",
                        "occurred_at",
                        "comment",
                        "type",
                    ]
                )
            )
            doc[key] = draw(
                st.integers(-2, 12)
                | st.sampled_from(
                    [
                        "agent",
                        "bot",
                        "low",
                        "x",
                        "",
                        "survey.csat",
                        "ticket.replied",
                        T,
                        "2027-01-15T07:59:00",
                        "2027-01-15T07:59:00+02:00\n",
                    ]
                )
                | json_values
            )
        elif action == "drop" and doc:
            doc.pop(draw(st.sampled_from(sorted(doc))))
        elif action == "set" and doc:
            doc[draw(st.sampled_from(sorted(doc)))] = draw(json_values)
        else:
            doc[draw(st.text(max_size=12))] = draw(json_values)
    return doc


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["tickets", "surveys"]))
def test_arbitrary_bytes_never_raise(raw: bytes, source: str) -> None:
    result = decode(raw, source, NOW)  # type: ignore[arg-type]
    assert isinstance(result, TicketEvent | SurveyResponse | Rejection)
    if isinstance(result, Rejection):
        assert result.reason in REASONS and result.reason != "processing_error"


@settings(max_examples=600, deadline=None)
@given(mutated(), st.sampled_from(["tickets", "surveys"]))
def test_mutated_events_are_accepted_or_given_one_reason(doc: dict[str, Any], source: str) -> None:
    try:
        raw = orjson.dumps(doc)
    except TypeError:
        return  # not representable as JSON (e.g. integers beyond 64 bits)
    result = decode(raw, source, NOW)  # type: ignore[arg-type]
    assert isinstance(result, TicketEvent | SurveyResponse | Rejection)
    if isinstance(result, Rejection):
        assert result.reason in REASONS and result.reason != "processing_error"


# -- the schemas say the same thing ---------------------------------------------------


def schema_accepts(doc: Any, source: str) -> bool:
    validator = TICKET_SCHEMA if source == "tickets" else SURVEY_SCHEMA
    return validator.is_valid(doc)


def comparable(doc: Any) -> bool:
    """What a JSON Schema can judge: not the size, not the clock, not 9.0 vs 9,
    not calendar validity beyond the pattern (the 'date-time' format's job)."""
    if not isinstance(doc, dict):
        return True
    if isinstance(doc.get("score"), float):
        return False
    occurred = doc.get("occurred_at")
    if isinstance(occurred, str) and parse_timestamp_us(occurred) is None:
        import re

        pattern = TICKET_SCHEMA.schema["$defs"]["timestamp"]["pattern"]
        if re.search(pattern, occurred):
            return False  # pattern-valid but not a real date (30 February)
    return True


def test_schemas_and_validator_agree_on_the_corpus() -> None:
    for case, source, raw, reason in INVALID:
        if reason in ("too_large", "future_timestamp") or raw is None:
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not comparable(doc):
            continue
        assert not schema_accepts(doc, source), f"schema accepts invalid case {case!r}"
    for doc in VALID_DOCS:
        source = "surveys" if doc["type"].startswith("survey.") else "tickets"
        assert schema_accepts(doc, source)
        assert not isinstance(decode(j(doc), source, NOW), Rejection)  # type: ignore[arg-type]


@settings(max_examples=600, deadline=None)
@given(mutated(), st.sampled_from(["tickets", "surveys"]))
def test_schemas_and_validator_agree_on_near_valid_events(doc: dict[str, Any], source: str) -> None:
    try:
        raw = orjson.dumps(doc)
    except TypeError:
        return
    if len(raw) > 65_536 or not comparable(doc):
        return
    result = decode(raw, source, NOW)  # type: ignore[arg-type]
    if isinstance(result, Rejection) and result.reason == "future_timestamp":
        return
    assert schema_accepts(orjson.loads(raw), source) == (not isinstance(result, Rejection)), (
        doc,
        result,
    )


def test_validate_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b"\n".join([j(NPS), b"", b"not json", j({**NPS, "score": 12}), j(CREATED)]) + b"\n"
    )
    out = io.StringIO()
    assert run(str(path), out, NOW) == 1
    text = out.getvalue()
    assert "line 3: malformed:" in text and "line 4: out_of_range:" in text
    assert text.strip().endswith("2 valid, 2 invalid (malformed 1, out_of_range 1)")
    path.write_bytes(j(NPS) + b"\n")
    assert run(str(path), io.StringIO(), NOW) == 0
