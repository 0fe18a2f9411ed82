"""The alert state machine with an explicit clock, and the alert event schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from streams.domain.alerting import (
    MAX_COMMENT_CHARS,
    AlertBook,
    AlertEvent,
    detractor_events,
    fingerprint,
    rfc3339,
)
from streams.domain.model import DurationSummary, SurveyResponse, WindowSnapshot
from streams.domain.rules import (
    DEFAULT_DETRACTOR,
    DEFAULT_RULES,
    DetractorConfig,
    Rule,
    RuleSet,
    default_ruleset,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "schemas" / "alert-event.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)

S = 1_000_000  # microseconds per second
T0 = 1_700_000_000 * S
LABELS = {"channel": "chat", "team": "billing"}
RULES = default_ruleset(["1h", "24h", "7d", "30d"])


# ---------------------------------------------------------------------------
# Snapshot builders
# ---------------------------------------------------------------------------


def snap(
    window: str = "24h",
    *,
    nps: tuple[int, int, int] = (0, 0, 0),
    csat: Mapping[int, int] | None = None,
    ces: tuple[int, int] = (0, 0),
    fcr: tuple[int, int] = (0, 0),
    first_response: tuple[int, float] | None = None,
) -> WindowSnapshot:
    """nps = (promoters, passives, detractors); fcr = (first-contact, not);
    first_response = (count, p90 seconds)."""
    fr = DurationSummary(0, 0, {})
    if first_response is not None:
        count, p90 = first_response
        fr = DurationSummary(count, int(count * p90 * S), {0.5: p90 / 2, 0.9: p90, 0.99: p90 * 2})
    return WindowSnapshot(
        window=window,
        nps={"promoter": nps[0], "passive": nps[1], "detractor": nps[2]},
        csat={s: (csat or {}).get(s, 0) for s in range(1, 6)},
        ces_count=ces[0],
        ces_sum=ces[1],
        fcr={True: fcr[0], False: fcr[1]},
        first_response=fr,
        resolution=DurationSummary(0, 0, {}),
    )


def nps_snap(score_sign: int, responses: int, window: str = "24h") -> WindowSnapshot:
    """``responses`` all promoters (+1), all detractors (-1) or all passives (0)."""
    if score_sign > 0:
        return snap(window, nps=(responses, 0, 0))
    if score_sign < 0:
        return snap(window, nps=(0, 0, responses))
    return snap(window, nps=(0, responses, 0))


def nps_value(value: int, responses: int = 100) -> WindowSnapshot:
    """An NPS of exactly ``value`` (-100..100, even) from ``responses`` = 100."""
    assert responses == 100 and value % 2 == 0
    promoters = (100 + value) // 2
    return snap(nps=(promoters, 0, 100 - promoters))


def names(events: list[AlertEvent]) -> list[tuple[str, str]]:
    return [(e.alertname, e.status) for e in events]


def check_schema(events: list[AlertEvent]) -> None:
    for event in events:
        doc = json.loads(json.dumps(event.to_dict()))
        errors = sorted(VALIDATOR.iter_errors(doc), key=str)
        assert not errors, [e.message for e in errors]


def reload(book: AlertBook) -> AlertBook:
    """What a restart does: JSON out to the table, JSON back in."""
    return AlertBook.from_dict(json.loads(json.dumps(book.to_dict())))


# ---------------------------------------------------------------------------
# Default rules: thresholds and minimum samples
# ---------------------------------------------------------------------------


def test_nps_fires_below_zero_with_30_responses_once() -> None:
    book = AlertBook()
    assert book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 29)}, T0) == []
    events = book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 30)}, T0 + S)
    assert names(events) == [("CxNpsLow", "firing")]
    doc = events[0].to_dict()
    assert doc["labels"] == {
        "alertname": "CxNpsLow",
        "severity": "warning",
        "window": "24h",
        "channel": "chat",
        "team": "billing",
    }
    assert doc["value"] == -100.0 and doc["threshold"] == 0 and doc["sample_size"] == 30
    assert doc["startsAt"] == rfc3339(T0 + S) and "endsAt" not in doc
    assert doc["annotations"]["summary"] == (
        "NPS -100.0 over 24h is below 0 (channel=chat, team=billing)"
    )
    # No repeats while it keeps firing, however often it is evaluated.
    for i in range(2, 50):
        assert book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 30 + i)}, T0 + i * S) == []
    check_schema(events)


def test_nps_zero_is_not_below_zero() -> None:
    book = AlertBook()
    assert book.evaluate(RULES, LABELS, {"24h": nps_snap(0, 500)}, T0) == []
    assert book.evaluate(RULES, LABELS, {"24h": nps_value(-2)}, T0 + S) != []


@pytest.mark.parametrize(
    ("window", "firing", "healthy", "few", "alertname"),
    [
        (
            "24h",
            snap(csat={1: 10, 5: 20}),  # 0.667 of 30
            snap(csat={1: 9, 5: 21}),  # 0.70 of 30
            snap(csat={1: 29}),  # 0.0 of 29
            "CxCsatLow",
        ),
        (
            "1h",
            snap("1h", first_response=(20, 14_400.5)),
            snap("1h", first_response=(20, 14_400.0)),
            snap("1h", first_response=(19, 99_999.0)),
            "CxFirstResponseSlow",
        ),
        (
            "7d",
            snap("7d", fcr=(24, 26)),  # 0.48 of 50
            snap("7d", fcr=(25, 25)),  # 0.50 of 50
            snap("7d", fcr=(0, 49)),
            "CxFcrLow",
        ),
    ],
)
def test_each_default_rule_threshold_and_min_samples(
    window: str,
    firing: WindowSnapshot,
    healthy: WindowSnapshot,
    few: WindowSnapshot,
    alertname: str,
) -> None:
    book = AlertBook()
    assert book.evaluate(RULES, LABELS, {window: healthy}, T0) == []
    assert book.evaluate(RULES, LABELS, {window: few}, T0 + S) == []
    events = book.evaluate(RULES, LABELS, {window: firing}, T0 + 2 * S)
    assert names(events) == [(alertname, "firing")]
    rule = RULES.get(alertname)
    assert rule is not None and events[0].severity == rule.severity
    assert events[0].labels["window"] == window
    resolved = book.evaluate(RULES, LABELS, {window: healthy}, T0 + 3 * S)
    assert names(resolved) == [(alertname, "resolved")]
    assert resolved[0].fingerprint == events[0].fingerprint
    check_schema(events + resolved)


def test_first_response_severity_is_critical_and_value_in_seconds() -> None:
    book = AlertBook()
    events = book.evaluate(RULES, LABELS, {"1h": snap("1h", first_response=(25, 20_000.0))}, T0)
    assert events[0].severity == "critical"
    assert events[0].value == 20_000.0 and events[0].sample_size == 25
    assert events[0].threshold == 14_400.0


def test_other_windows_do_not_trigger_a_rule() -> None:
    book = AlertBook()
    assert book.evaluate(RULES, LABELS, {"1h": nps_snap(-1, 1000, "1h")}, T0) == []


# ---------------------------------------------------------------------------
# `for`, hysteresis, draining
# ---------------------------------------------------------------------------

PENDING = Rule("Slow", "nps_score", "24h", "<", 0.0, min_samples=1, for_s=600.0)


def test_for_holds_back_firing_and_startsat_is_the_pending_start() -> None:
    book = AlertBook()
    bad = {"24h": nps_snap(-1, 5)}
    assert book.evaluate([PENDING], LABELS, bad, T0) == []
    assert book.firing_count() == {}  # pending is not firing
    assert book.evaluate([PENDING], LABELS, bad, T0 + 599 * S) == []
    events = book.evaluate([PENDING], LABELS, bad, T0 + 600 * S)
    assert names(events) == [("Slow", "firing")]
    assert events[0].starts_us == T0
    assert book.firing_count() == {("Slow", "warning"): 1}


def test_pending_restarts_when_the_condition_clears() -> None:
    book = AlertBook()
    assert book.evaluate([PENDING], LABELS, {"24h": nps_snap(-1, 5)}, T0) == []
    assert book.evaluate([PENDING], LABELS, {"24h": nps_snap(1, 5)}, T0 + 300 * S) == []
    assert book.evaluate([PENDING], LABELS, {"24h": nps_snap(-1, 5)}, T0 + 400 * S) == []
    # 600 s after the first breach, but only 200 s into the second: not yet.
    assert book.evaluate([PENDING], LABELS, {"24h": nps_snap(-1, 5)}, T0 + 600 * S) == []
    events = book.evaluate([PENDING], LABELS, {"24h": nps_snap(-1, 5)}, T0 + 1000 * S)
    assert names(events) == [("Slow", "firing")] and events[0].starts_us == T0 + 400 * S


def test_pending_survives_a_restart() -> None:
    book = AlertBook()
    book.evaluate([PENDING], LABELS, {"24h": nps_snap(-1, 5)}, T0)
    book = reload(book)
    events = book.evaluate([PENDING], LABELS, {"24h": nps_snap(-1, 5)}, T0 + 600 * S)
    assert names(events) == [("Slow", "firing")] and events[0].starts_us == T0


def test_hysteresis_wobble_does_not_flap() -> None:
    rule = Rule("Wobble", "nps_score", "24h", "<", 0.0, resolve_threshold=10.0)
    book = AlertBook()
    timeline = [-2, 2, -4, 0, 8, -2, 6, 10, 8, 0, -2]
    emitted: list[tuple[int, str]] = []
    for i, value in enumerate(timeline):
        for event in book.evaluate([rule], LABELS, {"24h": nps_value(value)}, T0 + i * S):
            emitted.append((value, event.status))
    # Fires at -2, stays firing through the band [0, 10), resolves at 10,
    # does not re-fire in the band, fires again below 0.
    assert emitted == [(-2, "firing"), (10, "resolved"), (-2, "firing")]


def test_without_hysteresis_recovery_at_threshold_resolves() -> None:
    rule = Rule("Plain", "nps_score", "24h", "<", 0.0)
    book = AlertBook()
    assert names(book.evaluate([rule], LABELS, {"24h": nps_value(-2)}, T0)) == [("Plain", "firing")]
    assert names(book.evaluate([rule], LABELS, {"24h": nps_value(0)}, T0 + S)) == [
        ("Plain", "resolved")
    ]


def test_firing_alert_resolves_when_the_window_drains() -> None:
    book = AlertBook()
    fired = book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 40)}, T0)
    assert names(fired) == [("CxNpsLow", "firing")]
    # Fewer than min_samples but still breaching: too little evidence of recovery.
    assert book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 3)}, T0 + S) == []
    events = book.evaluate(RULES, LABELS, {"24h": nps_snap(0, 0)}, T0 + 2 * S)
    assert names(events) == [("CxNpsLow", "resolved")]
    doc = events[0].to_dict()
    assert doc["value"] is None and doc["sample_size"] == 0
    assert doc["endsAt"] == rfc3339(T0 + 2 * S) and doc["startsAt"] == rfc3339(T0)
    assert doc["fingerprint"] == fired[0].fingerprint
    check_schema(fired + events)


def test_missing_window_snapshot_counts_as_drained() -> None:
    book = AlertBook()
    book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 40)}, T0)
    assert names(book.evaluate(RULES, LABELS, {}, T0 + S)) == [("CxNpsLow", "resolved")]


def test_recovery_with_few_samples_resolves() -> None:
    book = AlertBook()
    book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 40)}, T0)
    events = book.evaluate(RULES, LABELS, {"24h": nps_snap(1, 2)}, T0 + S)
    assert names(events) == [("CxNpsLow", "resolved")] and events[0].value == 100.0


def test_resolved_then_breaching_again_fires_a_new_alert_same_fingerprint() -> None:
    book = AlertBook()
    first = book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 40)}, T0)
    book.evaluate(RULES, LABELS, {"24h": nps_snap(1, 40)}, T0 + S)
    again = book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 80)}, T0 + 2 * S)
    assert names(again) == [("CxNpsLow", "firing")]
    assert again[0].fingerprint == first[0].fingerprint
    assert again[0].starts_us == T0 + 2 * S


# ---------------------------------------------------------------------------
# Restarts and fingerprints
# ---------------------------------------------------------------------------


def test_restart_while_firing_repeats_nothing_and_resolves_the_same_alert() -> None:
    book = AlertBook()
    fired = book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 40)}, T0)
    book = reload(book)
    assert book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 40)}, T0 + S) == []
    book = reload(book)
    resolved = book.evaluate(RULES, LABELS, {"24h": nps_snap(1, 40)}, T0 + 2 * S)
    assert names(resolved) == [("CxNpsLow", "resolved")]
    assert resolved[0].fingerprint == fired[0].fingerprint
    assert resolved[0].labels == fired[0].labels
    assert resolved[0].annotations == fired[0].annotations
    assert resolved[0].starts_us == fired[0].starts_us


def test_fingerprint_is_fixed_by_the_labels_alone() -> None:
    labels = {"alertname": "CxNpsLow", "severity": "warning", "window": "24h", **LABELS}
    shuffled = dict(reversed(list(labels.items())))
    assert fingerprint(labels) == fingerprint(shuffled)
    assert len(fingerprint(labels)) == 16 and int(fingerprint(labels), 16) >= 0
    assert fingerprint(labels) != fingerprint({**labels, "team": "support"})
    # Pinned: changing the algorithm would break every consumer's dedup.
    assert fingerprint(labels) == GOLDEN_FINGERPRINT


GOLDEN_FINGERPRINT = "f35b54ad1ed138fd"  # sha256(canonical JSON)[:16]


def test_fingerprint_is_the_same_in_another_process() -> None:
    code = (
        "from streams.domain.alerting import fingerprint;"
        "print(fingerprint({'team': 'billing', 'window': '24h', 'alertname': 'CxNpsLow',"
        " 'severity': 'warning', 'channel': 'chat'}))"
    )
    for seed in ("0", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert out.stdout.strip() == GOLDEN_FINGERPRINT


def test_empty_book_serialises_to_empty_dict() -> None:
    assert AlertBook().to_dict() == {}
    assert AlertBook.from_dict({}).to_dict() == {}
    assert AlertBook.from_dict(None).to_dict() == {}
    with pytest.raises(ValueError, match="version"):
        AlertBook.from_dict({"v": 99})


# ---------------------------------------------------------------------------
# Configuration changes
# ---------------------------------------------------------------------------


def test_removed_rule_resolves_its_firing_alert() -> None:
    book = AlertBook()
    book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 40)}, T0)
    without = RuleSet(rules=tuple(r for r in DEFAULT_RULES if r.alertname != "CxNpsLow"))
    events = book.evaluate(without, LABELS, {"24h": nps_snap(-1, 40)}, T0 + S)
    assert names(events) == [("CxNpsLow", "resolved")]
    assert events[0].value == -100.0 and events[0].sample_size == 40
    assert book.firing_count() == {}


def test_filters_limit_a_rule_to_matching_keys() -> None:
    rule = Rule("ChatOnly", "nps_score", "24h", "<", 0.0, filters={"channel": "chat"})
    bad = {"24h": nps_snap(-1, 5)}
    assert names(AlertBook().evaluate([rule], LABELS, bad, T0)) == [("ChatOnly", "firing")]
    email = {"channel": "email", "team": "billing"}
    assert AlertBook().evaluate([rule], email, bad, T0) == []


def test_changed_severity_resolves_old_identity_and_fires_new() -> None:
    book = AlertBook()
    fired = book.evaluate(RULES, LABELS, {"24h": nps_snap(-1, 40)}, T0)
    louder = RuleSet(
        rules=tuple(
            Rule("CxNpsLow", "nps_score", "24h", "<", 0.0, min_samples=30, severity="critical")
            if r.alertname == "CxNpsLow"
            else r
            for r in DEFAULT_RULES
        )
    )
    events = book.evaluate(louder, LABELS, {"24h": nps_snap(-1, 40)}, T0 + S)
    assert [(e.status, e.severity) for e in events] == [
        ("resolved", "warning"),
        ("firing", "critical"),
    ]
    assert events[0].fingerprint == fired[0].fingerprint != events[1].fingerprint


def test_reserved_label_names_cannot_be_overridden_by_dimensions() -> None:
    odd = {"channel": "chat", "window": "7d", "severity": "none"}
    events = AlertBook().evaluate(RULES, odd, {"24h": nps_snap(-1, 40)}, T0)
    assert events[0].labels["window"] == "24h" and events[0].labels["severity"] == "warning"


# ---------------------------------------------------------------------------
# Detractor alerts
# ---------------------------------------------------------------------------


def response(
    event_id: str = "r-1",
    score: int = 3,
    comment: str | None = "nobody answered",
    type_: str = "survey.nps",
    ticket_id: str | None = "T-9",
    respondent_id: str | None = "cust-1",
) -> SurveyResponse:
    return SurveyResponse(
        event_id=event_id,
        type=type_,
        occurred_us=T0 - 60 * S,
        score=score,
        dims=dict(LABELS),
        ticket_id=ticket_id,
        comment=comment,
        respondent_id=respondent_id,
    )


def test_detractor_with_comment_fires_once_and_resolves_after_24h() -> None:
    book = AlertBook()
    events = book.detractor(response(), LABELS, T0)
    assert names(events) == [("CxDetractorResponse", "firing")]
    doc = events[0].to_dict()
    assert doc["labels"] == {
        "alertname": "CxDetractorResponse",
        "severity": "info",
        "window": "response",
        "channel": "chat",
        "team": "billing",
        "event_id": "r-1",
    }
    # Customer and ticket ids are annotations only, never labels.
    assert doc["annotations"]["ticket_id"] == "T-9"
    assert doc["annotations"]["respondent_id"] == "cust-1"
    assert doc["annotations"]["comment"] == "nobody answered"
    assert "nobody answered" in doc["annotations"]["summary"]
    assert doc["value"] == 3 and doc["threshold"] == 6 and doc["sample_size"] == 1
    # Deduplicated by event_id (a replay), also across a restart.
    assert book.detractor(response(), LABELS, T0 + S) == []
    book = reload(book)
    assert book.detractor(response(), LABELS, T0 + 2 * S) == []
    assert book.firing_count() == {("CxDetractorResponse", "info"): 1}
    # Threshold rules do not disturb it; it resolves exactly 24 h after it fired.
    assert book.evaluate(RULES, LABELS, {}, T0 + 86_400 * S - 1) == []
    resolved = book.evaluate(RULES, LABELS, {}, T0 + 86_400 * S)
    assert names(resolved) == [("CxDetractorResponse", "resolved")]
    assert resolved[0].fingerprint == events[0].fingerprint
    assert resolved[0].to_dict()["endsAt"] == rfc3339(T0 + 86_400 * S)
    assert book.evaluate(RULES, LABELS, {}, T0 + 90_000 * S) == []
    assert book.firing_count() == {} and book.to_dict() == {}
    check_schema(events + resolved)


@pytest.mark.parametrize(
    "resp",
    [
        response(score=7),
        response(score=10),
        response(comment=None),
        response(comment="   "),
        response(type_="survey.csat", score=1),
    ],
)
def test_no_detractor_alert_without_a_detractor_comment(resp: SurveyResponse) -> None:
    assert AlertBook().detractor(resp, LABELS, T0) == []


def test_detractor_boundaries_zero_and_six_fire() -> None:
    book = AlertBook()
    assert book.detractor(response("a", score=0), LABELS, T0)
    assert book.detractor(response("b", score=6), LABELS, T0)


def test_each_response_has_its_own_fingerprint() -> None:
    book = AlertBook()
    fps = {book.detractor(response(f"r-{i}"), LABELS, T0 + i)[0].fingerprint for i in range(3)}
    assert len(fps) == 3
    assert book.firing_count() == {("CxDetractorResponse", "info"): 3}


def test_detractor_disabled_and_configured() -> None:
    off = DetractorConfig(enabled=False)
    assert AlertBook().detractor(response(), LABELS, T0, off) == []
    short = DetractorConfig(severity="warning", resolve_after_s=3600, summary="{score}: {comment}")
    book = AlertBook()
    fired = book.detractor(response(), LABELS, T0, short)
    assert fired[0].severity == "warning" and fired[0].annotations["summary"] == (
        "3: nobody answered"
    )
    rules = RuleSet(detractor=short)
    assert names(book.evaluate(rules, LABELS, {}, T0 + 3600 * S)) == [
        ("CxDetractorResponse", "resolved")
    ]


def test_detractor_without_ids_and_with_a_long_comment() -> None:
    long = "x" * 2000
    ev = AlertBook().detractor(
        response(comment=long, ticket_id=None, respondent_id=None), LABELS, T0
    )
    ann = ev[0].annotations
    assert "ticket_id" not in ann and "respondent_id" not in ann
    assert len(ann["comment"]) == MAX_COMMENT_CHARS and ann["comment"].endswith("…")
    check_schema(ev)


def test_open_detractors_are_bounded_per_key() -> None:
    cfg = DetractorConfig(max_open=2)
    book = AlertBook()
    book.detractor(response("a"), LABELS, T0, cfg)
    book.detractor(response("b"), LABELS, T0 + 1, cfg)
    events = book.detractor(response("c"), LABELS, T0 + 2, cfg)
    assert [(e.status, e.labels["event_id"]) for e in events] == [
        ("resolved", "a"),
        ("firing", "c"),
    ]
    assert book.firing_count() == {("CxDetractorResponse", "info"): 2}


def test_detractor_events_accepts_the_pipeline_dict() -> None:
    book = AlertBook()
    doc: dict[str, Any] = {
        "event_id": "r-7",
        "score": 2,
        "occurred_us": T0,
        "received_us": T0 + 5,
        "comment": "slow",
        "ticket_id": None,
        "respondent_id": "cust-2",
    }
    events = detractor_events(book, RULES, LABELS, doc, T0)
    assert names(events) == [("CxDetractorResponse", "firing")]
    assert events[0].annotations["respondent_id"] == "cust-2"
    assert detractor_events(book, RULES, LABELS, doc, T0) == []


def test_firing_events_resync_everything_firing() -> None:
    book = AlertBook()
    rules = [*DEFAULT_RULES, PENDING]  # CxNpsLow fires, Slow is only pending
    fired = book.evaluate(rules, LABELS, {"24h": nps_snap(-1, 40)}, T0)
    assert names(fired) == [("CxNpsLow", "firing")]
    fired += book.detractor(response(), LABELS, T0)
    book = reload(book)
    # Exactly the events first emitted, so a consumer sees plain repeats.
    resync = book.firing_events()
    assert sorted(e.to_dict()["fingerprint"] for e in resync) == sorted(
        e.fingerprint for e in fired
    )
    assert sorted((e.to_dict() for e in resync), key=str) == sorted(
        (e.to_dict() for e in fired), key=str
    )
    check_schema(resync)


def test_firing_count_groups_by_alertname_and_severity() -> None:
    book = AlertBook()
    book.evaluate(
        RULES,
        LABELS,
        {"24h": nps_snap(-1, 40), "1h": snap("1h", first_response=(30, 20_000.0))},
        T0,
    )
    book.detractor(response("a"), LABELS, T0)
    book.detractor(response("b"), LABELS, T0)
    assert book.firing_count() == {
        ("CxNpsLow", "warning"): 1,
        ("CxFirstResponseSlow", "critical"): 1,
        ("CxDetractorResponse", "info"): 2,
    }
    assert book.firing_counts() == book.firing_count()


# ---------------------------------------------------------------------------
# Events and the schema
# ---------------------------------------------------------------------------


def test_rfc3339_is_exact_utc_with_z() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000000Z"
    assert rfc3339(T0 + 123_456) == "2023-11-14T22:13:20.123456Z"


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_rejects_what_the_contract_forbids() -> None:
    fired = AlertBook().evaluate(RULES, LABELS, {"24h": nps_snap(-1, 40)}, T0)[0].to_dict()
    assert VALIDATOR.is_valid(fired)
    bad_cases = [
        {**fired, "status": "resolved"},  # resolved needs endsAt
        {**fired, "endsAt": fired["startsAt"]},  # firing has no endsAt
        {k: v for k, v in fired.items() if k != "fingerprint"},
        {**fired, "labels": {k: v for k, v in fired["labels"].items() if k != "window"}},
        {**fired, "annotations": {"summary": "x"}},
        {**fired, "startsAt": "2024-01-01T00:00:00+02:00"},  # UTC with Z only
        {**fired, "sample_size": 1.5},
        {**fired, "value": None},  # only a resolved event may lack a value
        {**fired, "unexpected": 1},
    ]
    for doc in bad_cases:
        assert not VALIDATOR.is_valid(doc), doc


# ---------------------------------------------------------------------------
# Property: whatever the values, events alternate firing/resolved per alert
# ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=-50, max_value=50),  # NPS / 2
            st.integers(min_value=0, max_value=60),  # responses (0 = drained)
            st.integers(min_value=1, max_value=400),  # seconds to the next step
            st.booleans(),  # restart before this step
        ),
        max_size=40,
    )
)
def test_events_alternate_and_never_repeat(steps: list[tuple[int, int, int, bool]]) -> None:
    rule = Rule(
        "Prop", "nps_score", "24h", "<", 0.0, resolve_threshold=10.0, min_samples=30, for_s=300
    )
    book = AlertBook()
    now = T0
    statuses: list[str] = []
    for half, responses, gap, restart in steps:
        now += gap * S
        if restart:
            book = reload(book)
        promoters = min(responses, max(0, (responses * (100 + 2 * half)) // 200))
        snapshot = snap(nps=(promoters, 0, responses - promoters))
        events = book.evaluate([rule], LABELS, {"24h": snapshot}, now)
        assert len(events) <= 1
        for event in events:
            statuses.append(event.status)
            if event.status == "firing":
                assert event.sample_size >= 30 and event.value is not None and event.value < 0
                assert now - event.starts_us >= 300 * S
            else:
                assert event.value is None or event.value >= 10.0
        check_schema(events)
    assert statuses == ["firing", "resolved"] * (len(statuses) // 2) + (
        ["firing"] if len(statuses) % 2 else []
    )
    assert book.firing_count() == ({("Prop", "warning"): 1} if len(statuses) % 2 else {})


def test_default_detractor_is_used_for_plain_rule_lists() -> None:
    book = AlertBook()
    book.detractor(response(), LABELS, T0)
    events = book.evaluate(list(DEFAULT_RULES), LABELS, {}, T0 + DEFAULT_DETRACTOR.resolve_after_us)
    assert names(events) == [("CxDetractorResponse", "resolved")]
