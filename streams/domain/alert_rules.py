"""Alert rules: the built-in defaults and the YAML rules file.

Format (``--rules FILE``)::

    defaults: true            # keep the built-in rules (default); false drops them
    rules:                    # added to the defaults; the same alertname replaces one
      - alertname: CxNpsLowBilling
        metric: nps_score     # nps_score csat_ratio ces_score fcr_ratio
                              # first_response_p50/p90/p99 resolution_p50/p90/p99 (seconds)
                              # first_response_mean resolution_mean (seconds)
        window: 24h           # one of the configured windows
        op: "<"               # < <= > >=
        threshold: 0
        resolve_threshold: 10 # optional hysteresis: a firing alert resolves only once
                              # the value no longer satisfies `op resolve_threshold`
        min_samples: 30       # responses (nps/csat/ces), tickets (fcr), durations
        for: 5m               # optional: how long the condition must hold first
        severity: warning
        filters: {team: billing}  # optional: only keys whose labels match
      - alertname: CxFcrLow   # switch a built-in rule off
        enabled: false
        summary: "NPS {value:.0f} on {channel}/{team}"
        description: "24h NPS is {value:.1f} over {sample_size} responses (threshold {threshold})."
    detractor:                # the per-response CxDetractorResponse alert
      enabled: true
      severity: info
      resolve_after: 24h

Templates are Python ``str.format`` strings with ``alertname``, ``metric``,
``op``, ``value``, ``threshold``, ``window``, ``sample_size``, ``dims``
(e.g. ``channel=chat, team=billing``) and every dimension label.
Errors name the file, the line and the key.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from streams.domain.model import WindowSnapshot
from streams.errors import RulesError

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _metric_nps(s: WindowSnapshot) -> tuple[float | None, int]:
    return s.nps_score, s.nps_responses


def _metric_csat(s: WindowSnapshot) -> tuple[float | None, int]:
    return s.csat_ratio, s.csat_responses


def _metric_ces(s: WindowSnapshot) -> tuple[float | None, int]:
    return s.ces_score, s.ces_count


def _metric_fcr(s: WindowSnapshot) -> tuple[float | None, int]:
    return s.fcr_ratio, s.fcr_tickets


def _quantile(attr: str, q: float) -> Callable[[WindowSnapshot], tuple[float | None, int]]:
    def read(s: WindowSnapshot) -> tuple[float | None, int]:
        summary = getattr(s, attr)
        return summary.quantiles.get(q), summary.count

    return read


def _mean(attr: str) -> Callable[[WindowSnapshot], tuple[float | None, int]]:
    def read(s: WindowSnapshot) -> tuple[float | None, int]:
        summary = getattr(s, attr)
        return (summary.sum_s / summary.count if summary.count else None), summary.count

    return read


#: metric name -> (value, sample size) of a window snapshot
METRICS: dict[str, Callable[[WindowSnapshot], tuple[float | None, int]]] = {
    "nps_score": _metric_nps,
    "csat_ratio": _metric_csat,
    "ces_score": _metric_ces,
    "fcr_ratio": _metric_fcr,
    "first_response_mean": _mean("first_response"),
    "resolution_mean": _mean("resolution"),
    **{f"first_response_p{int(q * 100)}": _quantile("first_response", q) for q in (0.5, 0.9, 0.99)},
    **{f"resolution_p{int(q * 100)}": _quantile("resolution", q) for q in (0.5, 0.9, 0.99)},
}


@dataclass(frozen=True)
class Rule:
    alertname: str
    metric: str
    window: str
    op: str
    threshold: float
    min_samples: int
    severity: str
    resolve_threshold: float | None = None
    for_s: float = 0.0
    filters: Mapping[str, str] = field(default_factory=dict)
    summary: str = "{alertname}: {metric} {value:.3g} on {channel}/{team} ({window})"
    description: str = (
        "{window} {metric} is {value:.4g} over {sample_size} samples; threshold {op} {threshold:g}."
    )

    def read(self, snapshot: WindowSnapshot) -> tuple[float | None, int]:
        return METRICS[self.metric](snapshot)

    def breached(self, value: float | None, samples: int) -> bool:
        return (
            value is not None
            and samples >= self.min_samples
            and OPS[self.op](value, self.threshold)
        )

    def recovered(self, value: float | None, samples: int) -> bool:
        """A firing alert ends when its evidence is gone or the value is back
        past the resolve threshold (hysteresis: no flapping at the edge)."""
        if value is None or samples < self.min_samples:
            return True
        limit = self.threshold if self.resolve_threshold is None else self.resolve_threshold
        return not OPS[self.op](value, limit)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.filters.items())


@dataclass(frozen=True)
class DetractorRule:
    enabled: bool = True
    severity: str = "info"
    resolve_after_s: float = 86_400.0
    alertname: str = "CxDetractorResponse"


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    detractor: DetractorRule = DetractorRule()


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        "CxNpsLow",
        "nps_score",
        "24h",
        "<",
        0,
        30,
        "warning",
        summary="NPS below 0 on {channel}/{team}",
        description="24h NPS is {value:.1f} over {sample_size} responses (threshold < 0).",
    ),
    Rule(
        "CxCsatLow",
        "csat_ratio",
        "24h",
        "<",
        0.70,
        30,
        "warning",
        summary="CSAT below 70% on {channel}/{team}",
        description="24h CSAT ratio is {value:.2f} over {sample_size} responses (threshold < 0.70).",
    ),
    Rule(
        "CxFirstResponseSlow",
        "first_response_p90",
        "1h",
        ">",
        14_400,
        20,
        "critical",
        summary="First responses slower than 4h on {channel}/{team}",
        description="1h p90 first response time is {value:.0f}s over {sample_size} tickets (threshold > 14400s).",
    ),
    Rule(
        "CxFcrLow",
        "fcr_ratio",
        "7d",
        "<",
        0.50,
        50,
        "warning",
        summary="First-contact resolution below 50% on {channel}/{team}",
        description="7d FCR ratio is {value:.2f} over {sample_size} tickets (threshold < 0.50).",
    ),
)


def default_ruleset(window_names: Sequence[str]) -> RuleSet:
    """The contract's defaults, limited to windows that are configured."""
    return RuleSet(tuple(r for r in DEFAULT_RULES if r.window in window_names))


