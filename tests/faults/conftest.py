"""Fault-suite fixtures and the report of time to exact after each fault.

Tests marked ``faults_full`` run only when asked for (``pytest -m faults_full``);
the small mode (marked ``integration``) runs in every default ``pytest``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Broker, Timing

REPORT: list[tuple[str, str, list[Timing], str]] = []  # (test, outcome, timings, note)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "faults_full" in (config.option.markexpr or ""):
        return
    keep = [i for i in items if i.get_closest_marker("faults_full") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Lets a fixture's teardown know whether its test failed (for the report)."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and "faults" in str(item.fspath):
        item.rep_call_failed = rep.failed  # type: ignore[attr-defined]


@pytest.fixture()
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker only this test uses, so it may kill it (never the shared one)."""
    broker = Broker(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        if broker.pid() is not None:
            broker.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT:
        return
    terminalreporter.write_sep("-", "fault suite: time to exact after each fault")
    for test, outcome, timings, note in REPORT:
        shown = "; ".join(
            f"{t.fault}: exact {t.to_exact_s:.1f}s (lag 0 at {t.to_lag_zero_s:.1f}s)"
            for t in timings
        )
        terminalreporter.write_line(
            f"{test} [{outcome}] {shown or '-'}{' | ' + note if note else ''}"
        )
