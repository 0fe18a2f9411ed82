"""The `cxstream demo` command line."""

from __future__ import annotations

import argparse


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap",
        default=None,
        help="use this running Kafka broker (HOST:PORT) instead of starting a local one",
    )
    p.add_argument(
        "--kafka-port", type=int, default=9092, help="port of the local broker (default 9092)"
    )
    p.add_argument(
        "--web-port",
        type=int,
        default=6066,
        help="first worker's /metrics port, the second uses the next (default 6066)",
    )
    p.add_argument(
        "--prometheus-port", type=int, default=9090, help="Prometheus port (default 9090)"
    )
    p.add_argument(
        "--alertmanager-port", type=int, default=9093, help="Alertmanager port (default 9093)"
    )
    p.add_argument("--board-port", type=int, default=8088, help="wallboard port (default 8088)")
    p.add_argument("--rate", type=float, default=20.0, help="live events per second (default 20)")
    p.add_argument(
        "--history-days", type=float, default=2.0, help="days of history sent first (default 2)"
    )
    p.add_argument(
        "--duration", type=float, default=0.0, help="seconds to run (default 0: until Ctrl-C)"
    )
    p.add_argument(
        "--incident",
        action="append",
        default=[],
        metavar="team=NAME,channel=NAME",
        help="make that desk's customers unhappy and its replies slow for a while (repeatable)",
    )
    p.add_argument(
        "--incident-after",
        type=float,
        default=30.0,
        help="seconds of live traffic before incidents start (default 30)",
    )
    p.add_argument(
        "--incident-for", type=float, default=300.0, help="incident length in seconds (default 300)"
    )
    p.add_argument(
        "--timezone",
        default="UTC",
        help="IANA zone whose working hours get the most tickets (default UTC)",
    )
    p.add_argument("--seed", type=int, default=7, help="traffic seed (default 7)")
    p.add_argument(
        "--no-tui",
        action="store_true",
        help="print plain progress lines instead of the live terminal view",
    )
    p.add_argument(
        "--print-every", type=float, default=10.0, help="seconds between plain lines (default 10)"
    )
    p.add_argument(
        "--run-dir", default=None, help="state and logs (default .cx-run/demo in the checkout)"
    )
