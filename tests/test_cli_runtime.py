"""Start-up under Kubernetes, durations, help texts, --version and the worker's registry."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
from prometheus_client import generate_latest

from streams import __version__
from streams.cli import build_parser
from streams.errors import SettingsError
from streams.exposition.pipeline_metrics import PipelineMetrics
from streams.exposition.runtime import AlertmanagerCollector, worker_registry
from streams.settings import SETTINGS, Settings, format_duration, is_service_link, load_settings
from tests.support import REPO

# What Kubernetes injects for Services "cx" (port "http" 6066) and
# "cx-worker-headless" (IPv6), verbatim shapes from the kubelet's envvars.
SERVICE_LINKS = {
    "CX_SERVICE_HOST": "10.96.0.17",
    "CX_SERVICE_PORT": "6066",
    "CX_SERVICE_PORT_HTTP": "6066",
    "CX_PORT": "tcp://10.96.0.17:6066",
    "CX_PORT_6066_TCP": "tcp://10.96.0.17:6066",
    "CX_PORT_6066_TCP_PROTO": "tcp",
    "CX_PORT_6066_TCP_PORT": "6066",
    "CX_PORT_6066_TCP_ADDR": "10.96.0.17",
    "CX_WORKER_HEADLESS_SERVICE_HOST": "fd00:10:96::a",
    "CX_WORKER_HEADLESS_SERVICE_PORT_METRICS": "6066",
    "CX_WORKER_HEADLESS_PORT": "tcp://[fd00:10:96::a]:6066",
    "CX_WORKER_HEADLESS_PORT_9092_UDP": "udp://[fd00:10:96::a]:9092",
    "CX_WORKER_HEADLESS_PORT_9092_UDP_ADDR": "fd00:10:96::a",
}


def test_kubernetes_service_links_do_not_stop_start_up() -> None:
    settings = load_settings({}, {**SERVICE_LINKS, "CX_WEB_PORT": "7000"})
    assert settings.web_port == 7000
    assert all(is_service_link(k, v) for k, v in SERVICE_LINKS.items())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CX_WEB_PROT", "6066"),  # typo of CX_WEB_PORT
        ("CX_WEBS_PORT", "6066"),  # _PORT-shaped name, but a plain number: not a service link
        ("CX_PORT", "6066"),
        ("CX_SERVICE_HOST", "kafka.example"),  # service links carry IPs, never names
        ("CX_PORT_6066_TCP_PROTO", "http"),
        ("CX_KAFKA_BOOTSTRAPS", "kafka:9092"),
        ("CX_SERVICE_PORT", "http"),
    ],
)
def test_typos_are_still_rejected(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({}, {**SERVICE_LINKS, name: value})
    assert name in str(err.value)


@pytest.mark.parametrize("name", [n for n in SETTINGS if n.endswith("_s")])
def test_every_duration_setting_takes_bare_seconds(name: str) -> None:
    _, env, _ = SETTINGS[name]
    assert getattr(load_settings({name: "86400"}, {}), name) == 86400.0
    assert getattr(load_settings({}, {env: "7200"}), name) == 7200.0
    assert getattr(load_settings({name: "2h"}, {}), name) == 7200.0


def test_bare_seconds_windows_and_the_dedup_minimum() -> None:
    assert [w.seconds for w in load_settings({"windows": "3600,86400"}, {}).windows] == [
        3600,
        86400,
    ]
    with pytest.raises(SettingsError, match="--dedup-horizon"):
        load_settings({"dedup_horizon_s": "3599"}, {})


def test_format_duration_round_trips_the_defaults() -> None:
    assert [format_duration(s) for s in (604800, 86400, 300, 5, 0.25, 90)] == [
        "7d",
        "24h",
        "5m",
        "5s",
        "250ms",
        "90s",
    ]


def test_help_shows_every_default() -> None:
    worker = next(
        a.choices["worker"]
        for a in build_parser()._actions
        if getattr(a, "choices", None) and "worker" in a.choices
    )
    text = " ".join(worker.format_help().split())
    defaults = Settings()
    for expected in (
        "(default localhost:9092",
        "(default 6066)",
        "(default 24h;",
        "(default 7d;",
        "(default 5s;",
        "(default 1h,24h,7d,30d)",
        "(default channel,team)",
        f"(default {defaults.partitions})",
        "(default the built-in rules)",
    ):
        assert expected in text, expected
    # Every setting with a flag (the SASL password has none: env or file only).
    assert text.count("(default ") == sum(1 for flag, _, _ in SETTINGS.values() if flag)


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streams", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"cxstream {__version__}"


class _Forwarder:
    failed_posts_total = 3
    dropped_total = 1
    active_count = 2
    failing = True


def test_worker_registry_has_build_process_and_no_created_series() -> None:
    registry = worker_registry()
    metrics = PipelineMetrics(registry)
    metrics.events.labels("tickets", "accepted").inc()
    registry.register(AlertmanagerCollector(_Forwarder()))
    assert (
        registry.get_sample_value(
            "cx_build_info",
            {
                "version": __version__,
                "python": platform.python_version(),
                "faust": _faust_version(),
            },
        )
        == 1.0
    )
    assert registry.get_sample_value("process_resident_memory_bytes") > 0
    assert registry.get_sample_value("process_cpu_seconds_total") is not None
    assert registry.get_sample_value("python_info", {**_python_info()}) == 1.0
    assert (
        registry.get_sample_value("cx_events_total", {"source": "tickets", "outcome": "accepted"})
        == 1
    )
    assert registry.get_sample_value("cx_alertmanager_post_failures_total") == 3
    assert registry.get_sample_value("cx_alertmanager_failing") == 1
    text = generate_latest(registry).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    assert "cx_events_total" in names
    assert not [n for n in names if n.endswith("_created")]


def _faust_version() -> str:
    from importlib.metadata import version

    return version("faust-streaming")


def _python_info() -> dict[str, str]:
    major, minor, patch = platform.python_version_tuple()
    return {
        "implementation": platform.python_implementation(),
        "major": major,
        "minor": minor,
        "patchlevel": patch,
        "version": platform.python_version(),
    }
