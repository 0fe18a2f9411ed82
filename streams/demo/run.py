"""`cxstream demo`: start the stack, send traffic, show it, stop everything."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path
from types import FrameType

import yaml

from streams.demo import readings
from streams.demo.sender import Sender, history
from streams.demo.stack import REPO, Stack
from streams.demo.view import Frame
from streams.errors import CxError
from streams.traffic import Incident, Seasonality

#: business hours and SLA targets the demo's workers run with
SCHEDULES = Path(__file__).resolve().parent / "schedules.yml"


class _StopRequestedError(Exception):
    pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _StopRequestedError()


def _run_dir(args: argparse.Namespace) -> Path:
    run_dir = Path(args.run_dir) if args.run_dir else REPO / ".cx-run" / "demo"
    # Fresh state each run: old windows and alerts would confuse the numbers.
    for sub in ("worker-1", "worker-2", "prometheus-data", "alertmanager-data"):
        shutil.rmtree(run_dir / sub, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run(args: argparse.Namespace) -> int:
    try:
        # Bad arguments stop us before anything starts.
        Seasonality(args.timezone)
        for text in args.incident:
            Incident.parse(text, 0.0, 1.0)
    except CxError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    run_dir = _run_dir(args)
    stack = Stack(run_dir)
    previous = signal.signal(signal.SIGTERM, _on_signal)
    try:
        return _run(args, stack, run_dir)
    except (_StopRequestedError, KeyboardInterrupt):
        print("demo: stopping", file=sys.stderr)
        return 0
    except CxError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, previous)


def schedules_file(run_dir: Path, timezone: str) -> Path:
    """The shipped demo schedule, moved to the zone the generator's working
    hours are in, so business and calendar time differ where tickets arrive."""
    doc = yaml.safe_load(SCHEDULES.read_text())
    for schedule in doc["schedules"].values():
        schedule["timezone"] = timezone
    path = run_dir / "schedules.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def say(msg: str) -> None:
    print(f"demo: {msg}", flush=True)


def _run(args: argparse.Namespace, stack: Stack, run_dir: Path) -> int:
    bootstrap = stack.broker(args.bootstrap, args.kafka_port)
    # A fresh app id and topics per run: nothing from an earlier run is replayed.
    run_id = f"cxdemo-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:4]}"
    topics = {k: f"{run_id}.{k}" for k in ("tickets", "surveys", "alerts", "deadletter")}
    alertmanager = stack.alertmanager(args.alertmanager_port)
    flags = [
        "--app-id",
        run_id,
        "--tickets-topic",
        topics["tickets"],
        "--surveys-topic",
        topics["surveys"],
        "--alerts-topic",
        topics["alerts"],
        "--deadletter-topic",
        topics["deadletter"],
        "--partitions",
        "4",
        "--tick-interval",
        "2s",
        "--alertmanager",
        alertmanager.url,
        "--schedules",
        str(schedules_file(run_dir, args.timezone)),
        # SLA targets are judged on the sweep: often enough for minutes to show.
        "--sweep-interval",
        "30s",
    ]
    workers = [stack.worker(i + 1, args.web_port + i, flags) for i in range(2)]
    prometheus = stack.prometheus(args.prometheus_port, workers, alertmanager)
    board = stack.board(args.board_port, prometheus)
    say(f"broker {bootstrap}; topics {run_id}.*; waiting for both workers")
    stack.wait_workers(workers, 180)

    now = time.time()
    history_events = history(args.seed, args.history_days, args.timezone, now)
    start = now + args.incident_after
    incidents = [Incident.parse(text, start, start + args.incident_for) for text in args.incident]
    sender = Sender(
        bootstrap,
        topics["tickets"],
        topics["surveys"],
        args.seed,
        args.rate,
        history_events,
        incidents,
    )
    urls = {
        "wallboard": board.url + "/",
        "prometheus": prometheus.url + "/alerts",
        "alertmanager": alertmanager.url + "/#/alerts",
        **{f"worker {i + 1}": w.url + "/metrics" for i, w in enumerate(workers)},
        "logs": str(run_dir),
    }
    for name, url in urls.items():
        say(f"{name:<13} {url}")
    say(
        f"sending {len(history_events)} events of history ({args.history_days:g} days), "
        f"then live traffic at {args.rate:g} events/s"
    )
    sender.start()
    try:
        _show(args, sender, stack, [w.url for w in workers], alertmanager.url, urls, incidents)
    finally:
        sender.stop()
    return 0


def _show(
    args: argparse.Namespace,
    sender: Sender,
    stack: Stack,
    worker_urls: list[str],
    alertmanager_url: str,
    urls: dict[str, str],
    incidents: list[Incident],
) -> None:
    started = time.time()
    end = started + args.duration if args.duration > 0 else float("inf")

    def frame() -> Frame:
        reading = readings.read(worker_urls, alertmanager_url)
        return Frame(reading, sender.progress, urls, incidents, started)

    def check() -> None:
        dead = [p for p in stack.procs if not p.alive()]
        if dead:
            raise CxError(f"{dead[0].name} exited; its log {dead[0].log}:\n{dead[0].tail()}")
        if sender.progress.phase == "failed":
            raise CxError(f"sending traffic failed: {sender.progress.error}")

    if args.no_tui or not sys.stdout.isatty():
        last = 0.0
        while time.time() < end:
            check()
            if time.time() - last >= args.print_every:
                print(frame().plain(), flush=True)
                last = time.time()
            time.sleep(0.5)
        print("demo: final reading", flush=True)
        print(frame().plain(), flush=True)
        return
    from rich.console import Console
    from rich.live import Live

    console = Console()
    with Live(frame().rich(console.width), console=console, refresh_per_second=1) as live:
        while time.time() < end:
            check()
            time.sleep(2)
            live.update(frame().rich(console.width))
