"""The three stages without Kafka: how many events/s the domain and stage code
handle on one core (ingest -> ticket stage -> aggregate stage, in-memory topics
and tables, batches as the agents take them). Prints figures, asserts nothing.

    python bench/stages.py [EVENTS] [--profile]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from bench.harness import demo_events
from streams.domain.clock import ManualClock
from streams.exposition.pipeline_metrics import PipelineMetrics
from streams.pipeline.aggregate_stage import AggregateStage
from streams.pipeline.envelope import Provenance
from streams.pipeline.ingest import Ingest
from streams.pipeline.records import Record
from streams.pipeline.tables import key_partition
from streams.pipeline.tickets_stage import TicketStage
from streams.settings import Settings

BATCH = 2000


class NoAlerts:
    def evaluate(self, dims: Any, state: Any, now_us: int) -> list[dict[str, Any]]:
        return []

    def detractor(self, dims: Any, state: Any, response: Any, now_us: int) -> list[dict[str, Any]]:
        return []

    def firing(self, state: Any) -> dict[tuple[str, str], int]:
        return {}


class Topic:
    def __init__(self, partitions: int) -> None:
        self.records: list[list[Record]] = [[] for _ in range(partitions)]

    def send(self, key: bytes, value: bytes, headers: dict[str, bytes] | None = None) -> None:
        p = key_partition(key, len(self.records))
        part = self.records[p]
        part.append(Record(key, value, headers or {}, p, len(part)))


def run(events: list[bytes], keep: dict[str, Any] | None = None) -> dict[str, float]:
    """Times of each stage over ``events``; ``keep`` receives the settings,
    clock and aggregate stage, for benchmarks of what reads them."""
    settings = Settings(partitions=8)
    metrics = PipelineMetrics(CollectorRegistry())
    clock = ManualClock(int(time.time() * 1_000_000))
    route, obs = Topic(8), Topic(8)
    tickets_table: dict[bytes, bytes] = {}
    windows_table: dict[bytes, bytes] = {}

    async def send_route(key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        route.send(key, value, dict(headers))

    async def send_obs(key: bytes, value: bytes) -> None:
        obs.send(key, value)

    async def dead(*_: Any) -> None:
        pass

    ingest = Ingest(settings, metrics, send_route, dead)
    tickets = TicketStage(settings, metrics, tickets_table, send_obs, dead, clock.now_us)
    aggregate = AggregateStage(settings, metrics, windows_table, NoAlerts(), dead, clock.now_us)
    if keep is not None:
        keep.update(settings=settings, clock=clock, aggregate=aggregate)

    async def go() -> dict[str, float]:
        out: dict[str, float] = {}
        t0 = time.perf_counter()
        for i, raw in enumerate(events):
            import orjson

            source = "tickets" if orjson.loads(raw)["type"].startswith("ticket.") else "surveys"
            await ingest.handle(Provenance(source, source, 0, i, None, clock.now_us()), raw)
        out["ingest"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for part in route.records:
            for i in range(0, len(part), BATCH):
                await tickets.handle_batch(part[i : i + BATCH])
        out["tickets"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for part in obs.records:
            for i in range(0, len(part), BATCH):
                await aggregate.handle_batch(part[i : i + BATCH])
        out["aggregate"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        views = list(aggregate.snapshot_states(set(range(8))))
        for _, state in views:
            state.windows(clock.now_us())
        out["snapshot"] = time.perf_counter() - t0
        out["obs_records"] = sum(map(len, obs.records))
        out["window_rows"] = len(windows_table)
        return out

    return asyncio.run(go())


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 100_000
    events = demo_events(n, seed=11)
    if "--profile" in sys.argv:
        import cProfile
        import pstats

        cProfile.runctx("run(events)", globals(), {"events": events}, "/tmp/stages.prof")
        pstats.Stats("/tmp/stages.prof").sort_stats("tottime").print_stats(25)
        return
    res = run(events)
    print(f"events {n:,}")
    for stage in ("ingest", "tickets", "aggregate"):
        print(f"  {stage:<10} {res[stage]:7.2f} s  {n / res[stage]:>10,.0f} events/s")
    total = res["ingest"] + res["tickets"] + res["aggregate"]
    print(f"  {'all':<10} {total:7.2f} s  {n / total:>10,.0f} events/s")
    print(f"  observation records {res['obs_records']:,.0f}, window rows {res['window_rows']:,.0f}")
    print(f"  snapshot of all keys {res['snapshot'] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
