"""`cxstream demo`: the whole product on one machine, with live numbers.

A local Kafka broker (deploy/kafka-local), two workers sharing the work, a
real Prometheus scraping them with the shipped rules, a real Alertmanager
receiving both Prometheus' and the workers' alerts, the wallboard, and the
realistic generator sending a few days of history and then live traffic
(with incidents on demand). A terminal view shows the numbers as they move.

Modules: ``args`` (the command line), ``stack`` (starting and stopping the
processes), ``sender`` (the traffic thread), ``readings`` (what the view
reads from the workers and Alertmanager), ``view`` (rich and plain output),
``run`` (putting it together).
"""

from __future__ import annotations

import argparse

from streams.demo.args import add_demo_arguments

__all__ = ["add_demo_arguments", "run_demo"]


def run_demo(args: argparse.Namespace) -> int:
    from streams.demo.run import run

    return run(args)