# -- YAML ---------------------------------------------------------------------

_RULE_KEYS = {
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
}
_TOP_KEYS = {"defaults", "rules", "detractor"}
_DETRACTOR_KEYS = {"enabled", "severity", "resolve_after"}


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _pairs(node: yaml.Node, path: str, where: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise RulesError(f"{where}:{_line(node)}: {path} must be a mapping")
    out: list[tuple[str, yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise RulesError(f"{where}:{_line(key_node)}: {path} keys must be strings")
        out.append((str(key_node.value), key_node, value_node))
    return out


def _scalar(node: yaml.Node, key: str, where: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise RulesError(f"{where}:{_line(node)}: {key} must be a single value")
    return yaml.safe_load(yaml.serialize(node))


def _number(node: yaml.Node, key: str, where: str) -> float:
    value = _scalar(node, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RulesError(f"{where}:{_line(node)}: {key} must be a number, got {value!r}")
    return float(value)


def _duration(node: yaml.Node, key: str, where: str) -> float:
    value = _scalar(node, key, where)
    match = _DURATION.match(str(value))
    if match is None:
        raise RulesError(
            f"{where}:{_line(node)}: {key} must be a duration like 30s, 5m, 24h, got {value!r}"
        )
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def _rule(node: yaml.Node, window_names: Sequence[str], where: str) -> Rule | str:
    """A rule, or the alertname of a rule switched off with ``enabled: false``."""
    fields_: dict[str, Any] = {}
    seen: dict[str, yaml.Node] = {}
    for key, key_node, value_node in _pairs(node, "a rule", where):
        if key not in _RULE_KEYS:
            raise RulesError(
                f"{where}:{_line(key_node)}: unknown rule key {key!r} (known: {', '.join(sorted(_RULE_KEYS))})"
            )
        seen[key] = value_node
    if "enabled" in seen:
        flag = _scalar(seen["enabled"], "enabled", where)
        if not isinstance(flag, bool):
            raise RulesError(f"{where}:{_line(seen['enabled'])}: enabled must be true or false")
        if not flag:
            if "alertname" not in seen:
                raise RulesError(f"{where}:{_line(node)}: rule is missing 'alertname'")
            return str(_scalar(seen["alertname"], "alertname", where))  # switched off
    for required in ("alertname", "metric", "window", "op", "threshold", "min_samples", "severity"):
        if required not in seen:
            raise RulesError(f"{where}:{_line(node)}: rule is missing {required!r}")
    name = str(_scalar(seen["alertname"], "alertname", where))
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RulesError(
            f"{where}:{_line(seen['alert'])}: alert {name!r} is not a valid alert name"
        )
    metric = str(_scalar(seen["metric"], "metric", where))
    if metric not in METRICS:
        raise RulesError(
            f"{where}:{_line(seen['metric'])}: unknown metric {metric!r} (known: {', '.join(sorted(METRICS))})"
        )
    window = str(_scalar(seen["window"], "window", where))
    if window not in window_names:
        raise RulesError(
            f"{where}:{_line(seen['window'])}: window {window!r} is not configured (windows: {', '.join(window_names)})"
        )
    op = str(_scalar(seen["op"], "op", where))
    if op not in OPS:
        raise RulesError(f"{where}:{_line(seen['op'])}: op {op!r} must be one of < <= > >=")
    min_samples = _number(seen["min_samples"], "min_samples", where)
    if min_samples < 0 or min_samples != int(min_samples):
        raise RulesError(
            f"{where}:{_line(seen['min_samples'])}: min_samples must be a whole number >= 0"
        )
    fields_.update(
        alertname=name,
        metric=metric,
        window=window,
        op=op,
        threshold=_number(seen["threshold"], "threshold", where),
        min_samples=int(min_samples),
        severity=str(_scalar(seen["severity"], "severity", where)),
    )
    if "resolve_threshold" in seen:
        fields_["resolve_threshold"] = _number(
            seen["resolve_threshold"], "resolve_threshold", where
        )
    if "for" in seen:
        fields_["for_s"] = _duration(seen["for"], "for", where)
    if "filters" in seen:
        filters = {}
        for key, _, value_node in _pairs(seen["filters"], "filters", where):
            filters[key] = str(_scalar(value_node, f"filters.{key}", where))
        fields_["filters"] = filters
    for text_key in ("summary", "description"):
        if text_key in seen:
            template = str(_scalar(seen[text_key], text_key, where))
            try:
                template.format(**_SAMPLE_FIELDS)
            except (KeyError, IndexError, ValueError) as exc:
                raise RulesError(
                    f"{where}:{_line(seen[text_key])}: {text_key} template is invalid: {exc!r}"
                ) from None
            fields_[text_key] = template
    return Rule(**fields_)


_SAMPLE_FIELDS: dict[str, Any] = {
    "alertname": "X",
    "metric": "nps_score",
    "value": 1.0,
    "threshold": 0.0,
    "op": "<",
    "window": "24h",
    "sample_size": 1,
    "channel": "c",
    "team": "t",
    "dims": "channel=c, team=t",
}


def load_rules(path: str, window_names: Sequence[str]) -> RuleSet:
    """Read a rules file; raise RulesError naming the file, line and key."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise RulesError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RulesError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if root is None:
        return default_ruleset(window_names)
    use_defaults = True
    rules: list[Rule] = []
    disabled: set[str] = set()
    detractor = DetractorRule()
    for key, key_node, value_node in _pairs(root, "the rules file", path):
        if key not in _TOP_KEYS:
            raise RulesError(
                f"{path}:{_line(key_node)}: unknown key {key!r} (known: defaults, rules, detractor)"
            )
        if key == "defaults":
            flag = _scalar(value_node, "defaults", path)
            if not isinstance(flag, bool):
                raise RulesError(f"{path}:{_line(value_node)}: defaults must be true or false")
            use_defaults = flag
        elif key == "rules":
            if not isinstance(value_node, yaml.SequenceNode):
                raise RulesError(f"{path}:{_line(value_node)}: rules must be a list")
            names: set[str] = set()
            for item in value_node.value:
                rule = _rule(item, window_names, path)
                name = rule if isinstance(rule, str) else rule.alertname
                if name in names:
                    raise RulesError(f"{path}:{_line(item)}: duplicate alertname {name!r}")
                names.add(name)
                if isinstance(rule, str):
                    disabled.add(rule)
                else:
                    rules.append(rule)
        else:
            d: dict[str, Any] = {}
            for dkey, dkey_node, dvalue in _pairs(value_node, "detractor", path):
                if dkey not in _DETRACTOR_KEYS:
                    raise RulesError(f"{path}:{_line(dkey_node)}: unknown detractor key {dkey!r}")
                if dkey == "enabled":
                    flag = _scalar(dvalue, "enabled", path)
                    if not isinstance(flag, bool):
                        raise RulesError(f"{path}:{_line(dvalue)}: enabled must be true or false")
                    d["enabled"] = flag
                elif dkey == "severity":
                    d["severity"] = str(_scalar(dvalue, "severity", path))
                else:
                    d["resolve_after_s"] = _duration(dvalue, "resolve_after", path)
            detractor = replace(detractor, **d)
    merged = {r.alertname: r for r in (default_ruleset(window_names).rules if use_defaults else ())}
    for rule in rules:
        merged[rule.alertname] = rule
    for name in disabled:
        merged.pop(name, None)
    return RuleSet(tuple(merged.values()), detractor)
