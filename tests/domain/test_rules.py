"""Rule model, built-in defaults and the YAML rules file (errors name the line)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from streams.domain.model import DurationSummary, WindowSnapshot
from streams.domain.rules import (
    DEFAULT_DETRACTOR,
    DEFAULT_RULES,
    METRICS,
    Rule,
    RulesError,
    RuleSet,
    default_ruleset,
    load_rules,
    metric_sample_size,
    metric_value,
    render_template,
)
from streams.errors import CxError
from streams.errors import RulesError as ErrorsRulesError

REPO = Path(__file__).resolve().parents[2]
WINDOWS = ("1h", "24h", "7d", "30d")


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rules.yml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(RulesError) as info:
        load_rules(path, WINDOWS)
    message = str(info.value)
    assert message.startswith(path), message
    return message


def line_of(message: str) -> int:
    match = re.match(r"^.*?\.yml:(\d+): ", message)
    assert match is not None, message
    return int(match.group(1))


# ---------------------------------------------------------------------------
# Defaults: the contract's table, exactly
# ---------------------------------------------------------------------------


def test_default_rules_are_the_contract_table() -> None:
    got = {
        r.alertname: (r.metric, r.window, r.op, r.threshold, r.min_samples, r.severity, r.for_s)
        for r in DEFAULT_RULES
    }
    assert got == {
        "CxNpsLow": ("nps_score", "24h", "<", 0.0, 30, "warning", 0.0),
        "CxCsatLow": ("csat_ratio", "24h", "<", 0.70, 30, "warning", 0.0),
        "CxFirstResponseSlow": ("first_response_p90", "1h", ">", 14400.0, 20, "critical", 0.0),
        "CxFcrLow": ("fcr_ratio", "7d", "<", 0.50, 50, "warning", 0.0),
    }
    assert all(r.resolve_threshold is None and not r.filters for r in DEFAULT_RULES)


def test_default_detractor_is_the_contract_row() -> None:
    assert DEFAULT_DETRACTOR.alertname == "CxDetractorResponse"
    assert DEFAULT_DETRACTOR.enabled is True
    assert DEFAULT_DETRACTOR.severity == "info"
    assert DEFAULT_DETRACTOR.resolve_after_s == 24 * 3600


def test_rules_error_is_the_project_error() -> None:
    assert RulesError is ErrorsRulesError
    assert issubclass(RulesError, CxError)


def test_default_ruleset_leaves_out_rules_without_their_window() -> None:
    full = default_ruleset(WINDOWS)
    assert [r.alertname for r in full] == [r.alertname for r in DEFAULT_RULES]
    assert full.skipped == ()
    partial = default_ruleset(["1h", "7d"])
    assert [r.alertname for r in partial] == ["CxFirstResponseSlow", "CxFcrLow"]
    assert partial.skipped == ("CxNpsLow", "CxCsatLow")


# ---------------------------------------------------------------------------
# The rule model
# ---------------------------------------------------------------------------


def _snap() -> WindowSnapshot:
    return WindowSnapshot(
        window="24h",
        nps={"promoter": 3, "passive": 1, "detractor": 6},
        csat={1: 1, 2: 0, 3: 1, 4: 1, 5: 2},
        ces_count=4,
        ces_sum=18,
        fcr={True: 3, False: 1},
        first_response=DurationSummary(7, 70_000_000, {0.5: 5.0, 0.9: 9.0, 0.99: 9.9}),
        resolution=DurationSummary(2, 30_000_000, {0.5: 10.0, 0.9: 19.0, 0.99: 20.0}),
    )


@pytest.mark.parametrize(
    ("metric", "value", "samples"),
    [
        ("nps_score", -30.0, 10),
        ("csat_ratio", 0.6, 5),
        ("ces_score", 4.5, 4),
        ("fcr_ratio", 0.75, 4),
        ("first_response_p50", 5.0, 7),
        ("first_response_p90", 9.0, 7),
        ("first_response_p99", 9.9, 7),
        ("resolution_p50", 10.0, 2),
        ("resolution_p90", 19.0, 2),
        ("resolution_p99", 20.0, 2),
    ],
)
def test_metric_value_and_sample_size(metric: str, value: float, samples: int) -> None:
    assert metric in METRICS
    assert metric_value(metric, _snap()) == pytest.approx(value)
    assert metric_sample_size(metric, _snap()) == samples


def test_empty_window_has_no_value() -> None:
    empty = WindowSnapshot(
        window="1h",
        nps={"promoter": 0, "passive": 0, "detractor": 0},
        csat=dict.fromkeys(range(1, 6), 0),
        ces_count=0,
        ces_sum=0,
        fcr={True: 0, False: 0},
        first_response=DurationSummary(0, 0, {}),
        resolution=DurationSummary(0, 0, {}),
    )
    for metric in METRICS:
        assert metric_value(metric, empty) is None
        assert metric_sample_size(metric, empty) == 0


@pytest.mark.parametrize(
    ("op", "threshold", "resolve", "breach", "still_firing", "recovered"),
    [
        ("<", 0.0, 5.0, [-1.0], [0.0, 4.9], [5.0, 6.0]),
        ("<=", 0.0, 5.0, [0.0, -1.0], [4.0], [5.1]),
        (">", 10.0, 8.0, [10.5], [10.0, 8.5], [8.0, 7.0]),
        (">=", 10.0, 8.0, [10.0], [9.0], [7.9]),
    ],
)
def test_breach_and_hysteresis_per_op(
    op: str,
    threshold: float,
    resolve: float,
    breach: list[float],
    still_firing: list[float],
    recovered: list[float],
) -> None:
    rule = Rule("R", "nps_score", "24h", op, threshold, resolve_threshold=resolve)
    assert all(rule.breaches(v) for v in breach)
    # The band between threshold and resolve_threshold neither fires nor resolves.
    assert not any(rule.breaches(v) for v in still_firing + recovered)
    assert not any(rule.recovered(v) for v in breach + still_firing)
    assert all(rule.recovered(v) for v in recovered)


def test_resolve_threshold_defaults_to_threshold() -> None:
    rule = Rule("R", "csat_ratio", "24h", "<", 0.7)
    assert rule.resolve_at == 0.7
    assert rule.recovered(0.7) and not rule.recovered(0.69)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"metric": "nps"},
        {"op": "=="},
        {"threshold": float("nan")},
        {"resolve_threshold": -1.0},  # breaching side of "<"
        {"min_samples": -1},
        {"for_s": -1.0},
        {"severity": "Loud!"},
        {"alertname": "has space"},
        {"filters": {"window": "24h"}},
    ],
)
def test_rule_rejects_nonsense(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "alertname": "R",
        "metric": "nps_score",
        "window": "24h",
        "op": "<",
        "threshold": 0.0,
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        Rule(**args)  # type: ignore[arg-type]


def test_rule_filters_scope() -> None:
    rule = Rule("R", "nps_score", "24h", "<", 0.0, filters={"channel": "chat"})
    assert rule.applies_to({"channel": "chat", "team": "a"})
    assert not rule.applies_to({"channel": "email", "team": "a"})
    assert not rule.applies_to({"team": "a"})
    assert Rule("R", "nps_score", "24h", "<", 0.0).applies_to({})


def test_templates_render_every_field_and_survive_gaps() -> None:
    rule = DEFAULT_RULES[0]
    fields = rule.template_fields({"channel": "chat", "team": "billing"}, -12.345, 40)
    assert render_template(rule.summary, fields) == (
        "NPS -12.3 over 24h is below 0 (channel=chat, team=billing)"
    )
    assert "40 responses" in render_template(rule.description, fields)
    drained = rule.template_fields({"channel": "chat"}, None, 0)
    assert render_template("{value:.1f} {channel} {nope} {nope:>5}", drained) == (
        "n/a chat {nope} {nope}"
    )
    assert render_template("{value:%%%}", fields) == "{value:%%%}"  # never raises


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def test_example_file_loads() -> None:
    rules = load_rules(str(REPO / "deploy" / "rules" / "example-rules.yml"), WINDOWS)
    names = [r.alertname for r in rules]
    assert names == [
        "CxNpsLow",
        "CxCsatLow",
        "CxNpsLowChat",
        "CxEffortHigh",
        "CxResolutionSlow",
        "CxFirstResponseSlow",
    ]
    chat = rules.get("CxNpsLowChat")
    assert chat is not None
    assert (chat.threshold, chat.resolve_threshold, chat.for_s) == (20.0, 25.0, 900.0)
    assert chat.filters == {"channel": "chat"}
    frs = rules.get("CxFirstResponseSlow")
    assert frs is not None and frs.threshold == 7200.0
    assert rules.get("CxFcrLow") is None
    assert rules.detractor == DEFAULT_DETRACTOR


def test_empty_file_means_the_defaults(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, "# nothing\n"), WINDOWS)
    assert rules.rules == DEFAULT_RULES
    assert rules.detractor == DEFAULT_DETRACTOR


def test_defaults_false_drops_the_built_ins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        defaults: false
        rules:
          - alertname: OnlyThis
            metric: ces_score
            window: 30d
            op: "<="
            threshold: 3
            for: 90
        """,
    )
    rules = load_rules(path, WINDOWS)
    assert [r.alertname for r in rules] == ["OnlyThis"]
    only = rules.get("OnlyThis")
    assert only is not None and only.for_s == 90.0 and only.min_samples == 1


