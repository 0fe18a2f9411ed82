"""Alert rules: the rule model, the built-in defaults and the YAML rules file.

A threshold rule watches one metric of one rolling window for every dims key
(``channel``/``team`` by default) and fires when the metric compares with a
threshold for long enough, given enough samples. The detractor rule is
different: it fires once per NPS response of 0-6 that carries a comment.

Rules file (``--rules FILE`` / ``CX_RULES``)
============================================

.. code-block:: yaml

    # Optional. false drops the built-in rules (CxNpsLow, CxCsatLow,
    # CxFirstResponseSlow, CxFcrLow); otherwise the rules below are added to
    # them, and a rule with a built-in's alertname replaces that built-in.
    defaults: true

    rules:
      - alertname: CxNpsLowChat        # required; [A-Za-z_][A-Za-z0-9_]*, unique
        metric: nps_score              # required; see METRICS below
        window: 24h                    # required; one of the worker's windows
        op: "<"                        # required; <, <=, > or >=
        threshold: 10                  # required; a finite number
        resolve_threshold: 15          # optional hysteresis; default = threshold
        min_samples: 30                # optional; default 1
        for: 10m                       # optional; 30s, 10m, 2h, 1d or seconds; default 0
        severity: warning              # optional; default warning
        filters: {channel: chat}       # optional; only dims keys with these labels
        summary: "NPS {value:.1f} on {channel}"   # optional templates, see below
        description: "..."
      - alertname: CxFcrLow            # a built-in switched off
        enabled: false

    # Optional: the per-response detractor alert (CxDetractorResponse).
    detractor:
      enabled: true                    # default true
      severity: info                   # default info
      resolve_after: 24h               # default 24h
      max_open: 500                    # open detractor alerts kept per dims key
      summary: "..."                   # fields: see DETRACTOR_FIELDS
      description: "..."

``metric`` is one of ``nps_score``, ``csat_ratio``, ``ces_score``,
``fcr_ratio``, ``first_response_p50``/``_p90``/``_p99`` and
``resolution_p50``/``_p90``/``_p99`` (seconds). The sample size compared with
``min_samples`` is the window's responses for NPS, CSAT and CES, its
first-resolved tickets for FCR and the summary's count for durations.

Hysteresis: a firing alert resolves only when the value no longer satisfies
``op`` against ``resolve_threshold`` (for ``<`` that is ``value >=
resolve_threshold``), so a value wobbling around the threshold does not flap.
``resolve_threshold`` must therefore lie on the healthy side of (or equal to)
``threshold``.

Templates are Python ``str.format`` strings. Threshold rules may use
``{alertname} {metric} {op} {value} {threshold} {resolve_threshold} {window}
{sample_size} {min_samples} {severity} {dims}`` (``dims`` reads ``channel=chat,
team=billing``) and every dimension label (``{channel}``, ``{team}``). A
format spec on ``value`` is safe even when there is no value (it reads
``n/a``). Templates are checked when the file is loaded.

A rule that replaces a built-in is complete in itself (it inherits nothing
from the built-in). An enabled-false entry takes only ``alertname`` and
``enabled``. A built-in whose window the worker does not have (``--windows``)
is left out and named in ``RuleSet.skipped``; a file rule naming an unknown
window is an error. Filters name dimension labels; a filter on a label the
worker does not have never matches. How rules fire and resolve (pending,
``for``, minimum samples, draining windows) is described in
``streams.domain.alerting``.
Every error (unknown key, unknown metric or window, bad op, non-numeric
threshold, duplicate alertname, ...) raises ``RulesError`` naming the file,
the line and the key.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from streams.domain.model import US_PER_S, WindowSnapshot
from streams.errors import RulesError

__all__ = [
    "DEFAULT_DETRACTOR",
    "DEFAULT_RULES",
    "DETRACTOR_ALERTNAME",
    "DETRACTOR_FIELDS",
    "METRICS",
    "OPS",
    "RESERVED_LABELS",
    "RULE_FIELDS",
    "DetractorConfig",
    "Rule",
    "RuleSet",
    "RulesError",
    "default_ruleset",
    "load_rules",
    "metric_sample_size",
    "metric_value",
    "render_template",
]

#: Metrics a threshold rule can watch, with the words used in default texts.
METRICS: Final[Mapping[str, str]] = {
    "nps_score": "NPS",
    "csat_ratio": "CSAT ratio",
    "ces_score": "CES score",
    "fcr_ratio": "FCR ratio",
    "first_response_p50": "first-response p50 (s)",
    "first_response_p90": "first-response p90 (s)",
    "first_response_p99": "first-response p99 (s)",
    "resolution_p50": "resolution p50 (s)",
    "resolution_p90": "resolution p90 (s)",
    "resolution_p99": "resolution p99 (s)",
}
OPS: Final = ("<", "<=", ">", ">=")
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

_QUANTILES: Final = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
_ALERTNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SEVERITY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_DIM_VALUE = re.compile(r"^[a-z0-9][a-z0-9 _./:-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
_UNIT_US: Final = {
    "ms": 1_000,
    "s": US_PER_S,
    "m": 60 * US_PER_S,
    "h": 3600 * US_PER_S,
    "d": 86_400 * US_PER_S,
}


# ---------------------------------------------------------------------------
# Metric extraction (shared with the alert state machine)
# ---------------------------------------------------------------------------


def metric_value(metric: str, snap: WindowSnapshot) -> float | None:
    """The metric's value in a window snapshot; None while it holds no sample."""
    if metric == "nps_score":
        return snap.nps_score
    if metric == "csat_ratio":
        return snap.csat_ratio
    if metric == "ces_score":
        return snap.ces_score
    if metric == "fcr_ratio":
        return snap.fcr_ratio
    family, _, quantile = metric.rpartition("_")
    summary = snap.first_response if family == "first_response" else snap.resolution
    if summary.count == 0:
        return None
    return summary.quantiles.get(_QUANTILES[quantile])


