"""Test helpers: a real Prometheus scraping workers, the wallboard server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.demo.stack import rule_files
from tests.support import REPO, free_port


def need_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/setup.sh installs {package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: process exited:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout}s:\n{log.read_text(errors='replace')}")


class Service:
    def __init__(self, name: str, cmd: Sequence[str], ready_path: str, port: int, workdir: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as handle:
            self.proc = subprocess.Popen(
                list(cmd), stdout=handle, stderr=subprocess.STDOUT, cwd=REPO
            )
        _wait_http(self.url + ready_path, self.proc, self.log, 60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Prometheus(Service):
    """Debian's prometheus, scraping `targets` every second with the shipped rules."""

    def __init__(self, workdir: Path, targets: Sequence[str]) -> None:
        binary = need_binary("prometheus", "the Debian package prometheus")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files()],
            "scrape_configs": [
                {"job_name": "cxstream", "static_configs": [{"targets": list(targets)}]}
            ],
        }
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        cmd = [
            binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        super().__init__("prometheus", cmd, "/-/ready", port, workdir)

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def scalar(self, query: str) -> float | None:
        result = self.api("/api/v1/query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None


class Board(Service):
    def __init__(self, workdir: Path, prometheus_url: str, trend: str = "2m") -> None:
        port = free_port()
        cmd = [
            sys.executable, "-m", "streams", "board",
            "--prometheus", prometheus_url, "--port", str(port), "--trend", trend,
        ]  # fmt: skip
        super().__init__("board", cmd, "/healthz", port, workdir)
