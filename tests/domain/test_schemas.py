"""The published JSON Schemas say what the validator does.

Over the corpus and over generated near-valid events, a Draft 2020-12
validator and ``decode`` accept and reject the same inputs, except where a
schema cannot see: the size of the record (too_large), the processing time
(future_timestamp), bytes the JSON decoder refuses (malformed, though a JSON
value that is not an object must be rejected by the schema too), and a score
written as ``9.0`` (JSON Schema counts it as an integer; the validator does
not). For out_of_range the schema rejects as well; only the reason differs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain.model import (
    AUTHORS,
    PRIORITIES,
    SCORE_RANGES,
    SURVEY_TYPES,
    TICKET_TYPES,
    Rejection,
)
from streams.domain.validation import (
    DIMENSION_PATTERN,
    MAX_COMMENT_CHARS,
    MAX_ID_CHARS,
    MAX_RESPONDENT_CHARS,
    decode,
    normalise_dimension,
    parse_timestamp_us,
)
from tests.domain.corpus import INVALID, NOW_US, VALID, Case
from tests.domain.corpus.strategies import (
    EDGES,
    STARTS,
    dimension_texts,
    encode,
    near_valid_records,
    timestamps,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
TICKET = json.loads((SCHEMAS / "ticket-event.schema.json").read_text(encoding="utf-8"))
SURVEY = json.loads((SCHEMAS / "survey-response.schema.json").read_text(encoding="utf-8"))
VALIDATORS = {
    "tickets": jsonschema.Draft202012Validator(TICKET),
    "surveys": jsonschema.Draft202012Validator(SURVEY),
}
TIMESTAMP_PATTERN = TICKET["$defs"]["timestamp"]["pattern"]
DIMENSION_SCHEMA_PATTERN = TICKET["$defs"]["dimension"]["anyOf"][1]["pattern"]
# Late enough that no generated timestamp is in the future: the schema cannot see the clock.
FAR_FUTURE_US = 10_000 * 366 * 86_400 * 1_000_000


def schema_accepts(doc: Any, source: str) -> bool:
    return VALIDATORS[source].is_valid(doc)


def schema_blind(doc: Any, source: str) -> bool:
    """A score such as 9.0 or 1e1: an integer to JSON Schema, not to the validator."""
    score = doc.get("score") if isinstance(doc, dict) else None
    return source == "surveys" and isinstance(score, float) and score.is_integer()


def assert_same_verdict(raw: bytes | None, source: str, now_us: int, label: object) -> bool:
    """Compare decode with the schema on one record; False when the schema
    cannot judge it (see the module docstring)."""
    result = decode(raw, source, now_us)  # type: ignore[arg-type]
    if isinstance(result, Rejection) and result.reason in ("too_large", "future_timestamp"):
        return False
    if raw is None:
        return False
    try:
        doc = json.loads(raw)  # the standard decoder, as a schema user would
    except ValueError:
        assert isinstance(result, Rejection) and result.reason == "malformed", label
        return False
    if isinstance(result, Rejection) and result.reason == "malformed":
        if isinstance(doc, dict):
            return False  # a JSON decoder limit (lone surrogate, 1e400, depth), not a rule
        assert not schema_accepts(doc, source), label
        return True
    if schema_blind(doc, source):
        return False
    accepted = not isinstance(result, Rejection)
    assert schema_accepts(doc, source) == accepted, (label, result)
    return True


# -- the schemas themselves ------------------------------------------------------------


@pytest.mark.parametrize("schema", [TICKET, SURVEY], ids=["ticket", "survey"])
def test_schema_is_valid_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    ("schema", "source"), [(TICKET, "tickets"), (SURVEY, "surveys")], ids=["ticket", "survey"]
)
def test_schema_examples_are_valid_events(schema: dict[str, Any], source: str) -> None:
    assert schema["examples"]
    for example in schema["examples"]:
        assert schema_accepts(example, source)
        assert not isinstance(decode(encode(example), source, NOW_US), Rejection)  # type: ignore[arg-type]


def test_schemas_state_the_model_constants() -> None:
    """No drift between the published schema and the code's constants."""
    assert TICKET["properties"]["type"]["enum"] == list(TICKET_TYPES)
    assert SURVEY["properties"]["type"]["enum"] == list(SURVEY_TYPES)
    created, replied = TICKET["allOf"]
    assert created["then"]["properties"]["priority"]["enum"] == [None, *PRIORITIES]
    assert replied["then"]["properties"]["author"]["enum"] == list(AUTHORS)
    ranges = {
        rule["if"]["properties"]["type"]["const"]: (
            rule["then"]["properties"]["score"]["minimum"],
            rule["then"]["properties"]["score"]["maximum"],
        )
        for rule in SURVEY["allOf"]
    }
    assert ranges == SCORE_RANGES
    for schema in (TICKET, SURVEY):
        assert schema["$defs"]["identifier"]["maxLength"] == MAX_ID_CHARS
        assert schema["$defs"]["timestamp"]["pattern"] == TIMESTAMP_PATTERN
        assert schema["$defs"]["dimension"] == TICKET["$defs"]["dimension"]
        assert DIMENSION_PATTERN in schema["$defs"]["dimension"]["description"]
    assert SURVEY["properties"]["comment"]["anyOf"][1]["maxLength"] == MAX_COMMENT_CHARS
    assert SURVEY["properties"]["respondent_id"]["anyOf"][1]["maxLength"] == MAX_RESPONDENT_CHARS


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return own + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


