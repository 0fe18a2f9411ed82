"""Validation: every bad record gets exactly one reason, the right one, and a
detail that names the field without echoing the payload; valid records come
out normalised and exact. Also the offline file validator."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from streams.domain.model import (
    REASONS,
    Rejection,
    SurveyResponse,
    TicketEvent,
)
from streams.domain.validation import (
    DIMENSION_PATTERN,
    decode,
    is_late,
    normalise_dimension,
    parse_timestamp_us,
)
from streams.validate_file import run, summary, topic_of
from tests.domain.corpus import BASES, INVALID, NOW_US, VALID, Case

S = 1_000_000
NOW = NOW_US  # 2027-01-15T08:00:00Z


def j(doc: object) -> bytes:
    return orjson.dumps(doc)


def echoes_payload(detail: str, raw: bytes | None) -> bool:
    """True when the detail repeats more than 40 consecutive characters of the record."""
    if not raw:
        return False
    text = raw.decode("utf-8", errors="replace")
    return any(detail[i : i + 41] in text for i in range(max(0, len(detail) - 40)))


# -- the corpus ------------------------------------------------------------------------


@pytest.mark.parametrize("c", INVALID, ids=[c.case for c in INVALID])
def test_each_invalid_record_gets_its_reason(c: Case) -> None:
    result = decode(c.raw, c.source, NOW)  # type: ignore[arg-type]
    assert isinstance(result, Rejection), c.case
    assert result.reason == c.reason, (c.case, result)
    assert result.detail and len(result.detail) <= 160, result.detail
    assert "\n" not in result.detail  # one log line, one header value
    assert not echoes_payload(result.detail, c.raw), result.detail


def test_the_corpus_covers_every_reason_but_processing_error() -> None:
    assert {c.reason for c in INVALID} == set(REASONS) - {"processing_error"}


@pytest.mark.parametrize("c", VALID, ids=[c.case for c in VALID])
def test_each_valid_record_is_decoded_exactly(c: Case) -> None:
    event = decode(c.raw, c.source, NOW)  # type: ignore[arg-type]
    assert isinstance(event, TicketEvent if c.source == "tickets" else SurveyResponse), event
    for field, want in c.expect.items():
        assert getattr(event, field) == want, (c.case, field)


def test_the_brief_cases_are_in_the_corpus() -> None:
    """The cases every implementation must get right are named in the corpus."""
    names = {c.case for c in INVALID} | {c.case for c in VALID}
    for must in [
        "score true",
        "score 9.5",
        "score string",
        "naive timestamp",
        "70 KB payload",
        "invalid UTF-8 inside a string",
        "null",
        "array",
        "number",
        "empty bytes",
        "no value (None)",
        "event_id missing",
        "event_id of 129 characters",
        "survey type on the tickets topic",
        "unknown author",
        "unknown priority",
        "bad dimension",
        "dimension of 65 characters",
        "dimension a number",
        "nps 11",
        "csat 6",
        "ces 8",
        "six minutes in the future",
        "offset +02:00",
        "Z",
        "fraction of nine digits is truncated",
        "upper-case padded dimensions are normalised",
        "extra fields are ignored",
        "missing dimensions are omitted",
    ]:
        assert must in names, must


# -- details ---------------------------------------------------------------------------


def test_details_name_the_field_and_the_json_type() -> None:
    nps = BASES["nps"]
    cases = {
        "score must be a JSON integer, got true": {**nps, "score": True},
        "score must be a JSON integer, got '9'": {**nps, "score": "9"},
        "team must be a string, got integer": {**nps, "team": 5},
        "event_id must be a string, got array": {**nps, "event_id": ["e"]},
        "comment must be at most 2000 characters, got 2001": {**nps, "comment": "c" * 2001},
        "score 11 is outside 0-10 for survey.nps": {**nps, "score": 11},
    }
    for want, doc in cases.items():
        result = decode(j(doc), "surveys", NOW)
        assert isinstance(result, Rejection) and result.detail == want, result


def test_an_echoed_value_is_cut_to_40_characters() -> None:
    secret = "Jane Doe, +44 20 7946 0958, 221B Baker Street, London"
    result = decode(j({**BASES["created"], "channel": secret}), "tickets", NOW)
    assert isinstance(result, Rejection) and result.reason == "schema"
    assert secret[:40] in result.detail and secret[:41] not in result.detail
    result = decode(j({**BASES["created"], "type": secret}), "tickets", NOW)
    assert isinstance(result, Rejection) and result.reason == "unknown_type"
    assert secret[:41] not in result.detail


def test_containers_are_named_not_rendered() -> None:
    big = {"a": ["x" * 30] * 100}
    result = decode(j({**BASES["created"], "priority": big}), "tickets", NOW)
    assert isinstance(result, Rejection) and result.reason == "schema"
    assert "an object" in result.detail and "xxx" not in result.detail


def test_malformed_details_say_what_is_wrong() -> None:
    def detail(raw: bytes | None) -> str:
        result = decode(raw, "tickets", NOW)
        assert isinstance(result, Rejection) and result.reason == "malformed"
        return result.detail

    assert detail(None) == "the record has no value"
    assert detail(b"") == "value is empty"
    assert "UTF-8" in detail(b'{"a": "\xc3\x28"}')
    assert "not JSON" in detail(b"{")
    assert detail(b"[]") == "value is a JSON array, not an object"
    assert detail(b'"x"') == "value is a JSON string, not an object"


# -- order of the checks ---------------------------------------------------------------


def test_size_is_checked_before_decoding() -> None:
    raw = b"\xff" * 65_537  # not UTF-8 either
    result = decode(raw, "surveys", NOW)
    assert isinstance(result, Rejection) and result.reason == "too_large"
    assert "65537 bytes" in result.detail


def test_none_is_malformed_whatever_the_limit() -> None:
    result = decode(None, "tickets", NOW, max_bytes=0)
    assert isinstance(result, Rejection) and result.reason == "malformed"


def test_type_decides_before_the_other_fields() -> None:
    # Every other field is wrong too; the type problem is reported.
    doc = {"type": "survey.nps", "score": "x", "occurred_at": 1, "channel": "!"}
    result = decode(j(doc), "tickets", NOW)
    assert isinstance(result, Rejection) and result.reason == "unknown_type"
    result = decode(j({**doc, "type": 7}), "tickets", NOW)
    assert isinstance(result, Rejection) and result.reason == "schema" and "type" in result.detail


def test_future_is_checked_last() -> None:
    ahead = "2027-01-16T08:00:00Z"
    for doc, source, reason in [
        ({**BASES["nps"], "occurred_at": ahead, "score": 99}, "surveys", "out_of_range"),
        ({**BASES["nps"], "occurred_at": ahead, "team": "!"}, "surveys", "schema"),
        ({**BASES["replied"], "occurred_at": ahead, "author": "x"}, "tickets", "schema"),
        ({**BASES["replied"], "occurred_at": ahead}, "tickets", "future_timestamp"),
    ]:
        result = decode(j(doc), source, NOW)  # type: ignore[arg-type]
        assert isinstance(result, Rejection) and result.reason == reason, (doc, result)


# -- parameters ------------------------------------------------------------------------


def test_configured_dimensions_are_the_ones_checked() -> None:
    doc = {**BASES["created"], "channel": "Bad!Value", "region": " EU-West "}
    event = decode(j(doc), "tickets", NOW, dimensions=("team", "region"))
    assert isinstance(event, TicketEvent) and event.dims == {"region": "eu-west"}
    result = decode(j({**doc, "region": 3}), "tickets", NOW, dimensions=("region",))
    assert isinstance(result, Rejection) and result.reason == "schema"
    assert decode(j(doc), "tickets", NOW, dimensions=()) == TicketEvent(
        "e-1", "ticket.created", NOW - 60 * S, "T-1", {}
    )


def test_size_limit_and_future_tolerance_are_parameters() -> None:
    raw = j(BASES["nps"])
    assert isinstance(decode(raw, "surveys", NOW, max_bytes=len(raw)), SurveyResponse)
    result = decode(raw, "surveys", NOW, max_bytes=len(raw) - 1)
    assert isinstance(result, Rejection) and result.reason == "too_large"
    # The base event is 60 s before NOW: 61 s earlier it is 1 s in the future.
    assert isinstance(decode(raw, "surveys", NOW - 61 * S, future_tolerance_us=S), SurveyResponse)
    result = decode(raw, "surveys", NOW - 61 * S - 1, future_tolerance_us=S)
    assert isinstance(result, Rejection) and result.reason == "future_timestamp"
    assert result.detail == "occurred_at is 1.000001 s after the processing time (tolerance 1 s)"


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    shallow = b'{"x":' + b"[" * 500 + b"]" * 500 + b"," + j(BASES["nps"])[1:]
    assert isinstance(decode(shallow, "surveys", NOW), SurveyResponse)
    deep = b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"," + j(BASES["nps"])[1:]
    result = decode(deep, "surveys", NOW)
    assert isinstance(result, Rejection) and result.reason == "malformed"


def test_decoded_events_are_the_model_types() -> None:
    event = decode(j({**BASES["replied"], "channel": "Email"}), "tickets", NOW)
    assert event == TicketEvent(
        "e-2", "ticket.replied", NOW - 60 * S, "T-1", {"channel": "email"}, None, "agent"
    )
    doc = {**BASES["csat"], "ticket_id": "T-1", "comment": "ok", "respondent_id": "r-1"}
    assert decode(j(doc), "surveys", NOW) == SurveyResponse(
        "e-5", "survey.csat", NOW - 60 * S, 4, {}, "T-1", "ok", "r-1"
    )


# -- helpers ---------------------------------------------------------------------------


def test_timestamps() -> None:
    assert parse_timestamp_us("1970-01-01T00:00:00Z") == 0
    assert parse_timestamp_us("1970-01-01T01:00:00+01:00") == 0
    assert parse_timestamp_us("1969-12-31T19:00:00-05:00") == 0
    assert parse_timestamp_us("1970-01-01T00:00:00.5z") == 500_000
    assert parse_timestamp_us("1970-01-01T00:00:00.0000009Z") == 0  # truncated
    assert parse_timestamp_us("0000-01-01T00:00:00Z") == -62_167_219_200 * S
    assert parse_timestamp_us("9999-12-31T23:59:59.999999Z") == 253_402_300_799_999_999
    assert parse_timestamp_us("2400-02-29T00:00:00Z") is not None
    assert parse_timestamp_us("2100-02-29T00:00:00Z") is None
    assert parse_timestamp_us("1970-01-01T00:00:00") is None
    assert parse_timestamp_us("1970-01-01 00:00:00Z") is None
    assert parse_timestamp_us("1970-01-01T00:00:00+24:00") is None
    assert parse_timestamp_us("1970-01-01T00:00:00+00:60") is None
    assert parse_timestamp_us("1970-00-01T00:00:00Z") is None
    assert parse_timestamp_us("1970-01-00T00:00:00Z") is None
    assert parse_timestamp_us("1970-01-01T00:60:00Z") is None


def test_leap_second_keeps_order() -> None:
    before = parse_timestamp_us("2016-12-31T23:59:59.999998Z")
    leap = parse_timestamp_us("2016-12-31T23:59:60.5Z")
    after = parse_timestamp_us("2017-01-01T00:00:00Z")
    assert before is not None and leap is not None and after is not None
    assert before < leap < after


def test_normalise_dimension() -> None:
    assert normalise_dimension(" \t Chat\r\n") == "chat"
    assert normalise_dimension("A" * 64) == "a" * 64
    assert normalise_dimension("a" * 65) is None
    assert normalise_dimension("a b") == "a b"
    assert normalise_dimension("a\tb") is None
    assert normalise_dimension("\u212a") is None  # lower() would give ASCII "k"
    assert normalise_dimension("\u00a0chat") is None  # only ASCII whitespace is trimmed
    assert DIMENSION_PATTERN == "[a-z0-9][a-z0-9 _./:-]{0,63}"


def test_late_is_at_or_past_the_old_edge_of_the_longest_window() -> None:
    month = 30 * 86_400 * S
    assert is_late(NOW - month, NOW, month)
    assert is_late(NOW - month - 1, NOW, month)
    assert not is_late(NOW - month + 1, NOW, month)
    assert not is_late(NOW + 10 * S, NOW, month)


# -- the file validator ----------------------------------------------------------------


def test_validate_file_reports_each_bad_line_and_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        j(BASES["nps"]),
        b"",
        b"not json",
        j({**BASES["nps"], "score": 12}),
        b"   ",
        j(BASES["created"]) + b"\r",  # CRLF file
        j({**BASES["replied"], "author": "manager"}),
        j({**BASES["created"], "type": "order.created"}),
        j({**BASES["csat"], "score": 9}),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    out = io.StringIO()
    assert run(str(path), out, NOW) == 1
    report = out.getvalue().splitlines()
    assert [line.split(":")[0:2] for line in report[:-1]] == [
        ["line 3", " malformed"],
        ["line 4", " out_of_range"],
        ["line 7", " schema"],
        ["line 8", " unknown_type"],
        ["line 9", " out_of_range"],
    ]
    assert report[4] == "line 9: out_of_range: score 9 is outside 1-5 for survey.csat"
    assert report[-1] == (
        "2 valid, 5 invalid (malformed 1, unknown_type 1, schema 1, out_of_range 2)"
    )


def test_validate_file_all_valid_returns_zero(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_bytes(b"\n".join(j(doc) for doc in BASES.values()))  # no final newline
    out = io.StringIO()
    assert run(str(path), out, NOW) == 0
    assert out.getvalue() == f"{len(BASES)} valid, 0 invalid\n"


def test_validate_file_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"\n\n")
    out = io.StringIO()
    assert run(str(path), out, NOW) == 0
    assert out.getvalue() == "0 valid, 0 invalid\n"


def test_validate_file_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    data = j(BASES["ces"]) + b"\n" + j({**BASES["ces"], "score": 0}) + b"\n"
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(data)))
    out = io.StringIO()
    assert run("-", out, NOW) == 1
    assert out.getvalue().splitlines() == [
        "line 2: out_of_range: score 0 is outside 1-7 for survey.ces",
        "1 valid, 1 invalid (out_of_range 1)",
    ]


def test_validate_file_uses_the_configured_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "dims.jsonl"
    path.write_bytes(j({**BASES["created"], "region": "!"}) + b"\n")
    assert run(str(path), io.StringIO(), NOW) == 0
    assert run(str(path), io.StringIO(), NOW, dimensions=("channel", "region")) == 1


def test_validate_file_judges_time_at_now(tmp_path: Path) -> None:
    path = tmp_path / "time.jsonl"
    path.write_bytes(j(BASES["resolved"]) + b"\n")
    out = io.StringIO()
    assert run(str(path), out, NOW - 3600 * S) == 1
    assert "line 1: future_timestamp:" in out.getvalue()


def test_validate_file_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        run(str(tmp_path / "absent.jsonl"), io.StringIO(), NOW)


def test_validate_file_agrees_with_decode_on_the_corpus(tmp_path: Path) -> None:
    """Every single-line corpus record, routed by its type prefix as the
    command does, gets the same verdict from the file validator as from decode."""
    cases = [c for c in INVALID + VALID if c.raw and b"\n" not in c.raw and c.raw.strip()]
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b"".join(c.raw + b"\n" for c in cases if c.raw))
    out = io.StringIO()
    run(str(path), out, NOW)
    reported = {
        int(line.split(":")[0].removeprefix("line ")): line.split(": ")[1]
        for line in out.getvalue().splitlines()[:-1]
    }
    for number, c in enumerate(cases, start=1):
        assert c.raw is not None
        result = decode(c.raw, topic_of(c.raw), NOW)
        want = result.reason if isinstance(result, Rejection) else None
        assert reported.get(number) == want, c.case
    assert {r for r in reported.values()} >= {"malformed", "too_large", "schema", "out_of_range"}


def test_topic_of() -> None:
    assert topic_of(j(BASES["nps"])) == "surveys"
    assert topic_of(j(BASES["created"])) == "tickets"
    assert topic_of(j({"type": "order.created"})) == "tickets"
    assert topic_of(j({"type": 5})) == "tickets"
    assert topic_of(b"[1]") == "tickets"
    assert topic_of(b"\xff") == "tickets"


def test_summary_lists_reasons_in_contract_order() -> None:
    from collections import Counter

    text = summary(3, Counter({"out_of_range": 2, "malformed": 1, "schema": 4}))
    assert text == "3 valid, 7 invalid (malformed 1, schema 4, out_of_range 2)"
