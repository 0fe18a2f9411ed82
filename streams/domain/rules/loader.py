"""The YAML rules file (``--rules FILE``): read it into a ``RuleSet``.

The format is described in ``streams.domain.rules``. This module reads YAML
types and the file's structure (sections, unknown and repeated keys, the
configured windows, duplicate alertnames); the fields' own checks are the
model's, and their ``FieldError`` is reported at the field's line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import yaml

from streams.domain.configfile import FieldError, Nodes, YamlWalker, read_text
from streams.domain.model import US_PER_S
from streams.domain.rules.defaults import DEFAULT_DETRACTOR, DEFAULT_RULES, RuleSet
from streams.domain.rules.model import (
    DETRACTOR_ALERTNAME,
    DetractorConfig,
    Rule,
    check_alertname,
)
from streams.errors import RulesError

__all__ = ["RULE_KEYS", "TOP_KEYS", "load_rules", "parse_rules"]

TOP_KEYS: Final = ("defaults", "rules", "detractor")
RULE_KEYS: Final = (
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
    "confidence",
    "enabled",
)
_RULE_REQUIRED: Final = ("alertname", "metric", "window", "op", "threshold")
DETRACTOR_KEYS: Final = (
    "enabled",
    "severity",
    "resolve_after",
    "max_open",
    "summary",
    "description",
)


class _RulesFile:
    def __init__(self, path: str, window_names: Sequence[str]) -> None:
        self.yaml = YamlWalker(path, RulesError)
        self.path = path
        self.window_names = tuple(window_names)

    def alertname(self, node: yaml.Node, where: str) -> str:
        name = self.yaml.text(node, f"{where}.alertname")
        try:
            check_alertname(name)
        except FieldError as exc:
            raise self.yaml.fail(node, f"{where}.alertname", str(exc)) from None
        if name == DETRACTOR_ALERTNAME:
            raise self.yaml.fail(
                node,
                f"{where}.alertname",
                f"{DETRACTOR_ALERTNAME} is configured in the 'detractor:' section",
            )
        return name

    def rule(self, node: yaml.Node, where: str) -> tuple[str, yaml.Node, Rule | None]:
        """(alertname, its node, the rule or None for ``enabled: false``)."""
        y = self.yaml
        where = f"{where}{_name_hint(node)}"
        keys = y.mapping(node, where, RULE_KEYS)
        if "alertname" not in keys:
            raise y.fail(node, where, "missing required key 'alertname'")
        name_node = keys["alertname"][1]
        alertname = self.alertname(name_node, where)
        if "enabled" in keys and not y.boolean(keys["enabled"][1], f"{where}.enabled"):
            extra = sorted(set(keys) - {"alertname", "enabled"})
            if extra:
                raise y.fail(
                    keys[extra[0]][0], where, f"key {extra[0]!r} has no effect with enabled: false"
                )
            return alertname, name_node, None
        for required in _RULE_REQUIRED:
            if required not in keys:
                raise y.fail(node, where, f"missing required key {required!r}")
        args = self.rule_args(keys, where)
        args["alertname"] = alertname
        rule: Rule = y.build(lambda: Rule(**args), keys, node, where)
        return alertname, name_node, rule

    def rule_args(self, keys: Nodes, where: str) -> dict[str, Any]:
        y = self.yaml

        def val(key: str) -> yaml.Node:
            return keys[key][1]

        window = y.scalar(val("window"), f"{where}.window")
        if str(window) not in self.window_names:
            raise y.fail(
                val("window"),
                f"{where}.window",
                f"unknown window {window!r} (configured: {', '.join(self.window_names)})",
            )
        args: dict[str, Any] = {
            "metric": y.text(val("metric"), f"{where}.metric"),
            "window": str(window),
            "op": y.text(val("op"), f"{where}.op"),
            "threshold": y.number(val("threshold"), f"{where}.threshold"),
        }
        if "resolve_threshold" in keys:
            args["resolve_threshold"] = y.number(
                val("resolve_threshold"), f"{where}.resolve_threshold"
            )
        if "min_samples" in keys:
            args["min_samples"] = y.integer(val("min_samples"), f"{where}.min_samples")
        if "for" in keys:
            args["for_s"] = y.duration_us(val("for"), f"{where}.for") / US_PER_S
        if "filters" in keys:
            args["filters"] = y.filters(val("filters"), f"{where}.filters")
        if "confidence" in keys:
            args["confidence"] = y.boolean(val("confidence"), f"{where}.confidence")
        for key in ("severity", "summary", "description"):
            if key in keys:
                args[key] = y.text(val(key), f"{where}.{key}")
        return args

    def detractor(self, node: yaml.Node, where: str) -> DetractorConfig:
        y = self.yaml
        keys = y.mapping(node, where, DETRACTOR_KEYS)
        args: dict[str, Any] = {}
        if "enabled" in keys:
            args["enabled"] = y.boolean(keys["enabled"][1], f"{where}.enabled")
        if "resolve_after" in keys:
            ra_node = keys["resolve_after"][1]
            us = y.duration_us(ra_node, f"{where}.resolve_after")
            if us % US_PER_S:
                raise y.fail(ra_node, f"{where}.resolve_after", "must be whole seconds, >= 1s")
            args["resolve_after_s"] = us // US_PER_S
        if "max_open" in keys:
            args["max_open"] = y.integer(keys["max_open"][1], f"{where}.max_open")
        for key in ("severity", "summary", "description"):
            if key in keys:
                args[key] = y.text(keys[key][1], f"{where}.{key}")
        config: DetractorConfig = y.build(lambda: DetractorConfig(**args), keys, node, where)
        return config

    def load(self, text: str) -> RuleSet:
        y = self.yaml
        root = y.compose(text)
        if root is None:  # an empty file: the built-in rules
            return self.result(True, [], DEFAULT_DETRACTOR)
        top = y.mapping(root, "top level", TOP_KEYS)
        use_defaults = True
        if "defaults" in top:
            use_defaults = y.boolean(top["defaults"][1], "defaults")
        entries: list[tuple[str, Rule | None]] = []
        if "rules" in top:
            seen: dict[str, int] = {}
            for index, item in enumerate(y.sequence(top["rules"][1], "rules", "rules")):
                name, name_node, rule = self.rule(item, f"rules[{index}]")
                if name in seen:
                    raise y.fail(
                        name_node,
                        f"rules[{index}].alertname",
                        f"duplicate alertname {name!r} (first at line {seen[name]})",
                    )
                seen[name] = name_node.start_mark.line + 1
                entries.append((name, rule))
        detractor = DEFAULT_DETRACTOR
        if "detractor" in top:
            detractor = self.detractor(top["detractor"][1], "detractor")
        return self.result(use_defaults, entries, detractor)

    def result(
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
            ):
                try:
                    check_alertname(value_node.value)
                except FieldError:
                    return ""
                return f" ({value_node.value})"
    return ""


def parse_rules(text: str, path: str, window_names: Sequence[str]) -> RuleSet:
    """A rules file's text (``path`` names it in errors)."""
    return _RulesFile(path, window_names).load(text)


def load_rules(path: str, window_names: Sequence[str]) -> RuleSet:
    """Read a rules file (format in ``streams.domain.rules``).

    Raises ``RulesError`` whose message starts with ``FILE:LINE:`` and names
    the offending key.
    """
    return parse_rules(read_text(path, "rules file", RulesError), path, window_names)
