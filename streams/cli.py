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
    "web_host": "address serving /metrics, /healthz, /readyz (default 127.0.0.1; 0.0.0.0 in containers)",
    "stall_timeout_s": "exit non-zero after this long without progress while lagging or without a broker (default 5m)",
    "kafka_security_protocol": "PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL",
    "kafka_sasl_mechanism": "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)",
    "kafka_sasl_username": "SASL user name (with SASL_*)",
    "kafka_sasl_password_file": "file holding the SASL password (or set CX_KAFKA_SASL_PASSWORD)",
    "kafka_ssl_cafile": "PEM file of the CAs that sign the brokers' certificates (default: the system's)",
}
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
            help=f"{WORKER_HELP.get(name, name.replace('_', ' '))} [env {env}]",
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


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(args)


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

    demo = sub.add_parser(
        "demo", help="start a local broker, a worker and realistic traffic on this machine"
    )
    demo.add_argument("--web-port", type=int, default=6066, help="worker /metrics port")
    demo.add_argument("--kafka-port", type=int, default=9092, help="local broker port")
    demo.add_argument("--rate", type=float, default=20.0, help="events per second")
    demo.add_argument(
        "--duration", type=float, default=0.0, help="seconds to run (0 = until Ctrl-C)"
    )
    demo.set_defaults(func=cmd_demo)
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
