"""Starting and stopping the demo's processes: broker, workers, Prometheus,
Alertmanager, wallboard. Each runs in its own process group with its log in
the run directory; `Stack.stop` ends them newest first."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import orjson
import yaml

from streams.errors import CxError

REPO = Path(__file__).resolve().parent.parent.parent
KAFKA_SH = REPO / "deploy" / "kafka-local" / "kafka.sh"
PROMETHEUS_RULES = REPO / "deploy" / "prometheus"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


def port_or_free(preferred: int, taken: set[int]) -> int:
    """The preferred port when nothing listens there, otherwise a free one."""
    if preferred not in taken:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                taken.add(preferred)
                return preferred
            except OSError:
                pass
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            taken.add(port)
            return port


def http_ok(url: str, check: Callable[[bytes], bool] = lambda _: True) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200 and check(resp.read())
    except (OSError, ValueError):
        return False


def rule_files() -> list[Path]:
    """The shipped Prometheus rule files: every YAML file under deploy/prometheus
    with rule groups (scrape configs and promtool test files have none)."""
    found = []
    for path in sorted(PROMETHEUS_RULES.rglob("*.y*ml")):
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(doc, dict) and "groups" in doc:
            found.append(path)
    return found


def binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise CxError(f"{names[0]} is not installed (scripts/setup.sh installs it with apt-get)")


@dataclass
class Proc:
    name: str
    url: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class Stack:
    run_dir: Path
    procs: list[Proc] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)
    kafka_dir: Path | None = None  # set when this stack started the broker
    bootstrap: str = ""

    def spawn(
        self, name: str, url: str, cmd: Sequence[str], env: dict[str, str] | None = None
    ) -> Proc:
        log = self.run_dir / f"{name}.log"
        with log.open("ab") as handle:
            popen = subprocess.Popen(
                list(cmd),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                cwd=self.run_dir,
            )
        proc = Proc(name, url, popen, log)
        self.procs.append(proc)
        return proc

    def wait(self, proc: Proc, ready: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not proc.alive():
                raise CxError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
            if ready():
                return
            time.sleep(0.3)
        raise CxError(
            f"{proc.name} not ready after {timeout_s:.0f} s; log {proc.log}:\n{proc.tail()}"
        )

    # -- the parts ----------------------------------------------------------

    def broker(self, bootstrap: str | None, port: int) -> str:
        if bootstrap:
            self.bootstrap = bootstrap
            return bootstrap
        # The default run directory shares `make kafka-start`'s broker dir.
        default = self.run_dir == REPO / ".cx-run" / "demo"
        kafka_dir = REPO / ".cx-run" / "kafka" if default else self.run_dir / "kafka"
        props = kafka_dir / "server.properties"
        status = subprocess.run([str(KAFKA_SH), "status", "--dir", str(kafka_dir)], check=False)
        if status.returncode == 0 and props.exists():
            # A broker left by an earlier demo: reuse it (it is not ours to stop).
            for line in props.read_text().splitlines():
                if line.startswith("advertised.listeners="):
                    self.bootstrap = line.split("//", 1)[1].strip()
                    return self.bootstrap
        port = port_or_free(port, self.ports)
        cport = port_or_free(port + 1, self.ports)
        subprocess.run(
            [
                str(KAFKA_SH),
                "start",
                "--port",
                str(port),
                "--controller-port",
                str(cport),
                "--dir",
                str(kafka_dir),
            ],
            check=True,
        )
        self.kafka_dir = kafka_dir
        self.bootstrap = f"127.0.0.1:{port}"
        return self.bootstrap

    def worker(self, index: int, port: int, flags: Sequence[str]) -> Proc:
        port = port_or_free(port, self.ports)
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CX_")}
        cmd = [
            sys.executable,
            "-m",
            "streams",
            "worker",
            "--bootstrap",
            self.bootstrap,
            "--web-port",
            str(port),
            "--web-host",
            "127.0.0.1",
            "--data-dir",
            str(self.run_dir / f"worker-{index}"),
            *flags,
        ]
        return self.spawn(f"worker-{index}", url, cmd, env)

    def prometheus(self, port: int, workers: Sequence[Proc], alertmanager: Proc) -> Proc:
        port = port_or_free(port, self.ports)
        config = {
            "global": {
                "scrape_interval": "5s",
                "evaluation_interval": "5s",
                "external_labels": {"monitor": "cxstream-demo"},
            },
            "rule_files": [str(p) for p in rule_files()],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [alertmanager.url.split("//", 1)[1]]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "cxstream",
                    "scrape_interval": "5s",
                    "static_configs": [{"targets": [w.url.split("//", 1)[1] for w in workers]}],
                }
            ],
        }
        path = self.run_dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        cmd = [
            binary("prometheus"),
            f"--config.file={path}",
            f"--storage.tsdb.path={self.run_dir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        proc = self.spawn("prometheus", f"http://127.0.0.1:{port}", cmd)
        self.wait(proc, lambda: http_ok(proc.url + "/-/ready"), 60)
        return proc

    def alertmanager(self, port: int) -> Proc:
        port = port_or_free(port, self.ports)
        cmd = [
            binary("prometheus-alertmanager", "alertmanager"),
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--storage.path={self.run_dir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # a single local instance: no gossip port
            "--log.level=warn",
        ]
        proc = self.spawn("alertmanager", f"http://127.0.0.1:{port}", cmd)
        self.wait(proc, lambda: http_ok(proc.url + "/-/ready"), 60)
        return proc

    def board(self, port: int, prometheus: Proc) -> Proc:
        port = port_or_free(port, self.ports)
        cmd = [
            sys.executable,
            "-m",
            "streams",
            "board",
            "--prometheus",
            prometheus.url,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        proc = self.spawn("board", f"http://127.0.0.1:{port}", cmd)
        self.wait(proc, lambda: http_ok(proc.url + "/healthz"), 60)
        return proc

    def wait_workers(self, workers: Sequence[Proc], timeout_s: float) -> None:
        """Until every worker has partitions and the group has settled."""

        def active(body: bytes) -> bool:
            return bool(orjson.loads(body).get("active_partitions"))

        for w in workers:
            url = w.url + "/healthz"
            self.wait(w, partial(http_ok, url, active), timeout_s)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(10)
        if self.kafka_dir is not None:
            subprocess.run([str(KAFKA_SH), "stop", "--dir", str(self.kafka_dir)], check=False)
