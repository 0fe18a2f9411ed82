"""The Prometheus rule files pass `promtool check rules` and their unit tests,
the Prometheus config passes `promtool check config`, and every recording rule
and alert is covered by a unit test.

Without promtool these tests skip locally, and fail when CI is set: CI must
install it (scripts/setup.sh does).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PROM = REPO / "deploy" / "prometheus"
RULE_FILES = [PROM / "recording-rules.yml", PROM / "alerting-rules.yml"]
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = "prometheus-alertmanager" if name == "amtool" else "prometheus"
        message = f"{name} is not installed (Debian: apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)


def test_promtool_check_rules() -> None:
    result = _run(_tool("promtool"), "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES), result.stdout


def test_promtool_unit_tests() -> None:
    assert TEST_FILES, "no promtool unit tests under deploy/prometheus/tests"
    result = _run(_tool("promtool"), "test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout, result.stdout


def test_promtool_check_config() -> None:
    result = _run(_tool("promtool"), "check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_check_config() -> None:
    config = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
    result = _run(_tool("amtool"), "check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


def _rules() -> tuple[set[str], set[str]]:
    records: set[str] = set()
    alerts: set[str] = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    records.add(rule["record"])
                else:
                    alerts.add(rule["alert"])
    return records, alerts


def test_every_rule_has_a_unit_test() -> None:
    records, alerts = _rules()
    tested_exprs: set[str] = set()
    alerts_firing: set[str] = set()
    alerts_silent: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested_exprs.update(t["expr"].strip() for t in case.get("promql_expr_test", []))
            for t in case.get("alert_rule_test", []):
                (alerts_firing if t.get("exp_alerts") else alerts_silent).add(t["alertname"])
    assert records - tested_exprs == set(), "recording rules without a promql_expr_test"
    assert alerts - alerts_firing == set(), "alerts never tested firing"
    assert alerts - alerts_silent == set(), "alerts never tested staying silent"


def _alert_groups() -> dict[str, list[dict[str, Any]]]:
    doc = yaml.safe_load((PROM / "alerting-rules.yml").read_text())
    return {group["name"]: group["rules"] for group in doc["groups"]}


def test_alerting_rules_match_the_built_in_defaults() -> None:
    from streams.domain.rules import DEFAULT_RULES

    defaults = _alert_groups()["cxstream-defaults"]
    assert {r["alert"] for r in defaults} == {r.alertname for r in DEFAULT_RULES}
    severities = {rule["alert"]: rule["labels"]["severity"] for rule in defaults}
    assert severities == {r.alertname: r.severity for r in DEFAULT_RULES}


def test_self_monitoring_watches_worker_input_dead_letters_lag_and_forwarding() -> None:
    exprs = " ".join(r["expr"] for r in _alert_groups()["cxstream-self"])
    for metric in (
        'up{job="cxstream"}',
        "cx_events_total",
        "cx_events_invalid_total",
        "cx_consumer_lag",
        "cx_state_recovering",
        "cx_alertmanager_post_failures_total",
    ):
        assert metric in exprs, metric


def test_every_alert_waits_and_links_its_runbook_section() -> None:
    runbook = (REPO / "docs" / "runbook.md").read_text()
    sections = {line[3:].strip() for line in runbook.splitlines() if line.startswith("## ")}
    alerts = [rule for rules in _alert_groups().values() for rule in rules]
    for rule in alerts:
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: no for:"
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{name.lower()}", name
        assert name in sections, f"docs/runbook.md has no section for {name}"
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), name
    assert sections == {rule["alert"] for rule in alerts}, "runbook sections without an alert"


def test_recording_rules_follow_level_metric_operations() -> None:
    records, _ = _rules()
    for group in yaml.safe_load((PROM / "recording-rules.yml").read_text())["groups"]:
        for rule in group["rules"]:
            name, expr = rule["record"], rule["expr"]
            match = re.fullmatch(r"([a-z]+(?:_[a-z]+)*):(cx_[a-z_]+):([a-z0-9_]+)", name)
            assert match, f"{name} is not level:metric:operations"
            level, metric, _ = match.groups()
            # The level names exactly the labels the aggregation keeps.
            kept = set(re.findall(r"by \(([^)]*)\)", expr)[0].replace(" ", "").split(","))
            assert set(level.split("_")) == kept - {"le"}, name
            base = metric.removesuffix("_total")
            assert base in expr or metric.rsplit("_", 1)[0] in expr, name
    assert len(records) == 15


def test_example_rules_file_loads_and_points_at_real_files() -> None:
    from streams.domain.rules import load_rules

    path = REPO / "deploy" / "rules" / "example-rules.yml"
    rules = load_rules(str(path), ["1h", "24h", "7d", "30d"])
    assert rules is not None
    named = re.findall(r"\b((?:streams|deploy|docs)/[\w./-]+\.(?:py|yml|md))", path.read_text())
    assert named, "the example names no file"
    for name in named:
        assert (REPO / name).is_file(), f"example-rules.yml points at missing {name}"
