"""The worker's registry: build and process facts beside the pipeline's own metrics.

client_python registers process and platform collectors on its global
registry at import; cxstream never publishes that one, so they are added to
the injected registry here, with ``cx_build_info`` and the Alertmanager
forwarder's counters.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from streams import __version__


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def worker_registry() -> CollectorRegistry:
    """A fresh registry with process, platform, GC and build-info metrics.

    ``*_created`` series are switched off process-wide: nobody graphs them, and
    they doubled the series count of every counter (the switch is global in
    client_python and read at scrape time, so it covers every counter).
    """
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    build = Gauge(
        "cx_build_info",
        "Always 1; the labels say which cxstream, Python and Faust this worker runs.",
        ["version", "python", "faust"],
        registry=registry,
    )
    build.labels(__version__, platform.python_version(), _package_version("faust-streaming")).set(1)
    return registry


class ForwarderState(Protocol):
    @property
    def failed_posts_total(self) -> int: ...
    @property
    def dropped_total(self) -> int: ...
    @property
    def active_count(self) -> int: ...
    @property
    def failing(self) -> bool: ...


class AlertmanagerCollector:
    """Reads the forwarder's counters at scrape time (registered only when forwarding)."""

    def __init__(self, forwarder: ForwarderState) -> None:
        self.forwarder = forwarder

    def collect(self) -> Iterable[Metric]:
        f = self.forwarder
        failures = CounterMetricFamily(
            "cx_alertmanager_post_failures",
            "Failed attempts to post alerts to Alertmanager (unreachable, timeout, 5xx).",
        )
        failures.add_metric([], f.failed_posts_total)
        dropped = CounterMetricFamily(
            "cx_alertmanager_alerts_dropped",
            "Alerts Alertmanager refused as invalid (a 4xx): not retried.",
        )
        dropped.add_metric([], f.dropped_total)
        failing = GaugeMetricFamily(
            "cx_alertmanager_failing", "1 while the last attempt to post to Alertmanager failed."
        )
        failing.add_metric([], 1.0 if f.failing else 0.0)
        active = GaugeMetricFamily(
            "cx_alertmanager_active_alerts", "Firing alerts the forwarder keeps re-posting."
        )
        active.add_metric([], f.active_count)
        yield from (failures, dropped, failing, active)
