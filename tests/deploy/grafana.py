"""The shipped Grafana dashboards and provisioning, read as a Grafana would."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))


def dashboards() -> dict[Path, dict[str, Any]]:
    return {path: json.loads(path.read_text()) for path in DASHBOARD_FILES}


def provisioned_datasource_uid() -> str:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = doc["datasources"]
    return str(source["uid"])


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # rows


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (cx_*, process_*, up, recorded series)."""
    names = set(re.findall(r"\b([a-z_]+:[a-z_0-9]+:[a-z_0-9]+|cx_[a-z_]+|process_[a-z_]+)\b", expr))
    if re.search(r"\bup\{", expr):
        names.add("up")
    return names
