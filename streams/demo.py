"""`cxstream demo`: the whole pipeline on one machine.

Starts a local Kafka broker (deploy/kafka-local), one worker, and a traffic
generator that replays a few days of history quickly and then sends live
events at --rate, so every window and dashboard has data at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson

from streams.traffic import TrafficGenerator

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "kafka-local" / "kafka.sh"


def _wait_ready(url: str, timeout_s: float) -> bool:
    """True once /healthz reports at least one active partition."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if orjson.loads(resp.read()).get("active_partitions"):
                    return True
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    return False


def run_demo(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    run_dir = REPO / ".cx-run"
    kafka_dir = run_dir / "kafka"
    bootstrap = f"127.0.0.1:{args.kafka_port}"
    started_kafka = False
    if (
        subprocess.run([str(KAFKA_SH), "status", "--dir", str(kafka_dir)], check=False).returncode
        != 0
    ):
        subprocess.run(
            [str(KAFKA_SH), "start", "--port", str(args.kafka_port), "--dir", str(kafka_dir)],
            check=True,
        )
        started_kafka = True
    env = {k: v for k, v in os.environ.items() if not k.startswith("CX_")}
    log_path = run_dir / "worker.log"
    with open(log_path, "ab") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams",
                "worker",
                "--bootstrap",
                bootstrap,
                "--web-port",
                str(args.web_port),
                "--data-dir",
                str(run_dir / "worker-data"),
                "--app-id",
                "cxstream-demo",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{args.web_port}"
    try:
        if not _wait_ready(url + "/healthz", 120):
            print(f"demo: the worker did not become ready; see {log_path}", file=sys.stderr)
            return 1
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
        gen = TrafficGenerator()
        topics = {"ticket": "cx.tickets", "survey": "cx.surveys"}
        now = time.time()
        # Two days of history first, then live traffic.
        backfill_from = now - 2 * 86400
        tickets_per_s = max(args.rate / 6.0, 0.01)
        stream = gen.stream(backfill_from, tickets_per_s=0.05)
        sent = 0
        for occurred, ev in stream:
            if occurred > now - 60:
                break
            producer.send(
                topics[ev["type"].split(".")[0]],
                key=ev["ticket_id"].encode(),
                value=orjson.dumps(ev),
            )
            sent += 1
        producer.flush()
        print(f"demo: sent {sent} historical events (two days)")
        print(f"demo: metrics at {url}/metrics   health at {url}/healthz")
        print(f"demo: worker log {log_path}; Ctrl-C stops the demo")
        live = gen.stream(time.time(), tickets_per_s=tickets_per_s)
        t_end = time.monotonic() + args.duration if args.duration > 0 else float("inf")
        for occurred, ev in live:
            delay = occurred - time.time()
            if delay > 0:
                time.sleep(min(delay, 1.0))
            if time.monotonic() > t_end:
                break
            producer.send(
                topics[ev["type"].split(".")[0]],
                key=ev["ticket_id"].encode(),
                value=orjson.dumps(ev),
            )
        producer.flush()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        if started_kafka:
            subprocess.run([str(KAFKA_SH), "stop", "--dir", str(kafka_dir)], check=False)
