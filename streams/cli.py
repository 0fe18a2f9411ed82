"""The ``cxstream`` command line: worker, produce, validate, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from streams.errors import CxError
from streams.settings import SETTINGS, Settings, load_settings

log = logging.getLogger("cxstream")

WORKER_HELP = {
    "bootstrap": "Kafka bootstrap servers HOST:PORT[,HOST:PORT] (default localhost:9092)",
    "web_port": "port serving /metrics and /healthz (default 6066)",
    "data_dir": "directory for local worker state (default ./cxstream-data)",
    "rules": "alert rules YAML file (default: the built-in rules)",
}


def _add_settings(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    for name, (flag, env, _) in SETTINGS.items():
        if only is not None and name not in only:
            continue
        parser.add_argument(
            flag,
            dest=name,
            default=None,
            metavar="VALUE",
            help=f"{WORKER_HELP.get(name, name.replace('_', ' '))} [env {env}]",
        )


def _settings(args: argparse.Namespace) -> Settings:
    flags = {name: getattr(args, name, None) for name in SETTINGS}
    return load_settings(flags, os.environ)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _configure_logging(settings.log_level)
    from streams.worker import run_worker

    return run_worker(settings)


def cmd_produce(args: argparse.Namespace) -> int:
    from streams.kafka_tools import iter_lines, produce

    settings = _settings(args)
    _configure_logging(settings.log_level)
    if args.file == "-":
        sent, skipped = produce(settings, iter_lines(sys.stdin.buffer))
    else:
        try:
            handle = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CxError(f"FILE: cannot read {args.file!r}: {exc.strerror}") from None
        with handle:
            sent, skipped = produce(settings, iter_lines(handle))
    print(f"sent {sent} events to {settings.bootstrap}; skipped {skipped} lines", file=sys.stderr)
    return 0 if skipped == 0 else 1


def cmd_validate(args: argparse.Namespace) -> int:
    from streams.domain.clock import SystemClock
    from streams.validate_file import run

    settings = _settings(args)
    try:
        return run(args.file, sys.stdout, SystemClock().now_us(), settings.dimensions)
    except OSError as exc:
        raise CxError(f"FILE: cannot read {args.file!r}: {exc.strerror}") from None


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(args)


def cmd_generate(args: argparse.Namespace) -> int:
    import datetime as dt
    import time

    from streams.generate import DAY_S, generate

    if args.events < 0 or args.days <= 0:
        raise CxError("--events must be >= 0 and --days > 0")
    if args.start is None:
        start_s = time.time() - args.days * DAY_S
    else:
        try:
            start = dt.datetime.fromisoformat(args.start)
        except ValueError:
            raise CxError(f"--start: {args.start!r} is not an ISO 8601 date or time") from None
        start_s = (start if start.tzinfo else start.replace(tzinfo=dt.UTC)).timestamp()
    end_s = start_s + args.days * DAY_S
    generate(sys.stdout.buffer, args.events, args.seed, start_s, end_s, args.timezone)
    return 0


def cmd_board(args: argparse.Namespace) -> int:
    from streams.board.server import run_board

    _configure_logging("info")
    from streams.settings import parse_duration_s

    trend_s = parse_duration_s(args.trend, "--trend")
    return run_board(args.prometheus, args.host, args.port, args.job, trend_s)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxstream",
        description="Real-time customer-experience metrics from Kafka to Prometheus.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run one processing worker")
    _add_settings(worker)
    worker.set_defaults(func=cmd_worker)

    produce = sub.add_parser("produce", help="send JSON Lines to the input topics by type")
    produce.add_argument("file", help="JSON Lines file, or - for standard input")
    _add_settings(produce, ["bootstrap", "tickets_topic", "surveys_topic", "log_level"])
    produce.set_defaults(func=cmd_produce)

    validate = sub.add_parser(
        "validate", help="check a JSON Lines file against the contract offline"
    )
    validate.add_argument("file", help="JSON Lines file, or - for standard input")
    _add_settings(validate, ["dimensions"])
    validate.set_defaults(func=cmd_validate)

    from streams.demo import add_demo_arguments

    demo = sub.add_parser(
        "demo",
        help="the whole pipeline on this machine: broker, two workers, Prometheus, "
        "Alertmanager, the wallboard and realistic traffic",
    )
    add_demo_arguments(demo)
    demo.set_defaults(func=cmd_demo)

    gen = sub.add_parser("generate", help="write realistic events as JSON Lines to standard output")
    gen.add_argument("--events", type=int, default=10_000, help="lines to write (default 10000)")
    gen.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    gen.add_argument(
        "--start",
        default=None,
        help="ISO 8601 start (default: --days before now; UTC if no offset)",
    )
    gen.add_argument("--days", type=float, default=2.0, help="days the events span (default 2)")
    gen.add_argument(
        "--timezone", default="UTC", help="IANA zone whose working hours are busiest (default UTC)"
    )
    gen.set_defaults(func=cmd_generate)

    board = sub.add_parser(
        "board", help="serve the wallboard web page for a Prometheus that scrapes the workers"
    )
    board.add_argument(
        "--prometheus",
        default="http://127.0.0.1:9090",
        help="Prometheus base URL (default http://127.0.0.1:9090)",
    )
    board.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    board.add_argument("--port", type=int, default=8088, help="listen port (default 8088)")
    board.add_argument(
        "--job", default="cxstream", help="Prometheus job of the workers (default cxstream)"
    )
    board.add_argument("--trend", default="1h", help="time span of the sparklines (default 1h)")
    board.set_defaults(func=cmd_board)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except CxError as exc:
        print(f"cxstream: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
