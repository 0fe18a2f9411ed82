"""Session fixtures: a real single-node Kafka broker (KRaft) for integration tests.

The broker comes from deploy/kafka-local/kafka.sh (jars from Maven Central).
Set CX_TEST_BOOTSTRAP to use a running broker instead. Integration tests never
skip: if the broker cannot start, they fail with the broker's log.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO, Topics, free_port

KAFKA_SH = REPO / "deploy" / "kafka-local" / "kafka.sh"
_BROKER: dict[str, str] = {}  # what the terminal summary reports


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    existing = os.environ.get("CX_TEST_BOOTSTRAP")
    if existing:
        _BROKER["line"] = f"existing Kafka broker at {existing} (CX_TEST_BOOTSTRAP)"
        yield existing
        return
    port = free_port()
    cport = free_port()
    data = tmp_path_factory.mktemp("kafka")
    t0 = time.monotonic()
    result = subprocess.run(
        [
            str(KAFKA_SH),
            "start",
            "--port",
            str(port),
            "--controller-port",
            str(cport),
            "--dir",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(f"local Kafka did not start:\n{result.stdout}\n{result.stderr}")
    version = next(
        (
            p.name[len("kafka_2.13-") : -len(".jar")]
            for p in (KAFKA_SH.parent / "target" / "lib").glob("kafka_2.13-*.jar")
        ),
        "?",
    )
    _BROKER["line"] = (
        f"real Apache Kafka {version} (KRaft) broker on 127.0.0.1:{port}, "
        f"started in {time.monotonic() - t0:.1f} s by deploy/kafka-local/kafka.sh"
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(KAFKA_SH), "stop", "--dir", str(data)], timeout=120, check=False)


@pytest.fixture()
def topics() -> Topics:
    return Topics()


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI nothing may skip: a skipped test there is a missing install step."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true forbids skips): {report.longrepr}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which broker the integration tests ran against and how many ran."""
    ran = [
        r
        for r in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
        if r.when == "call" and "integration" in r.keywords
    ]
    if "line" in _BROKER:
        terminalreporter.write_sep("-", "integration")
        terminalreporter.write_line(f"{_BROKER['line']}; {len(ran)} integration tests ran")
