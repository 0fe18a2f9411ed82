"""The ``cxstream`` command line: worker, produce, validate, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from streams import __version__
from streams.errors import CxError
from streams.settings import SETTINGS, Settings, format_duration, load_settings

log = logging.getLogger("cxstream")

WORKER_HELP = {
    "bootstrap": "Kafka bootstrap servers HOST:PORT[,HOST:PORT]",
    "web_port": "port serving /metrics and /healthz",
    "data_dir": "directory for local worker state",
    "rules": "alert rules YAML file",
    "confidence": "confidence level of the window bounds (cx_*_bound) and confidence rules",
    "schedules": "business hours and SLA policies YAML file",
    "sla_warning": "SLA at_risk horizon, a share of the target (25%% or 0.25)",
    "app_id": "consumer group and internal topic prefix",
    "partitions": "partitions of the topics cxstream creates",
    "standby_replicas": "warm table copies per partition",
    "windows": "rolling windows, comma-separated durations",
    "dimensions": "label dimensions read from events",
    "max_label_values": "distinct values per label before 'other'",
    "dedup_horizon_s": "how long event_ids are remembered (at least 1h)",
    "ticket_retention_s": "how long a resolved ticket's state is kept",
    "tick_interval_s": "alert evaluation interval without events",
    "sweep_interval_s": "interval of the expiry sweep of finished tickets",
    "alertmanager_url": "Alertmanager base URL to forward alerts to",
    "web_host": "address serving /metrics, /healthz, /readyz (0.0.0.0 in containers)",
    "stall_timeout_s": (
        "exit non-zero after this long without progress while lagging or recovering, "
        "or without a broker"
    ),
    "preload_max_records": "a new worker reads its changelogs in bulk when they hold at most "
    "this many records (0: never; each worker reads every partition, then keeps its own)",
    "delivery": "batch: the stages get each fetch's records at once (fast); "
    "stream: one at a time through Faust's streams",
    "event_loop": "uvloop (fast) or asyncio (the standard library's)",
    "kafka_security_protocol": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    "kafka_sasl_mechanism": "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)",
    "kafka_sasl_username": "SASL user name (with SASL_*)",
    "kafka_sasl_password_file": "file holding the SASL password (or set CX_KAFKA_SASL_PASSWORD)",
    "kafka_ssl_cafile": "PEM file of the CAs that sign the brokers' certificates",
}
DURATION_HINT = "; a duration: 30s, 15m, 24h, 7d, or bare seconds"
#: how an unset optional setting behaves, for the help text
UNSET_HELP = {
    "rules": "the built-in rules",
    "schedules": "none: no business-time or SLA metrics",
    "alertmanager_url": "off",
    "kafka_ssl_cafile": "the system's CAs",
}


def default_text(name: str) -> str:
    """A setting's default as a user would type it (durations as 24h, lists comma-joined)."""
    value = getattr(Settings(), name)
    if value is None:
        return UNSET_HELP.get(name, "unset")
    if name.endswith("_s"):
        return format_duration(value)
    if isinstance(value, tuple):
        return ",".join(str(getattr(v, "name", v)) for v in value)
    return str(value)


KAFKA_CLIENT = [
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_sasl_password_file",
    "kafka_ssl_cafile",
]