def metric_sample_size(metric: str, snap: WindowSnapshot) -> int:
    """How many observations the metric's value rests on (compared with min_samples)."""
    if metric == "nps_score":
        return snap.nps_responses
    if metric == "csat_ratio":
        return snap.csat_responses
    if metric == "ces_score":
        return snap.ces_count
    if metric == "fcr_ratio":
        return snap.fcr_tickets
    if metric.startswith("first_response_"):
        return snap.first_response.count
    return snap.resolution.count


def _compare(op: str, value: float, threshold: float) -> bool:
    if op == "<":
        return value < threshold
    if op == "<=":
        return value <= threshold
    if op == ">":
        return value > threshold
    return value >= threshold


# ---------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------


class _Formatter(string.Formatter):
    """str.format that never fails on a missing field or a missing value:
    an alert must still go out when its text is imperfect."""

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, str) and key in kwargs:
            return kwargs[key]
        return "{" + str(key) + "}"

    def format_field(self, value: Any, format_spec: str) -> Any:
        if value is None:
            return "n/a"  # e.g. {value:.1f} once a window has drained
        if isinstance(value, str) and value.startswith("{") and format_spec:
            return value  # an unknown field, kept as written
        return super().format_field(value, format_spec)


_FORMATTER: Final = _Formatter()


def render_template(template: str, fields: Mapping[str, Any]) -> str:
    """Render a summary/description template; falls back to the raw template."""
    try:
        return _FORMATTER.vformat(template, (), fields)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError):
        return template