def test_file_rule_replaces_the_built_in_of_the_same_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - alertname: CxNpsLow
            metric: nps_score
            window: 7d
            op: "<"
            threshold: -10
            min_samples: 100
            severity: critical
        """,
    )
    rules = load_rules(path, WINDOWS)
    assert [r.alertname for r in rules].count("CxNpsLow") == 1
    nps = rules.get("CxNpsLow")
    assert nps is not None
    assert (nps.window, nps.threshold, nps.min_samples, nps.severity) == (
        "7d",
        -10.0,
        100,
        "critical",
    )


def test_detractor_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        detractor:
          enabled: false
          severity: warning
          resolve_after: 2h
          max_open: 10
          summary: "{score} {comment}"
        """,
    )
    cfg = load_rules(path, WINDOWS).detractor
    assert (cfg.enabled, cfg.severity, cfg.resolve_after_s, cfg.max_open) == (
        False,
        "warning",
        7200,
        10,
    )
    assert cfg.summary == "{score} {comment}"


def test_durations_and_filters_are_normalised(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        defaults: false
        rules:
          - alertname: A
            metric: fcr_ratio
            window: 7d
            op: "<"
            threshold: 0.5
            for: 2h
            filters: {team: " Billing "}
        """,
    )
    rule = load_rules(path, WINDOWS).get("A")
    assert rule is not None and rule.for_s == 7200.0 and rule.filters == {"team": "billing"}


def test_missing_windows_skip_defaults_but_not_file_rules(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, "defaults: true\n"), ["1h"])
    assert [r.alertname for r in rules] == ["CxFirstResponseSlow"]
    assert set(rules.skipped) == {"CxNpsLow", "CxCsatLow", "CxFcrLow"}


# -- errors name the file, the line and the key --------------------------------

RULE_HEAD = """
rules:
  - alertname: Good
    metric: nps_score
    window: 24h
    op: "<"
    threshold: 0
"""


@pytest.mark.parametrize(
    ("body", "line", "needle"),
    [
        # unknown key (a typo) on line 9
        (
            RULE_HEAD + "  - alertname: Bad\n    metric: nps_score\n    thresold: 1\n",
            9,
            "'thresold'",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps\n    window: 24h\n    op: '<'\n    threshold: 0\n",
            3,
            "unknown metric 'nps'",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 12h\n    op: '<'\n    threshold: 0\n",
            4,
            "unknown window '12h'",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 24h\n    op: '=<'\n    threshold: 0\n",
            5,
            "'=<' is not one of",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 24h\n    op: '<'\n    threshold: low\n",
            6,
            "'low' is not a number",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 24h\n    op: '<'\n    threshold: true\n",
            6,
            "True is not a number",
        ),
        (
            RULE_HEAD
            + "  - alertname: Good\n    metric: ces_score\n    window: 7d\n    op: '<'\n    threshold: 3\n",
            7,
            "duplicate alertname 'Good' (first at line 2)",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 24h\n    threshold: 0\n",
            2,
            "missing required key 'op'",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 24h\n    op: '<'\n    threshold: 0\n    resolve_threshold: -5\n",
            7,
            "resolve_threshold -5 must be >= threshold 0",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 24h\n    op: '<'\n    threshold: 0\n    min_samples: 2.5\n",
            7,
            "min_samples: 2.5 is not an integer",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 24h\n    op: '<'\n    threshold: 0\n    for: soon\n",
            7,
            "X).for: 'soon' is not a duration",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 24h\n    op: '<'\n    threshold: 0\n    summary: '{value:.1q}'\n",
            7,
            "summary: bad template",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 24h\n    op: '<'\n    threshold: 0\n    summary: '{0}'\n",
            7,
            "positional field",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 24h\n    op: '<'\n    threshold: 0\n    filters: {window: 24h}\n",
            7,
            "'window' is not a dimension label name",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    window: 24h\n    op: '<'\n    threshold: 0\n    filters: {team: 'NOT valid!'}\n",
            7,
            "is not a valid dimension value",
        ),
        (
            "rules:\n  - alertname: X\n    metric: nps_score\n    metric: ces_score\n",
            4,
            "key 'metric' is given twice",
        ),
        (
            "rules:\n  - alertname: CxFcrLow\n    enabled: false\n    threshold: 3\n",
            4,
            "'threshold' has no effect",
        ),
        ("rules:\n  - alertname: CxDetractorResponse\n", 2, "'detractor:' section"),
        ("rules:\n  - alertname: 9lives\n", 2, "is not [A-Za-z_]"),
        ("rules:\n  alertname: X\n", 2, "expected a list of rules"),
        ("defaults: yes please\n", 1, "defaults: 'yes please' is not true or false"),
        ("default: false\n", 1, "unknown key 'default'"),
        ("detractor:\n  enabled: true\n  resolve_after: 1 day\n", 3, "detractor.resolve_after"),
        ("detractor:\n  colour: red\n", 2, "unknown key 'colour'"),
        (
            "rules:\n  - alertname: X\n    metric: [nps_score]\n    window: 24h\n"
            "    op: '<'\n    threshold: 0\n",
            3,
            "expected a single value",
        ),
        ("rules: [\n  {alertname: X,\n", 3, "not valid YAML"),
        ("- just\n- a list\n", 1, "expected a mapping"),
    ],
)
def test_errors_name_file_line_and_key(tmp_path: Path, body: str, line: int, needle: str) -> None:
    message = load_error(tmp_path, body)
    assert line_of(message) == line, message
    assert needle in message, message


def test_unknown_key_message_names_the_rule_and_the_known_keys(tmp_path: Path) -> None:
    message = load_error(
        tmp_path, RULE_HEAD + "  - alertname: Bad\n    metric: nps_score\n    thresold: 1\n"
    )
    assert "rules[1]" in message and "(Bad)" in message
    assert "known: alertname, metric" in message


def test_unreadable_file_is_a_rules_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yml")
    with pytest.raises(RulesError, match=r"nope\.yml: cannot read"):
        load_rules(missing, WINDOWS)


def test_ruleset_iterates_its_rules() -> None:
    rs = RuleSet()
    assert list(rs) == list(DEFAULT_RULES) and len(rs) == 4
    assert rs.get("CxCsatLow") is DEFAULT_RULES[1]
    assert rs.get("Nope") is None


def test_templates_with_format_specs_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        defaults: false
        rules:
          - alertname: A
            metric: csat_ratio
            window: 24h
            op: "<"
            threshold: 0.7
            summary: "{value:.1%} of {sample_size:d} on {team} ({dims})"
        detractor:
          description: "{score:d}/10 {comment!r} {ticket_id}"
        """,
    )
    rules = load_rules(path, WINDOWS)
    rule = rules.get("A")
    assert rule is not None
    fields = rule.template_fields({"team": "billing"}, 0.5, 40)
    assert render_template(rule.summary, fields) == "50.0% of 40 on billing (team=billing)"
