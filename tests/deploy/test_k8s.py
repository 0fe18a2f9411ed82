"""The Kubernetes base in deploy/k8s: rendered as kustomize would, validated
offline with kubernetes-validate --strict, CRDs checked structurally, the
PrometheusRule identical to the shipped rule files.

Rendering: the kustomization has only `resources`, so its output is those
files in order; the test concatenates them (no kubectl needed) and refuses
any other kustomization field that would make the two differ.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import load_settings
from tests.support import REPO

K8S = REPO / "deploy" / "k8s"
PROM = REPO / "deploy" / "prometheus"
CRDS = {"ServiceMonitor", "PrometheusRule"}
#: settings being added with Kafka authentication; referenced by the manifests
SASL_VARIABLES = {"CX_KAFKA_SASL_USERNAME", "CX_KAFKA_SASL_PASSWORD_FILE"}


def _kustomization() -> dict[str, Any]:
    return dict(yaml.safe_load((K8S / "kustomization.yaml").read_text()))


def render() -> list[dict[str, Any]]:
    kustomization = _kustomization()
    extra = set(kustomization) - {"apiVersion", "kind", "resources"}
    assert not extra, f"rendering by concatenation ignores {extra}"
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((K8S / name).read_text()) if d)
    return docs


def _by_kind() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in render() if d["kind"] != "Service"}


def _services() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in render() if d["kind"] == "Service"}


def test_every_file_is_listed_and_every_resource_unique() -> None:
    listed = set(_kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    keys = [(d["kind"], d["metadata"]["name"]) for d in render()]
    assert len(keys) == len(set(keys)) == 8


def test_core_resources_pass_kubernetes_validate_strict(tmp_path: Path) -> None:
    binary = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    assert binary, "kubernetes-validate is not installed (pip install -e '.[test]')"
    core = [d for d in render() if d["kind"] not in CRDS]
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump_all(core))
    result = subprocess.run(
        [binary, "--strict", "-k", "1.30.0", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(core) == 6, result.stdout


def test_kubernetes_validate_catches_a_bad_field(tmp_path: Path) -> None:
    binary = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    assert binary
    sts = _by_kind()["StatefulSet"]
    sts["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(sts))
    result = subprocess.run(
        [binary, "--strict", "-k", "1.30.0", str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0 and "httpGett" in result.stdout + result.stderr


def test_statefulset_is_safe_to_run() -> None:
    sts = _by_kind()["StatefulSet"]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's UID
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    (claim,) = spec["volumeClaimTemplates"]
    data_mount = next(
        m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"]
    )
    config = _by_kind()["ConfigMap"]["data"]
    assert data_mount["mountPath"] == config["CX_DATA_DIR"]
    assert spec["serviceName"] == "cxstream-headless"
    assert _services()["cxstream-headless"]["spec"]["clusterIP"] == "None"
    pdb = _by_kind()["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_config_map_holds_only_real_settings_and_secrets_come_from_the_secret() -> None:
    config = _by_kind()["ConfigMap"]["data"]
    settings = load_settings({}, config)  # an unknown CX_* key would raise here
    assert settings.data_dir == Path("/var/lib/cxstream")
    container = _by_kind()["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) == SASL_VARIABLES
    assert env["CX_KAFKA_SASL_USERNAME"]["valueFrom"]["secretKeyRef"]["name"] == "cxstream-kafka"
    secret = _by_kind()["Secret"]
    assert set(secret["stringData"]) == {"username", "password"}
    volume = next(
        v for v in _by_kind()["StatefulSet"]["spec"]["template"]["spec"]["volumes"] if "secret" in v
    )
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert env["CX_KAFKA_SASL_PASSWORD_FILE"]["value"] == f"{mount['mountPath']}/password"
    assert container["envFrom"] == [{"configMapRef": {"name": "cxstream-config"}}]


def test_service_monitor_scrapes_the_worker_service_only() -> None:
    monitor = _by_kind()["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        name
        for name, svc in _services().items()
        if selector.items() <= svc["metadata"]["labels"].items()
    ]
    # The job label is the Service name, "cxstream", as the alert rules expect.
    assert selected == ["cxstream"]
    (endpoint,) = monitor["spec"]["endpoints"]
    ports = {p["name"] for p in _services()["cxstream"]["spec"]["ports"]}
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    assert 'up{job="cxstream"}' in (PROM / "alerting-rules.yml").read_text()


def test_prometheus_rule_is_the_shipped_rule_files() -> None:
    result = subprocess.run(
        [sys.executable, str(K8S / "generate_prometheusrule.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rule = _by_kind()["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    expected = [
        g
        for name in ("recording-rules.yml", "alerting-rules.yml")
        for g in yaml.safe_load((PROM / name).read_text())["groups"]
    ]
    assert rule["spec"]["groups"] == expected
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        for r in group["rules"]:
            assert ("record" in r) != ("alert" in r) and r["expr"].strip()


@pytest.mark.parametrize("name", ["statefulset.yaml", "service.yaml"])
def test_no_service_named_cx(name: str) -> None:
    for doc in yaml.safe_load_all((K8S / name).read_text()):
        assert not doc["metadata"]["name"].startswith("cx-") and doc["metadata"]["name"] != "cx"