def _check_template(template: str, numeric: Mapping[str, float]) -> str | None:
    """Render with sample values; returns the problem, or None when it renders.

    Unlike ``render_template`` this is strict: the file is where a broken
    format spec should be reported, not every alert it would garble.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return str(exc)
    sample: dict[str, Any] = {}
    for _, name, _, _ in parsed:
        if name is None:
            continue
        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        if root == "" or root.isdigit():
            return f"positional field {{{name}}}: use a named field"
        sample[root] = numeric.get(root, "x")
    try:
        template.format(**sample)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _dims_text(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items())


# ---------------------------------------------------------------------------
# The rule model
# ---------------------------------------------------------------------------

_DEFAULT_SUMMARY = "{alertname}: {metric} {value:g} {op} {threshold:g} over {window} ({dims})"
_DEFAULT_DESCRIPTION = (
    "{metric} over the last {window} is {value:g} from {sample_size} samples; "
    "the rule fires when it is {op} {threshold:g} with at least {min_samples} samples "
    "and resolves past {resolve_threshold:g}. Scope: {dims}."
)


@dataclass(frozen=True)
class Rule:
    """One threshold rule. ``filters`` is excluded from the hash (a dict)."""

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

    def __post_init__(self) -> None:
        # The loader reports these with a file and line; this guards rules
        # built in code (tests, defaults) against the same mistakes.
        if not _ALERTNAME.match(self.alertname):
            raise ValueError(f"alertname {self.alertname!r} is not [A-Za-z_][A-Za-z0-9_]*")
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r} (known: {', '.join(METRICS)})")
        if self.op not in OPS:
            raise ValueError(f"op {self.op!r} is not one of {', '.join(OPS)}")
        if not math.isfinite(self.threshold):
            raise ValueError("threshold must be a finite number")
        if self.resolve_threshold is not None:
            if not math.isfinite(self.resolve_threshold):
                raise ValueError("resolve_threshold must be a finite number")
            # Past the threshold on the breaching side would resolve an
            # alert in the very evaluation that fired it.
            if self.op in ("<", "<=") and self.resolve_threshold < self.threshold:
                raise ValueError(
                    f"resolve_threshold {self.resolve_threshold:g} must be >= threshold "
                    f"{self.threshold:g} for op {self.op!r}"
                )
            if self.op in (">", ">=") and self.resolve_threshold > self.threshold:
                raise ValueError(
                    f"resolve_threshold {self.resolve_threshold:g} must be <= threshold "
                    f"{self.threshold:g} for op {self.op!r}"
                )
        if self.min_samples < 0:
            raise ValueError("min_samples must be >= 0")
        if not (math.isfinite(self.for_s) and self.for_s >= 0):
            raise ValueError("for must be >= 0 seconds")
        if not _SEVERITY.match(self.severity):
            raise ValueError(f"severity {self.severity!r} is not [a-z][a-z0-9_-]*")
        for key in self.filters:
            if key in RESERVED_LABELS:
                raise ValueError(f"filters cannot use the reserved label {key!r}")

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

    def breaches(self, value: float) -> bool:
        """The firing condition on the value alone (samples are checked apart)."""
        return _compare(self.op, value, self.threshold)

    def recovered(self, value: float) -> bool:
        """Whether a firing alert's value has crossed back past resolve_threshold."""
        return not _compare(self.op, value, self.resolve_at)

    def template_fields(
        self, labels: Mapping[str, str], value: float | None, sample_size: int
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
            "dims": _dims_text(labels),
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

    @property
    def resolve_after_us(self) -> int:
        return self.resolve_after_s * US_PER_S


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


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

_TOP_KEYS: Final = ("defaults", "rules", "detractor")
#: Numbers that stand in for the numeric template fields when a file is
#: checked (integers where the field is one, so "{sample_size:d}" passes).
_RULE_SAMPLE_VALUES: Final[Mapping[str, float]] = {
    "value": 1.5,
    "threshold": 1.5,
    "resolve_threshold": 1.5,
    "sample_size": 1,
    "min_samples": 1,
}
_RULE_KEYS: Final = (
    "alertname",
    "metric",
    "window",
    "op",
    "threshold",
    "resolve_threshold",
    "min_samples",
    "for",
    "severity",
    "filters",
    "summary",
    "description",
    "enabled",
)
_RULE_REQUIRED: Final = ("alertname", "metric", "window", "op", "threshold")
_DETRACTOR_KEYS: Final = (
    "enabled",
    "severity",
    "resolve_after",
    "max_open",
    "summary",
    "description",
)


class _Loader:
    """Walks the composed YAML node tree so every error can name its line."""

    def __init__(self, path: str, window_names: Sequence[str]) -> None:
        self.path = path
        self.window_names = tuple(window_names)
        self._constructor = yaml.constructor.SafeConstructor()

    def fail(self, node: yaml.Node | None, where: str, problem: str) -> RulesError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return RulesError(f"{self.path}{line}: {where}: {problem}")

    def scalar(self, node: yaml.Node, where: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, where, "expected a single value, not a list or mapping")
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self.fail(node, where, f"unreadable value: {exc}") from None

    def mapping(
        self, node: yaml.Node, where: str, known: Sequence[str] | None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """key -> (key node, value node); unknown and repeated keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, "expected a mapping (key: value)")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, where)
            if not isinstance(key, str):
                raise self.fail(key_node, where, f"key {key!r} is not a string")
            if key == "<<":
                raise self.fail(key_node, where, "merge keys (<<) are not supported")
            if known is not None and key not in known:
                raise self.fail(key_node, where, f"unknown key {key!r} (known: {', '.join(known)})")
            if key in out:
                raise self.fail(key_node, where, f"key {key!r} is given twice")
            out[key] = (key_node, value_node)
        return out

    def number(self, node: yaml.Node, where: str) -> float:
        value = self.scalar(node, where)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, where, f"{value!r} is not a number")
        if not math.isfinite(value):
            raise self.fail(node, where, f"{value!r} is not a finite number")
        return float(value)

    def integer(self, node: yaml.Node, where: str, minimum: int) -> int:
        value = self.scalar(node, where)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(node, where, f"{value!r} is not an integer")
        if value < minimum:
            raise self.fail(node, where, f"{value} is below the minimum of {minimum}")
        return value

    def boolean(self, node: yaml.Node, where: str) -> bool:
        value = self.scalar(node, where)
        if not isinstance(value, bool):
            raise self.fail(node, where, f"{value!r} is not true or false")
        return value

    def text(self, node: yaml.Node, where: str) -> str:
        value = self.scalar(node, where)
        if not isinstance(value, str):
            raise self.fail(node, where, f"{value!r} is not a string (quote it)")
        return value

    def duration_us(self, node: yaml.Node, where: str) -> int:
        value = self.scalar(node, where)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not (math.isfinite(value) and value >= 0):
                raise self.fail(node, where, f"{value!r} is not a duration >= 0")
            return round(value * US_PER_S)
        match = _DURATION.match(value) if isinstance(value, str) else None
        if match is None:
            raise self.fail(
                node, where, f"{value!r} is not a duration like 30s, 10m, 2h, 1d or seconds"
            )
        return int(match.group(1)) * _UNIT_US[match.group(2)]

    def template(self, node: yaml.Node, where: str, numeric: Mapping[str, float]) -> str:
        text = self.text(node, where)
        problem = _check_template(text, numeric)
        if problem is not None:
            raise self.fail(node, where, f"bad template: {problem}")
        return text

    # -- sections -------------------------------------------------------------

    def rule(self, node: yaml.Node, where: str) -> tuple[str, yaml.Node, Rule | None]:
        """(alertname, its node, the rule or None for ``enabled: false``)."""
        where = f"{where}{_name_hint(node)}"
        keys = self.mapping(node, where, _RULE_KEYS)
        if "alertname" not in keys:
            raise self.fail(node, where, "missing required key 'alertname'")
        name_node = keys["alertname"][1]
        alertname = self.text(name_node, f"{where}.alertname")
        if not _ALERTNAME.match(alertname):
            raise self.fail(
                name_node, f"{where}.alertname", f"{alertname!r} is not [A-Za-z_][A-Za-z0-9_]*"
            )
        if alertname == DETRACTOR_ALERTNAME:
            raise self.fail(
                name_node,
                f"{where}.alertname",
                f"{DETRACTOR_ALERTNAME} is configured in the 'detractor:' section",
            )
        enabled = True
        if "enabled" in keys:
            enabled = self.boolean(keys["enabled"][1], f"{where}.enabled")
        if not enabled:
            extra = sorted(set(keys) - {"alertname", "enabled"})
            if extra:
                raise self.fail(
                    keys[extra[0]][0], where, f"key {extra[0]!r} has no effect with enabled: false"
                )
            return alertname, name_node, None
        for required in _RULE_REQUIRED:
            if required not in keys:
                raise self.fail(node, where, f"missing required key {required!r}")

        def val(key: str) -> yaml.Node:
            return keys[key][1]

        metric = self.text(val("metric"), f"{where}.metric")
        if metric not in METRICS:
            raise self.fail(
                val("metric"),
                f"{where}.metric",
                f"unknown metric {metric!r} (known: {', '.join(METRICS)})",
            )
        window = self.scalar(val("window"), f"{where}.window")
        if str(window) not in self.window_names:
            raise self.fail(
                val("window"),
                f"{where}.window",
                f"unknown window {window!r} (configured: {', '.join(self.window_names)})",
            )
        op = self.text(val("op"), f"{where}.op")
        if op not in OPS:
            raise self.fail(val("op"), f"{where}.op", f"{op!r} is not one of {', '.join(OPS)}")
        threshold = self.number(val("threshold"), f"{where}.threshold")
        args: dict[str, Any] = {
            "alertname": alertname,
            "metric": metric,
            "window": str(window),
            "op": op,
            "threshold": threshold,
        }
        if "resolve_threshold" in keys:
            args["resolve_threshold"] = self.number(
                val("resolve_threshold"), f"{where}.resolve_threshold"
            )
        if "min_samples" in keys:
            args["min_samples"] = self.integer(val("min_samples"), f"{where}.min_samples", 0)
        if "for" in keys:
            args["for_s"] = self.duration_us(val("for"), f"{where}.for") / US_PER_S
        if "severity" in keys:
            severity = self.text(val("severity"), f"{where}.severity")
            if not _SEVERITY.match(severity):
                raise self.fail(
                    val("severity"), f"{where}.severity", f"{severity!r} is not [a-z][a-z0-9_-]*"
                )
            args["severity"] = severity
        if "filters" in keys:
            args["filters"] = self.filters(val("filters"), f"{where}.filters")
        numeric = _RULE_SAMPLE_VALUES
        for key in ("summary", "description"):
            if key in keys:
                args[key] = self.template(val(key), f"{where}.{key}", numeric)
        try:
            rule = Rule(**args)
        except ValueError as exc:
            # Cross-field checks (hysteresis direction): blame the resolve line.
            culprit = val("resolve_threshold") if "resolve_threshold" in keys else node
            raise self.fail(culprit, where, str(exc)) from None
        return alertname, name_node, rule

    def filters(self, node: yaml.Node, where: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, (key_node, value_node) in self.mapping(node, where, None).items():
            if not _LABEL.match(key) or key in RESERVED_LABELS:
                raise self.fail(key_node, where, f"{key!r} is not a dimension label name")
            raw = self.scalar(value_node, f"{where}.{key}")
            # Dimension values are normalised the same way on input events.
            value = str(raw).strip().lower() if not isinstance(raw, bool | None) else None
            if value is None or not _DIM_VALUE.match(value):
                raise self.fail(
                    value_node, f"{where}.{key}", f"{raw!r} is not a valid dimension value"
                )
            out[key] = value
        return out

    def detractor(self, node: yaml.Node, where: str) -> DetractorConfig:
        keys = self.mapping(node, where, _DETRACTOR_KEYS)
        args: dict[str, Any] = {}
        if "enabled" in keys:
            args["enabled"] = self.boolean(keys["enabled"][1], f"{where}.enabled")
        if "severity" in keys:
            sev_node = keys["severity"][1]
            severity = self.text(sev_node, f"{where}.severity")
            if not _SEVERITY.match(severity):
                raise self.fail(sev_node, f"{where}.severity", f"{severity!r} is not [a-z]+")
            args["severity"] = severity
        if "resolve_after" in keys:
            ra_node = keys["resolve_after"][1]
            us = self.duration_us(ra_node, f"{where}.resolve_after")
            if us < US_PER_S or us % US_PER_S:
                raise self.fail(ra_node, f"{where}.resolve_after", "must be whole seconds, >= 1s")
            args["resolve_after_s"] = us // US_PER_S
        if "max_open" in keys:
            args["max_open"] = self.integer(keys["max_open"][1], f"{where}.max_open", 1)
        for key in ("summary", "description"):
            if key in keys:
                args[key] = self.template(keys[key][1], f"{where}.{key}", {"score": 3})
        return DetractorConfig(**args)

    def load(self, text: str) -> RuleSet:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            raise RulesError(f"{self.path}{line}: not valid YAML: {exc.problem}") from None
        except yaml.YAMLError as exc:
            raise RulesError(f"{self.path}: not valid YAML: {exc}") from None
        if root is None:  # an empty file: the built-in rules
            return self._result(True, [], DEFAULT_DETRACTOR)
        top = self.mapping(root, "top level", _TOP_KEYS)
        use_defaults = True
        if "defaults" in top:
            use_defaults = self.boolean(top["defaults"][1], "defaults")
        entries: list[tuple[str, Rule | None]] = []
        if "rules" in top:
            rules_node = top["rules"][1]
            if isinstance(rules_node, yaml.ScalarNode) and rules_node.tag.endswith(":null"):
                rules_node = yaml.SequenceNode("tag:yaml.org,2002:seq", [])
            if not isinstance(rules_node, yaml.SequenceNode):
                raise self.fail(rules_node, "rules", "expected a list of rules")
            seen: dict[str, int] = {}
            for index, item in enumerate(rules_node.value):
                name, name_node, rule = self.rule(item, f"rules[{index}]")
                if name in seen:
                    raise self.fail(
                        name_node,
                        f"rules[{index}].alertname",
                        f"duplicate alertname {name!r} (first at line {seen[name]})",
                    )
                seen[name] = name_node.start_mark.line + 1
                entries.append((name, rule))
        detractor = DEFAULT_DETRACTOR
        if "detractor" in top:
            detractor = self.detractor(top["detractor"][1], "detractor")
        return self._result(use_defaults, entries, detractor)

    def _result(
        self,
        use_defaults: bool,
        entries: list[tuple[str, Rule | None]],
        detractor: DetractorConfig,
    ) -> RuleSet:
        named = dict(entries)
        rules: list[Rule] = []
        skipped: list[str] = []
        if use_defaults:
            for rule in DEFAULT_RULES:
                if rule.alertname in named:
                    continue  # replaced or switched off by the file
                if rule.window in self.window_names:
                    rules.append(rule)
                else:
                    skipped.append(rule.alertname)
        rules.extend(rule for _, rule in entries if rule is not None)
        return RuleSet(
            rules=tuple(rules), detractor=detractor, source=self.path, skipped=tuple(skipped)
        )


def _name_hint(node: yaml.Node) -> str:
    """`` (Name)`` when a rule mapping names itself, so every message about
    the rule says which one it is, even before its keys are checked."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if (
                isinstance(key_node, yaml.ScalarNode)
                and key_node.value == "alertname"
                and isinstance(value_node, yaml.ScalarNode)
                and _ALERTNAME.match(value_node.value)
            ):
                return f" ({value_node.value})"
    return ""


def load_rules(path: str, window_names: Sequence[str]) -> RuleSet:
    """Read a rules file (format in this module's docstring).

    Raises ``RulesError`` whose message starts with ``FILE:LINE:`` and names
    the offending key.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path}: cannot read the rules file: {exc}") from None
    return _Loader(path, window_names).load(text)
