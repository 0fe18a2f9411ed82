"""docker-compose.yml passes `docker-compose config` (Debian's docker-compose,
installed by scripts/setup.sh; it needs no Docker engine for `config`) and
holds together: listeners, topic creation, workers, profiles, Prometheus
alerting, Grafana provisioning; the Dockerfile runs as a numeric UID."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.support import REPO

COMPOSE = REPO / "docker-compose.yml"


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not installed (Debian: apt-get install docker-compose)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run(
        [binary, "-f", str(COMPOSE), *args], capture_output=True, text=True, timeout=120, cwd=REPO
    )


def _source() -> dict[str, Any]:
    """The file as written, anchors and merge keys resolved (docker-compose 1.29's
    `config` output lists profiled services unconditionally, so the structure is
    read from the source; `config` proves it valid)."""
    return dict(yaml.safe_load(COMPOSE.read_text()))


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's short-syntax volumes."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        out[target] = source
    return out


def test_docker_compose_config_passes() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr
    assert "version" not in yaml.safe_load(COMPOSE.read_text())


def test_services_and_the_demo_profile() -> None:
    services = _source()["services"]
    default = {n for n, s in services.items() if not s.get("profiles")}
    assert default == {
        "kafka",
        "topics",
        "worker-1",
        "worker-2",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert services["generator"]["profiles"] == ["demo"]
    assert "cxstream produce -" in services["generator"]["command"][0]
    result = _compose("--profile", "demo", "config", "--services")
    assert result.returncode == 0 and "generator" in result.stdout.split()


def test_kafka_has_an_internal_and_a_host_listener() -> None:
    kafka = _source()["services"]["kafka"]
    env = kafka["environment"]
    advertised = dict(item.split("://", 1) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised == {"INTERNAL": "kafka:9092", "HOST": "localhost:29092"}
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"
    assert "29092:29092" in kafka["ports"]


def test_topics_are_created_once_before_the_workers_start() -> None:
    services = _source()["services"]
    topics = services["topics"]
    assert topics["command"][:3] == ["cxstream", "topics", "create"]
    assert topics["environment"]["CX_KAFKA_BOOTSTRAP"] == "kafka:9092"
    for name in ("worker-1", "worker-2"):
        worker = services[name]
        assert worker["command"] == ["cxstream", "worker"]
        assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert worker["environment"]["CX_ALERTMANAGER_URL"] == "http://alertmanager:9093"
        assert "/var/lib/cxstream" in _mounts(worker)
    ports = {services[n]["ports"][0].split(":")[0] for n in ("worker-1", "worker-2")}
    assert len(ports) == 2


def test_every_cx_variable_in_compose_is_a_setting() -> None:
    from streams.settings import load_settings

    for name, service in _source()["services"].items():
        env = {
            k: str(v) for k, v in (service.get("environment") or {}).items() if k.startswith("CX_")
        }
        load_settings({}, env)  # raises on an unknown CX_* variable
        if name.startswith(("worker", "topics", "generator")):
            assert env["CX_KAFKA_BOOTSTRAP"] == "kafka:9092", name


def test_prometheus_scrapes_both_workers_and_alerts_to_alertmanager() -> None:
    services = _source()["services"]
    prom = services["prometheus"]
    mounts = _mounts(prom)
    config = yaml.safe_load((REPO / mounts["/etc/prometheus/prometheus.yml"]).read_text())
    (scrape,) = config["scrape_configs"]
    assert scrape["job_name"] == "cxstream"
    assert scrape["static_configs"][0]["targets"] == ["worker-1:6066", "worker-2:6066"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    rule_targets = set(mounts)
    assert {
        "/etc/prometheus/rules/recording-rules.yml",
        "/etc/prometheus/rules/alerting-rules.yml",
    } <= rule_targets
    assert "alertmanager" in services


def test_compose_prometheus_is_the_tested_version() -> None:
    image = _source()["services"]["prometheus"]["image"]
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (Debian: apt-get install prometheus)"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    tested = re.search(r"version (\d+\.\d+\.\d+)", out.stdout + out.stderr)
    assert tested and image == f"prom/prometheus:v{tested.group(1)}"


def test_dockerfile_numeric_user_data_dir_and_healthcheck() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    user = re.search(r"^USER (\S+)$", text, re.M)
    assert user and re.fullmatch(r"\d+(:\d+)?", user.group(1))
    uid = user.group(1).split(":")[0]
    assert f"chown {uid}:" in text and "CX_DATA_DIR=/var/lib/cxstream" in text
    health = re.search(r"^HEALTHCHECK .*(?:\n .*)*", text, re.M)
    assert health and "/healthz" in health.group(0)
