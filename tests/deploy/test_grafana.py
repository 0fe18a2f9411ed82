"""Structure of the Grafana dashboards and provisioning (their queries run in
tests/integration/test_dashboards_e2e.py)."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.deploy.grafana import (
    DASHBOARD_FILES,
    GRAFANA,
    dashboards,
    panels,
    provisioned_datasource_uid,
    targets,
)
from tests.support import REPO

PANEL_TYPES = {"stat", "timeseries", "heatmap", "table", "bargauge", "gauge", "text", "row"}
EXPECTED_UIDS = {"cxstream-executive", "cxstream-support", "cxstream-pipeline"}


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(GRAFANA / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_three_dashboards_with_fixed_unique_uids() -> None:
    uids = [d["uid"] for d in dashboards().values()]
    assert len(DASHBOARD_FILES) == 3
    assert sorted(uids) == sorted(EXPECTED_UIDS)
    titles = [d["title"] for d in dashboards().values()]
    assert len(set(titles)) == 3


def test_every_panel_reads_the_provisioned_datasource() -> None:
    uid = provisioned_datasource_uid()
    assert uid == "cxstream-prometheus"
    for path, dash in dashboards().items():
        assert "${DS_" not in path.read_text(), path.name
        assert "__inputs" not in dash, path.name
        for panel in panels(dash):
            assert panel["type"] in PANEL_TYPES, (path.name, panel["title"])
            if panel["type"] in ("row", "text"):
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid, panel["title"]
                assert target["expr"].strip(), panel["title"]
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(set(ref_ids)) == len(ref_ids), panel["title"]
        variables = dash["templating"]["list"]
        for var in variables:
            if var["type"] == "query":
                assert var["datasource"]["uid"] == uid, var["name"]


def test_channel_and_team_variables_filter_every_key_query() -> None:
    for path, dash in dashboards().items():
        names = {v["name"]: v for v in dash["templating"]["list"]}
        for name in ("channel", "team"):
            assert names[name]["type"] == "query", (path.name, name)
            assert (
                names[name]["query"]["query"] == f"label_values(cx_tickets_created_total, {name})"
            )
            assert names[name]["includeAll"] and names[name]["allValue"] == ".*"
        if dash["uid"] == "cxstream-pipeline":
            continue  # pipeline metrics carry no channel/team
        for panel, target in targets(dash):
            expr = target["expr"]
            # Recorded company-wide series and the alert count span every key on purpose.
            if ":" in expr or "cx_alerts_firing" in expr:
                continue
            assert 'channel=~"$channel"' in expr and 'team=~"$team"' in expr, (
                f"{path.name}: {panel['title']}: {expr}"
            )
        if any("$window" in t["expr"] for _, t in targets(dash)):
            assert names["window"]["options"], "window variable without options"


def test_panels_do_not_overlap() -> None:
    for path, dash in dashboards().items():
        cells: set[tuple[int, int]] = set()
        for panel in panels(dash):
            g = panel["gridPos"]
            assert g["x"] + g["w"] <= 24, (path.name, panel["title"])
            mine = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not mine & cells, (path.name, panel["title"])
            cells |= mine
        ids = [p["id"] for p in panels(dash)]
        assert len(set(ids)) == len(ids)


def test_dashboard_provider_points_where_compose_mounts_the_dashboards() -> None:
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "cxstream.yml").read_text()
    )
    (entry,) = provider["providers"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{entry['options']['path']}:ro" in volumes
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
