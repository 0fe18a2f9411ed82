"""The worker's alerter with a confidence rule over a real window state."""

from __future__ import annotations

from streams.domain.confidence import WindowBounds
from streams.domain.model import DEFAULT_WINDOWS, Observation
from streams.domain.rules import parse_rules
from streams.domain.windows import DimsState, obs_id
from streams.pipeline.alerts import RuleAlerter

S = 1_000_000
NOW = 1_800_000_000 * S
DIMS = ("email", "billing")
RULES = """
defaults: false
rules:
  - {alertname: NpsBelowZero, metric: nps_score, window: 24h, op: "<", threshold: 0,
     min_samples: 30}
  - {alertname: NpsSurelyBelowZero, metric: nps_score, window: 24h, op: "<", threshold: 0,
     min_samples: 30, confidence: true}
"""


def state_with(promoters: int, passives: int, detractors: int) -> DimsState:
    state = DimsState.new(DIMS, DEFAULT_WINDOWS)
    scores = [10] * promoters + [8] * passives + [3] * detractors
    for i, score in enumerate(scores):
        state.apply(Observation("nps", DIMS, NOW - 60 * S, score, obs_id(0, i, 0)), NOW)
    return state


def fired(state: DimsState) -> dict[str, dict[str, str]]:
    alerter = RuleAlerter(
        parse_rules(RULES, "rules.yml", [w.name for w in DEFAULT_WINDOWS]),
        ("channel", "team"),
        bounds=WindowBounds(0.95),
    )
    return {
        doc["labels"]["alertname"]: doc["annotations"]
        for doc in alerter.evaluate(DIMS, state, NOW)
        if doc["status"] == "firing"
    }


def test_a_small_team_below_zero_by_chance_pages_nobody() -> None:
    # 31 responses, NPS -3.2, 95 % interval about -30 to +24.
    assert set(fired(state_with(10, 10, 11))) == {"NpsBelowZero"}


def test_a_clear_drop_fires_with_both_bounds() -> None:
    alerts = fired(state_with(5, 5, 30))  # NPS -62.5, the upper bound is well below 0
    assert set(alerts) == {"NpsBelowZero", "NpsSurelyBelowZero"}
    sure = alerts["NpsSurelyBelowZero"]
    assert float(sure["lower_bound"]) < float(sure["upper_bound"]) < 0
