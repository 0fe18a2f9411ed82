"""The Prometheus rule files pass `promtool check rules` and their unit tests,
the Prometheus config passes `promtool check config`, and every recording rule
and alert is covered by a unit test.

Without promtool these tests skip locally, and fail when CI is set: CI must
install it (scripts/setup.sh does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

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


def test_alerting_rules_match_the_built_in_defaults() -> None:
    from streams.domain.rules import DEFAULT_RULES

    _, alerts = _rules()
    assert alerts == {r.alertname for r in DEFAULT_RULES}
    severities = {
        rule["alert"]: rule["labels"]["severity"]
        for group in yaml.safe_load((PROM / "alerting-rules.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    assert severities == {r.alertname: r.severity for r in DEFAULT_RULES}
