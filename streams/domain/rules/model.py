"""The rule model: a threshold rule and the detractor alert's settings.

Every check of a rule's fields lives here, once. Rules built in code (the
defaults, tests) and rules read from a file go through the same
``__post_init__``; the loader only reads YAML types and turns the
``FieldError`` raised here into ``FILE:LINE`` (see ``loader``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from streams.domain.configfile import FieldError, check_filters
from streams.domain.model import US_PER_S, WindowSnapshot
from streams.domain.rules.metrics import (
    CONFIDENCE_METRICS,
    METRICS,
    OPS,
    compare,
    metric_sample_size,
    metric_value,
)
from streams.domain.rules.templates import check_template, dims_text

__all__ = [
    "DETRACTOR_ALERTNAME",
    "DETRACTOR_FIELDS",
    "RESERVED_LABELS",
    "RULE_FIELDS",
    "Bounds",
    "DetractorConfig",
    "Rule",
    "check_alertname",
    "check_severity",
]

DETRACTOR_ALERTNAME: Final = "CxDetractorResponse"

#: Labels every alert sets itself; a filter or a dimension cannot use them.
RESERVED_LABELS: Final = frozenset({"alertname", "severity", "window", "event_id"})

#: Template fields of threshold rules (plus one per dimension label).
RULE_FIELDS: Final = (
    "alertname",
    "metric",
    "op",
    "value",
    "threshold",
    "resolve_threshold",
    "window",
    "sample_size",
    "min_samples",
    "severity",
    "dims",
    "lower",
    "upper",
)
#: Template fields of the detractor alert (plus one per dimension label).
DETRACTOR_FIELDS: Final = (
    "alertname",
    "severity",
    "score",
    "comment",
    "event_id",
    "ticket_id",
    "respondent_id",
    "occurred_at",
    "dims",
)

#: Numbers that stand in for the numeric template fields when a template is
#: checked (integers where the field is one, so "{sample_size:d}" passes).
RULE_SAMPLE_VALUES: Final[Mapping[str, float]] = {
    "value": 1.5,
    "threshold": 1.5,
    "resolve_threshold": 1.5,
    "sample_size": 1,
    "min_samples": 1,
    "lower": 1.5,
    "upper": 1.5,
}
DETRACTOR_SAMPLE_VALUES: Final[Mapping[str, float]] = {"score": 3}

_ALERTNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SEVERITY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class Bounds(NamedTuple):
    """A confidence interval of a window metric (``lower <= upper``)."""

    lower: float
    upper: float


def check_alertname(name: str) -> None:
    if not _ALERTNAME.match(name):
        raise FieldError("alertname", f"{name!r} is not [A-Za-z_][A-Za-z0-9_]*")


def check_severity(severity: str) -> None:
    if not _SEVERITY.match(severity):
        raise FieldError("severity", f"{severity!r} is not [a-z][a-z0-9_-]*")


def _check_templates(summary: str, description: str, numeric: Mapping[str, float]) -> None:
    for name, text in (("summary", summary), ("description", description)):
        problem = check_template(text, numeric)
        if problem is not None:
            raise FieldError(name, f"bad template: {problem}")


_DEFAULT_SUMMARY = "{alertname}: {metric} {value:g} {op} {threshold:g} over {window} ({dims})"
_DEFAULT_DESCRIPTION = (
    "{metric} over the last {window} is {value:g} from {sample_size} samples; "
    "the rule fires when it is {op} {threshold:g} with at least {min_samples} samples "
    "and resolves past {resolve_threshold:g}. Scope: {dims}."
)


@dataclass(frozen=True)
class Rule:
    """One threshold rule. ``filters`` is excluded from the hash (a dict).

    With ``confidence`` the rule compares a bound of the metric's confidence
    interval instead of its value: the upper bound for ``<``/``<=``, the lower
    bound for ``>``/``>=`` (contract 8.1), both to fire and to resolve.
    """

    alertname: str
    metric: str
    window: str
    op: str
    threshold: float
    resolve_threshold: float | None = None
    min_samples: int = 1
    for_s: float = 0.0
    severity: str = "warning"
    filters: dict[str, str] = field(default_factory=dict, hash=False)
    summary: str = _DEFAULT_SUMMARY
    description: str = _DEFAULT_DESCRIPTION
    confidence: bool = False

    def __post_init__(self) -> None:
        check_alertname(self.alertname)
        if self.metric not in METRICS:
            raise FieldError(
                "metric", f"unknown metric {self.metric!r} (known: {', '.join(METRICS)})"
            )
        if self.op not in OPS:
            raise FieldError("op", f"op {self.op!r} is not one of {', '.join(OPS)}")
        if not math.isfinite(self.threshold):
            raise FieldError("threshold", "threshold must be a finite number")
        if self.resolve_threshold is not None:
            self._check_hysteresis(self.resolve_threshold)
        if self.min_samples < 0:
            raise FieldError("min_samples", "min_samples must be >= 0")
        if not (math.isfinite(self.for_s) and self.for_s >= 0):
            raise FieldError("for", "for must be >= 0 seconds")
        check_severity(self.severity)
        check_filters(self.filters, RESERVED_LABELS)
        _check_templates(self.summary, self.description, RULE_SAMPLE_VALUES)
        if self.confidence and self.metric not in CONFIDENCE_METRICS:
            raise FieldError(
                "confidence",
                f"metric {self.metric!r} has no confidence interval "
                f"(confidence: true needs one of {', '.join(CONFIDENCE_METRICS)})",
            )

    def _check_hysteresis(self, resolve: float) -> None:
        if not math.isfinite(resolve):
            raise FieldError("resolve_threshold", "resolve_threshold must be a finite number")
        # Past the threshold on the breaching side would resolve an alert in
        # the very evaluation that fired it.
        if self.op in ("<", "<=") and resolve < self.threshold:
            raise FieldError(
                "resolve_threshold",
                f"resolve_threshold {resolve:g} must be >= threshold "
                f"{self.threshold:g} for op {self.op!r}",
            )
        if self.op in (">", ">=") and resolve > self.threshold:
            raise FieldError(
                "resolve_threshold",
                f"resolve_threshold {resolve:g} must be <= threshold "
                f"{self.threshold:g} for op {self.op!r}",
            )

    @property
    def resolve_at(self) -> float:
        """The threshold a firing alert must cross back past to resolve."""
        return self.threshold if self.resolve_threshold is None else self.resolve_threshold

    @property
    def for_us(self) -> int:
        return round(self.for_s * US_PER_S)

    def applies_to(self, labels: Mapping[str, str]) -> bool:
        """Whether a dims key (its labels) is in this rule's scope."""
        return all(labels.get(k) == v for k, v in self.filters.items())

    def value(self, snap: WindowSnapshot) -> float | None:
        return metric_value(self.metric, snap)

    def sample_size(self, snap: WindowSnapshot) -> int:
        return metric_sample_size(self.metric, snap)

    def judged(self, value: float | None, bounds: Bounds | None) -> float | None:
        """The number the rule compares: the value, or with ``confidence``
        the bound on the far side of the threshold (None when there is none:
        then a confidence rule neither fires nor stays firing)."""
        if not self.confidence:
            return value
        if bounds is None:
            return None
        return bounds.upper if self.op in ("<", "<=") else bounds.lower

    def breaches(self, value: float) -> bool:
        """The firing condition on the value alone (samples are checked apart)."""
        return compare(self.op, value, self.threshold)

    def recovered(self, value: float) -> bool:
        """Whether a firing alert's value has crossed back past resolve_threshold."""
        return not compare(self.op, value, self.resolve_at)

    def template_fields(
        self,
        labels: Mapping[str, str],
        value: float | None,
        sample_size: int,
        bounds: Bounds | None = None,
    ) -> dict[str, Any]:
        return {
            **labels,
            "alertname": self.alertname,
            "metric": METRICS[self.metric],
            "op": self.op,
            "value": value,
            "threshold": self.threshold,
            "resolve_threshold": self.resolve_at,
            "window": self.window,
            "sample_size": sample_size,
            "min_samples": self.min_samples,
            "severity": self.severity,
            "dims": dims_text(labels),
            "lower": None if bounds is None else bounds.lower,
            "upper": None if bounds is None else bounds.upper,
        }


@dataclass(frozen=True)
class DetractorConfig:
    """The per-response detractor alert (CxDetractorResponse)."""

    enabled: bool = True
    severity: str = "info"
    resolve_after_s: int = 86_400
    #: Open detractor alerts kept per dims key; beyond it the oldest resolves
    #: early, so a flood of comments cannot grow a table value without bound.
    max_open: int = 500
    summary: str = "Detractor ({score}/10) on {dims}: {comment}"
    description: str = (
        "An NPS response scored {score} with a comment; follow up with the customer. "
        "Ticket: {ticket_id}. Respondent: {respondent_id}. Answered at {occurred_at}."
    )
    alertname: str = DETRACTOR_ALERTNAME

    def __post_init__(self) -> None:
        check_severity(self.severity)
        if self.resolve_after_s < 1:
            raise FieldError("resolve_after", "must be whole seconds, >= 1s")
        if self.max_open < 1:
            raise FieldError("max_open", f"{self.max_open} is below the minimum of 1")
        _check_templates(self.summary, self.description, DETRACTOR_SAMPLE_VALUES)

    @property
    def resolve_after_us(self) -> int:
        return self.resolve_after_s * US_PER_S