def test_patterns_use_the_portable_regex_subset() -> None:
    """JSON Schema recommends a subset of ECMA 262 that every implementation
    reads alike: no \\d or \\s (Unicode-aware in some engines), no (?: or flags."""
    patterns = _patterns(TICKET) + _patterns(SURVEY)
    assert len(patterns) == 4
    for pattern in patterns:
        assert pattern.startswith("^")
        for construct in ("\\d", "\\s", "\\w", "(?:", "(?i", "(?<"):
            assert construct not in pattern, (construct, pattern)


# -- the same verdicts -----------------------------------------------------------------


@pytest.mark.parametrize("c", INVALID + VALID, ids=[c.case for c in INVALID + VALID])
def test_schema_and_validator_agree_on_the_corpus(c: Case) -> None:
    assert_same_verdict(c.raw, c.source, NOW_US, c.case)


def test_the_corpus_comparison_is_not_vacuous() -> None:
    judged = [c for c in INVALID + VALID if assert_same_verdict(c.raw, c.source, NOW_US, c.case)]
    assert len(judged) >= 120
    assert {c.reason for c in judged} >= {"malformed", "unknown_type", "schema", "out_of_range"}
    assert sum(c.reason is None for c in judged) == len(VALID)


def test_schema_and_validator_agree_on_every_edge_of_every_field() -> None:
    """Each start document with each field set to each edge value (and
    removed), read from both topics: a deterministic sweep of every rule."""
    judged = accepted = 0
    for start in STARTS:
        for field, values in EDGES.items():
            variants = [{**start, field: value} for value in values]
            variants.append({k: v for k, v in start.items() if k != field})
            for doc in variants:
                for source in ("tickets", "surveys"):
                    if assert_same_verdict(encode(doc), source, FAR_FUTURE_US, (doc, source)):
                        judged += 1
                        accepted += schema_accepts(doc, source)
    assert judged > 2500 and accepted > 800, (judged, accepted)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid_records())
def test_schema_and_validator_agree_on_near_valid_events(
    record: tuple[dict[str, Any], str],
) -> None:
    doc, source = record
    assert_same_verdict(encode(doc), source, FAR_FUTURE_US, doc)


@settings(max_examples=1000, deadline=None)
@given(timestamps())
def test_timestamp_pattern_is_the_parser(text: str) -> None:
    assert (re.search(TIMESTAMP_PATTERN, text) is not None) == (
        parse_timestamp_us(text) is not None
    ), text


@settings(max_examples=2000, deadline=None)
@given(dimension_texts)
def test_dimension_pattern_is_the_normaliser(value: str) -> None:
    assert (re.search(DIMENSION_SCHEMA_PATTERN, value) is not None) == (
        normalise_dimension(value) is not None
    ), value


@pytest.mark.parametrize(
    "text",
    [
        "2027-01-15T07:59:00Z\n",  # Python's $ matches before a final newline; ECMA's does not
        "2027-01-15T07:59:00Z\n\n",
        "\u0662\u0660\u0662\u0667-01-15T07:59:00Z",  # \d would match these digits
        "0000-02-29T00:00:00Z",  # year 0 is a leap year (divisible by 400)
        "2000-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-02-29T23:59:60+23:59",
        "2024-04-31T00:00:00Z",
        "2024-12-31T00:00:00.1234567890123z",
    ],
)
def test_timestamp_pattern_edges(text: str) -> None:
    assert (re.search(TIMESTAMP_PATTERN, text) is not None) == (
        parse_timestamp_us(text) is not None
    )


def test_schemas_reject_every_non_object() -> None:
    for value in [None, True, 0, 1.5, "x", [], [{}]]:
        for source in VALIDATORS:
            assert not schema_accepts(value, source)


@given(st.sampled_from(sorted(SCORE_RANGES)), st.integers(-(2**70), 2**70))
def test_scores_agree_across_the_whole_integer_line(kind: str, score: int) -> None:
    doc = {"event_id": "e", "type": kind, "occurred_at": "2027-01-15T07:59:00Z", "score": score}
    raw = encode(doc)
    result = decode(raw, "surveys", NOW_US)
    assert schema_accepts(doc, "surveys") == (not isinstance(result, Rejection))
    if isinstance(result, Rejection):
        assert result.reason == "out_of_range"