def _add_settings(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    for name, (flag, env, _) in SETTINGS.items():
        if (only is not None and name not in only) or not flag:
            continue  # (no flag: the SASL password comes from the environment or a file)
        parser.add_argument(
            flag,
            dest=name,
            default=None,
            metavar="VALUE",
            help=(
                f"{WORKER_HELP.get(name, name.replace('_', ' '))} "
                f"(default {default_text(name)}{DURATION_HINT if name.endswith('_s') else ''})"
                f" [env {env}]"
            ),
        )


def _settings(args: argparse.Namespace) -> Settings:
    flags = {name: getattr(args, name, None) for name in SETTINGS}  # absent flags: None
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


def cmd_validate_config(args: argparse.Namespace) -> int:
    from streams.validate_config import run

    settings = _settings(args)
    return run(args.file, args.kind, [w.name for w in settings.windows], sys.stdout)


TOPIC_SETTINGS = [
    "bootstrap",
    "app_id",
    "tickets_topic",
    "surveys_topic",
    "alerts_topic",
    "deadletter_topic",
    "partitions",
    "replication_factor",
    "log_level",
    *KAFKA_CLIENT,
]


def _quiet_kafka(level: str) -> None:
    # kafka-python logs every connection at INFO: noise for a one-shot command.
    if level != "debug":
        logging.getLogger("kafka").setLevel(logging.WARNING)


def cmd_topics_create(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from streams.kafka_tools import all_topics, ensure_topics
    from streams.settings import parse_duration_s

    settings = _settings(args)
    _configure_logging(settings.log_level)
    _quiet_kafka(settings.log_level)
    retention_ms = None
    if args.retention is not None:
        retention_ms = round(parse_duration_s(args.retention, "--retention") * 1000)
    try:
        created = ensure_topics(settings, retention_ms=retention_ms)
    except KafkaError as exc:
        raise CxError(f"--bootstrap / CX_KAFKA_BOOTSTRAP: cannot create topics: {exc}") from None
    for name in all_topics(settings):
        print(f"{'created' if name in created else 'exists '} {name}")
    return 0


def cmd_topics_describe(args: argparse.Namespace) -> int:
    import json

    from kafka.errors import KafkaError

    from streams.kafka_tools import describe_topics, format_description

    settings = _settings(args)
    _configure_logging(settings.log_level)
    _quiet_kafka(settings.log_level)
    try:
        topics = describe_topics(settings)
    except KafkaError as exc:
        raise CxError(f"--bootstrap / CX_KAFKA_BOOTSTRAP: cannot describe topics: {exc}") from None
    if args.json:
        doc = {
            "group": settings.app_id,
            "topics": {
                name: [
                    {
                        "partition": p.partition,
                        "end_offset": p.end_offset,
                        "committed": p.committed,
                        "lag": p.lag,
                    }
                    for p in parts
                ]
                for name, parts in topics.items()
            },
        }
        print(json.dumps(doc, indent=2))
    else:
        print(format_description(topics, settings.app_id))
    return 0


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
    from streams.settings import _confidence, parse_duration_s

    trend_s = parse_duration_s(args.trend, "--trend")
    confidence = _confidence(args.confidence, "--confidence")  # the workers' own check
    return run_board(args.prometheus, args.host, args.port, args.job, trend_s, confidence)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxstream",
        description="Real-time customer-experience metrics from Kafka to Prometheus.",
    )
    parser.add_argument("--version", action="version", version=f"cxstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run one processing worker")
    _add_settings(worker)
    worker.set_defaults(func=cmd_worker)

    produce = sub.add_parser("produce", help="send JSON Lines to the input topics by type")
    produce.add_argument("file", help="JSON Lines file, or - for standard input")
    _add_settings(
        produce, ["bootstrap", "tickets_topic", "surveys_topic", "log_level", *KAFKA_CLIENT]
    )
    produce.set_defaults(func=cmd_produce)

    validate = sub.add_parser(
        "validate", help="check a JSON Lines file against the contract offline"
    )
    validate.add_argument("file", help="JSON Lines file, or - for standard input")
    _add_settings(validate, ["dimensions"])
    validate.set_defaults(func=cmd_validate)

    validate_config = sub.add_parser(
        "validate-config", help="check an alert rules or schedules/SLA file (errors at FILE:LINE)"
    )
    validate_config.add_argument("file", help="YAML rules or schedules file")
    validate_config.add_argument(
        "--kind", choices=("rules", "schedules"), help="default: from the top-level keys"
    )
    _add_settings(validate_config, ["windows"])
    validate_config.set_defaults(func=cmd_validate_config)

    topics = sub.add_parser("topics", help="create or describe the worker's Kafka topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_sub.add_parser(
        "create", help="create missing topics (public, internal, changelogs); idempotent"
    )
    create.add_argument(
        "--retention",
        default=None,
        metavar="DURATION",
        help="retention.ms of the non-compacted topics, e.g. 7d (default: the broker's)",
    )
    _add_settings(create, TOPIC_SETTINGS)
    create.set_defaults(func=cmd_topics_create)
    describe = topics_sub.add_parser(
        "describe", help="partitions and per-partition lag of the worker's consumer group"
    )
    describe.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_settings(describe, TOPIC_SETTINGS)
    describe.set_defaults(func=cmd_topics_describe)

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
    board.add_argument(
        "--confidence",
        default="0.95",
        help="confidence level of the NPS/CSAT intervals shown (default 0.95, as the workers')",
    )
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
