"""The alert engine with an explicit clock: thresholds, minimum samples, `for`,
hysteresis, windows draining, fingerprints, detractor alerts, rules files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streams.domain.alert_book import AlertBook, fingerprint
from streams.domain.alert_rules import DEFAULT_RULES, Rule, RuleSet, default_ruleset, load_rules
from streams.domain.model import DEFAULT_WINDOWS, Observation
from streams.domain.windows import DimsState, obs_id
from streams.errors import RulesError

S = 1_000_000
T0 = 1_800_000_000 * S
DIMS = ("chat", "billing")
LABELS = {"channel": "chat", "team": "billing"}
WINDOW_NAMES = [w.name for w in DEFAULT_WINDOWS]
ALERT_SCHEMA = jsonschema.Draft202012Validator(
    json.loads(
        (Path(__file__).resolve().parents[2] / "schemas" / "alert-event.schema.json").read_text()
    )
)


class Desk:
    """One dims key fed with survey scores at controlled times."""

    def __init__(self, rules: RuleSet) -> None:
        self.state = DimsState.new(DIMS, DEFAULT_WINDOWS)
        self.rules = rules
        self.offset = 0
        self.emitted: list[dict[str, Any]] = []

    def nps(self, scores: list[int], at: int) -> None:
        for score in scores:
            self.offset += 1
            self.state.apply(Observation("nps", DIMS, at, score, obs_id(0, self.offset, 0)), at)

    def evaluate(self, now: int) -> list[tuple[str, str]]:
        book = AlertBook.from_dict(self.state.alerts)
        snaps = {s.window: s for s in self.state.windows(now)}
        events = book.evaluate(self.rules, LABELS, snaps, now)
        # Persisted as the pipeline does: through the table value's bytes.
        self.state.alerts = book.to_dict()
        self.state = DimsState.from_bytes(self.state.to_bytes(), DEFAULT_WINDOWS)
        docs = [e.to_dict() for e in events]
        for doc in docs:
            ALERT_SCHEMA.validate(doc)
        self.emitted += docs
        return [(d["labels"]["alertname"], d["status"]) for d in docs]


def rules(*extra: Rule) -> RuleSet:
    return RuleSet(tuple(extra) or default_ruleset(WINDOW_NAMES).rules)


def test_fires_once_with_enough_samples_and_resolves_on_recovery() -> None:
    desk = Desk(rules())
    desk.nps([0] * 29, T0)
    assert desk.evaluate(T0) == []  # 29 < 30 responses
    desk.nps([0], T0)
    assert desk.evaluate(T0 + S) == [("CxNpsLow", "firing")]
    assert desk.evaluate(T0 + 2 * S) == []  # no repeats while firing
    desk.nps([10] * 31, T0 + 3 * S)
    assert desk.evaluate(T0 + 4 * S) == [("CxNpsLow", "resolved")]
    fired, resolved = desk.emitted
    assert fired["fingerprint"] == resolved["fingerprint"]
    assert fired["labels"] == {
        "alertname": "CxNpsLow",
        "severity": "warning",
        "window": "24h",
        **LABELS,
    }
    assert fired["value"] == -100.0 and fired["threshold"] == 0 and fired["sample_size"] == 30
    assert "endsAt" not in fired and resolved["endsAt"] > resolved["startsAt"]


def test_window_draining_resolves() -> None:
    desk = Desk(rules())
    desk.nps([3] * 40, T0)
    assert desk.evaluate(T0) == [("CxNpsLow", "firing")]
    assert desk.evaluate(T0 + 23 * 3600 * S) == []
    # 24h later the responses slid out of the window: the evidence is gone.
    assert desk.evaluate(T0 + 25 * 3600 * S) == [("CxNpsLow", "resolved")]


def test_for_duration_and_lapse() -> None:
    rule = Rule("Slow", "nps_score", "1h", "<", 0, 1, "warning", for_s=300)
    desk = Desk(rules(rule))
    desk.nps([0], T0)
    assert desk.evaluate(T0) == []  # pending
    assert desk.evaluate(T0 + 299 * S) == []
    desk.nps([10, 10], T0 + 299 * S)  # recovers before `for` elapses: pending lapses
    assert desk.evaluate(T0 + 300 * S) == []
    desk.nps([0, 0, 0], T0 + 301 * S)
    assert desk.evaluate(T0 + 301 * S) == []  # pending again, from now
    assert desk.evaluate(T0 + 601 * S) == [("Slow", "firing")]


def test_hysteresis_prevents_flapping() -> None:
    rule = Rule("Hyst", "nps_score", "24h", "<", 0, 1, "warning", resolve_threshold=20)
    desk = Desk(rules(rule))
    desk.nps([0, 10, 0], T0)  # NPS -33
    assert desk.evaluate(T0) == [("Hyst", "firing")]
    desk.nps([10], T0 + S)  # NPS 0: not below 0, but not yet >= 20
    assert desk.evaluate(T0 + S) == []
    desk.nps([0], T0 + 2 * S)  # back below 0: still the same alert, no new event
    assert desk.evaluate(T0 + 2 * S) == []
    desk.nps([10] * 4, T0 + 3 * S)  # 6 promoters, 3 detractors of 9: NPS 33
    assert desk.evaluate(T0 + 3 * S) == [("Hyst", "resolved")]


def test_label_filters() -> None:
    rule = Rule("OnlySales", "nps_score", "24h", "<", 0, 1, "warning", filters={"team": "sales"})
    desk = Desk(rules(rule))
    desk.nps([0], T0)
    assert desk.evaluate(T0) == []


def test_fingerprint_stable_and_distinct() -> None:
    a = {"alertname": "CxNpsLow", "severity": "warning", "window": "24h", **LABELS}
    assert fingerprint(a) == fingerprint(dict(reversed(list(a.items()))))
    assert fingerprint(a) != fingerprint({**a, "team": "sales"})
    assert len(fingerprint(a)) == 16


def test_detractor_alert_once_and_resolves_after_24h() -> None:
    book = AlertBook.from_dict({})
    response = {
        "event_id": "s1",
        "score": 2,
        "comment": "slow",
        "ticket_id": "T9",
        "respondent_id": "c7",
        "received_us": T0,
    }
    events = book.detractor(rules(), LABELS, response, T0)
    assert [e.status for e in events] == ["firing"]
    doc = events[0].to_dict()
    ALERT_SCHEMA.validate(doc)
    assert (
        doc["labels"]["alertname"] == "CxDetractorResponse" and doc["labels"]["severity"] == "info"
    )
    assert doc["annotations"]["ticket_id"] == "T9" and doc["annotations"]["respondent_id"] == "c7"
    assert book.detractor(rules(), LABELS, response, T0) == []  # deduplicated
    assert book.firing_counts() == {("CxDetractorResponse", "info"): 1}
    book = AlertBook.from_dict(book.to_dict())
    assert book.evaluate(rules(), LABELS, {}, T0 + 86_399 * S) == []
    resolved = book.evaluate(rules(), LABELS, {}, T0 + 86_400 * S)
    assert [(e.status, e.to_dict()["fingerprint"]) for e in resolved] == [
        ("resolved", doc["fingerprint"])
    ]


def test_defaults_match_the_contract() -> None:
    table = {
        (r.alertname, r.metric, r.window, r.op, r.threshold, r.min_samples, r.severity)
        for r in DEFAULT_RULES
    }
    assert table == {
        ("CxNpsLow", "nps_score", "24h", "<", 0, 30, "warning"),
        ("CxCsatLow", "csat_ratio", "24h", "<", 0.70, 30, "warning"),
        ("CxFirstResponseSlow", "first_response_p90", "1h", ">", 14_400, 20, "critical"),
        ("CxFcrLow", "fcr_ratio", "7d", "<", 0.50, 50, "warning"),
    }


def test_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(
        "rules:\n"
        "  - alertname: BillingNps\n    metric: nps_score\n    window: 7d\n    op: '<'\n"
        "    threshold: 10\n    resolve_threshold: 20\n    min_samples: 5\n    for: 10m\n"
        "    severity: critical\n    filters: {team: billing}\n"
        "detractor:\n  enabled: false\n"
    )
    ruleset = load_rules(str(path), WINDOW_NAMES)
    names = [r.alertname for r in ruleset.rules]
    assert names[:4] == [r.alertname for r in DEFAULT_RULES] and names[4] == "BillingNps"
    assert ruleset.rules[4].for_s == 600 and ruleset.rules[4].filters == {"team": "billing"}
    assert not ruleset.detractor.enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rules:\n  - alertname: X\n    metric: happiness\n    window: 1h\n    op: '<'\n    threshold: 0\n    min_samples: 1\n    severity: w\n",
            ":3: unknown metric 'happiness'",
        ),
        ("rules:\n  - alertname: X\n    metric: nps_score\n", ":2: rule is missing 'window'"),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 2h\n    op: '<'\n    threshold: 0\n    min_samples: 1\n    severity: w\n",
            ":4: window '2h' is not configured",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 1h\n    op: '=='\n    threshold: 0\n    min_samples: 1\n    severity: w\n",
            ":5: op '=='",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 1h\n    op: '<'\n    threshold: low\n    min_samples: 1\n    severity: w\n",
            ":6: threshold must be a number",
        ),
        ("rules:\n  - alertname: X\n    colour: red\n", ":3: unknown rule key 'colour'"),
        ("defaults: maybe\n", ":1: defaults must be true or false"),
        ("rules: [\n", "not valid YAML"),
        ("surprise: 1\n", ":1: unknown key 'surprise'"),
    ],
)
def test_rules_file_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(RulesError) as err:
        load_rules(str(path), WINDOW_NAMES)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


def test_shipped_example_rules_file_loads() -> None:
    path = Path(__file__).resolve().parents[2] / "deploy" / "rules" / "example-rules.yml"
    ruleset = load_rules(str(path), WINDOW_NAMES)
    names = {r.alertname for r in ruleset.rules}
    assert "CxFcrLow" not in names  # switched off with enabled: false
    assert {"CxNpsLow", "CxCsatLow", "CxFirstResponseSlow"} <= names
    slow = next(r for r in ruleset.rules if r.alertname == "CxFirstResponseSlow")
    assert slow.threshold == 7200  # the file replaces the built-in


def test_dims_template_field() -> None:
    rule = Rule("T", "nps_score", "24h", "<", 0, 1, "warning", summary="NPS {value:.0f} ({dims})")
    desk = Desk(rules(rule))
    desk.nps([0], T0)
    desk.evaluate(T0)
    assert desk.emitted[0]["annotations"]["summary"] == "NPS -100 (channel=chat, team=billing)"
