"""Soak: real workers under constant traffic for a long time (default 1 h).

Not part of any test run. Prints, every ``--every`` seconds, each worker's
resident memory and the consumer group's lag, then, after the traffic stops
and the lag reaches zero, compares every changelog-backed counter with the
offline oracle (windows are left out: over an hour events cross their edges).

    .venv/bin/python -m tests.faults.soak                    # 1 h, own broker
    .venv/bin/python -m tests.faults.soak --duration 3m --rate 40
    .venv/bin/python -m tests.faults.soak --bootstrap 127.0.0.1:9092
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.faults import oracle
from tests.faults.events import Rec
from tests.faults.harness import WINDOW_NAMES, Broker, Cluster, compare
from tests.faults.test_faults import PARTITIONS, _create_topics
from tests.support import Topics


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def duration_s(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--duration", type=duration_s, default=3600.0, help="e.g. 1h, 3m, 90s (default 1h)"
    )
    ap.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--every", type=float, default=30.0, help="seconds between report lines")
    ap.add_argument("--bootstrap", help="an existing broker (default: start one on free ports)")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)

    from streams.traffic import TrafficGenerator  # the demo's traffic

    tmp = Path(tempfile.mkdtemp(prefix="cx-soak-"))
    broker = None
    if args.bootstrap is None:
        broker = Broker(tmp / "kafka")
        broker.start()
    bootstrap = args.bootstrap or broker.bootstrap  # type: ignore[union-attr]
    topics = Topics()
    _create_topics(bootstrap, topics)
    cluster = Cluster(bootstrap, topics, tmp, PARTITIONS)
    try:
        for i in range(args.workers):
            cluster.start(f"w{i}")
        cluster.wait_settled_group()
        # ~5.5 events per ticket story: tickets/s for the asked event rate.
        stream = TrafficGenerator(seed=args.seed).stream(time.time(), args.rate / 5.5)
        t0 = time.monotonic()
        next_report = t0
        print(
            "elapsed_s produced lag " + " ".join(f"rss_{n}_mib" for n in cluster.workers),
            flush=True,
        )
        peak_lag = 0
        while time.monotonic() - t0 < args.duration:
            occurred, doc = next(stream)
            ahead = occurred - time.time()
            if ahead > 0:
                time.sleep(ahead)  # real time: events arrive when they happen
            source = "tickets" if doc["type"].startswith("ticket.") else "surveys"
            import orjson

            key = (doc.get("ticket_id") or doc["event_id"]).encode()
            cluster.produce([Rec(source, orjson.dumps(doc), key)], flush=False)
            if time.monotonic() >= next_report:
                lag = sum(cluster.lag().values())
                peak_lag = max(peak_lag, lag)
                rss = " ".join(f"{rss_mib(w.proc.pid):.0f}" for w in cluster.workers.values())
                print(f"{time.monotonic() - t0:.0f} {len(cluster.sent)} {lag} {rss}", flush=True)
                next_report += args.every
        cluster.producer.flush(60)
        settle = cluster.wait_lag_zero(600)
        exp = oracle.expect(cluster.sent, time.time())
        exp.state = {k: v for k, v in exp.state.items() if k[0] not in WINDOW_NAMES}
        seen, problems = cluster.observe()
        seen = {k: v for k, v in seen.items() if k[0] not in WINDOW_NAMES}
        problems += compare(exp, seen, ("state", "process"))
        rss = ", ".join(f"{n} {rss_mib(w.proc.pid):.0f} MiB" for n, w in cluster.workers.items())
        print(
            f"soak: {len(cluster.sent)} events in {args.duration:.0f}s, peak lag {peak_lag}, "
            f"lag 0 {settle:.1f}s after the last event; RSS at the end: {rss}; "
            f"counters vs oracle: {'exact' if not problems else f'{len(problems)} differences'}"
        )
        for p in problems[:20]:
            print("  " + p)
        return 1 if problems else 0
    finally:
        cluster.close()
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
