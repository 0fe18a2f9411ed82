"""The contract's default rules (section 6), exactly, and the rule set."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from streams.domain.rules.model import DetractorConfig, Rule
from streams.domain.rules.templates import dims_text

__all__ = [
    "DEFAULT_DETRACTOR",
    "DEFAULT_RULES",
    "DEFAULT_SLA_AT_RISK",
    "RuleSet",
    "SlaAtRiskRule",
    "default_ruleset",
]

DEFAULT_DETRACTOR: Final = DetractorConfig()

#: The contract's default rules (section 6), exactly.
DEFAULT_RULES: Final[tuple[Rule, ...]] = (
    Rule(
        alertname="CxNpsLow",
        metric="nps_score",
        window="24h",
        op="<",
        threshold=0.0,
        min_samples=30,
        severity="warning",
        summary="NPS {value:.1f} over {window} is below {threshold:g} ({dims})",
        description=(
            "Net Promoter Score over the last {window} is {value:.1f} from {sample_size} "
            "responses (fires below {threshold:g} with at least {min_samples}). Scope: {dims}."
        ),
    ),
    Rule(
        alertname="CxCsatLow",
        metric="csat_ratio",
        window="24h",
        op="<",
        threshold=0.70,
        min_samples=30,
        severity="warning",
        summary="CSAT {value:.0%} over {window} is below {threshold:.0%} ({dims})",
        description=(
            "{value:.1%} of {sample_size} CSAT responses over the last {window} scored 4 or 5 "
            "(fires below {threshold:.0%} with at least {min_samples}). Scope: {dims}."
        ),
    ),
    Rule(
        alertname="CxFirstResponseSlow",
        metric="first_response_p90",
        window="1h",
        op=">",
        threshold=14_400.0,
        min_samples=20,
        severity="critical",
        summary="First-response p90 {value:.0f}s over {window} is above {threshold:.0f}s ({dims})",
        description=(
            "90 % of the {sample_size} first agent replies in the last {window} came within "
            "{value:.0f} s; the target is {threshold:.0f} s (4 h), checked with at least "
            "{min_samples} tickets. Scope: {dims}."
        ),
    ),
    Rule(
        alertname="CxFcrLow",
        metric="fcr_ratio",
        window="7d",
        op="<",
        threshold=0.50,
        min_samples=50,
        severity="warning",
        summary="FCR {value:.0%} over {window} is below {threshold:.0%} ({dims})",
        description=(
            "{value:.1%} of {sample_size} tickets first resolved in the last {window} were "
            "resolved at first contact (fires below {threshold:.0%} with at least "
            "{min_samples}). Scope: {dims}."
        ),
    ),
)


@dataclass(frozen=True)
class RuleSet:
    """The rules a worker evaluates. Iterating yields the threshold rules.

    ``skipped`` names built-in rules left out because their window is not
    configured (e.g. ``--windows 1h,7d`` has no 24h for CxNpsLow).
    """

    rules: tuple[Rule, ...] = DEFAULT_RULES
    detractor: DetractorConfig = DEFAULT_DETRACTOR
    source: str = "<built-in>"
    skipped: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, alertname: str) -> Rule | None:
        return next((r for r in self.rules if r.alertname == alertname), None)


def default_ruleset(window_names: Sequence[str]) -> RuleSet:
    """The built-in rules whose window exists among ``window_names``."""
    kept = tuple(r for r in DEFAULT_RULES if r.window in window_names)
    skipped = tuple(r.alertname for r in DEFAULT_RULES if r.window not in window_names)
    return RuleSet(rules=kept, skipped=skipped)


@dataclass(frozen=True)
class SlaAtRiskRule:
    """The default ``CxSlaAtRisk`` alert (contract 8.3), on whenever the
    schedules file has SLA policies; evaluated by ``sla_alerts``."""

    alertname: str = "CxSlaAtRisk"
    severity: str = "warning"

    def annotations(self, labels: Mapping[str, str], target: str, n: int) -> dict[str, str]:
        scope = dims_text(labels)
        return {
            "summary": f"{n} pending {target} SLA target(s) at risk ({scope})",
            "description": (
                f"{n} open ticket(s) have a {target} target due within the warning horizon "
                f"and no {'agent reply' if target == 'first_reply' else 'resolution'} yet. "
                f"Scope: {scope}."
            ),
        }


DEFAULT_SLA_AT_RISK: Final = SlaAtRiskRule()
