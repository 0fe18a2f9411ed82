"""One /metrics exposition of K fully filled (channel, team) keys, without
Kafka: the stages fill their in-memory tables with the suite's memory-section
events, then a collector over their states is rendered as the /metrics page
renders it. Prints figures, asserts nothing: the first scrape of a process,
a scrape after every key changed (each key's lines rendered again), and one
where no key changed (every key's lines reused).

    python bench/scrape.py [KEYS] [--profile]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from bench.driver import fill_events
from bench.stages import run
from streams.domain.confidence import WindowBounds
from streams.exposition.collectors import CxCollector, KeyView
from streams.exposition.text import generate
from streams.pipeline.envelope import dims_from_key


def registry_of(keep: dict[str, Any], changed: list[bool]) -> CollectorRegistry:
    """The registry of a worker owning every key; while ``changed[0]``, each
    key is published as changed since the last scrape."""
    aggregate, clock, settings = keep["aggregate"], keep["clock"], keep["settings"]

    def views() -> Any:
        now = clock.now_us()
        for key, state in aggregate.snapshot_states(set(range(settings.partitions))):
            version = None if changed[0] else state.version
            yield KeyView(
                dims_from_key(key), state.windows(now), state.counters(now), {}, now, version
            )

    registry = CollectorRegistry()
    registry.register(CxCollector(settings.dimensions, views, WindowBounds(settings.confidence)))
    return registry


def timed(registry: CollectorRegistry, n: int) -> tuple[float, bytes]:
    times, body = [], b""
    for _ in range(n):
        t0 = time.perf_counter()
        body = generate(registry)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), body


def main() -> None:
    keys = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 1000
    events = fill_events(keys, time.time())
    keep: dict[str, Any] = {}
    t0 = time.perf_counter()
    run(events, keep)
    took = time.perf_counter() - t0
    print(f"{keys:,} keys, {len(events):,} events through the stages in {took:.1f} s")
    changed = [False]
    registry = registry_of(keep, changed)
    if "--profile" in sys.argv:
        import cProfile
        import pstats

        generate(registry)
        changed[0] = True
        cProfile.runctx("generate(registry)", globals(), {"registry": registry}, "/tmp/scrape.prof")
        pstats.Stats("/tmp/scrape.prof").sort_stats("tottime").print_stats(20)
        return
    first, body = timed(registry, 1)
    changed[0] = True
    all_changed, _ = timed(registry, 5)
    changed[0] = False
    timed(registry, 1)
    none_changed, again = timed(registry, 5)
    assert again == body  # the same states give the same page
    series = sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))
    print(f"  size {len(body) / 1e6:.1f} MB, {series:,} series")
    print(f"  first scrape of the process  {first * 1000:6.0f} ms")
    print(f"  every key changed (median)   {all_changed * 1000:6.0f} ms")
    print(f"  no key changed (median)      {none_changed * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
