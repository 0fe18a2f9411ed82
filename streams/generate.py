"""`cxstream generate`: N realistic events as JSON Lines, spread over the last D days.

For pre-filling topics (benchmarks, load tests) and for trying `cxstream
produce`. Lines come out in arrival order; a share of them are redeliveries
of an earlier line (same bytes, as an at-least-once source would send them),
most within the 24 h dedup horizon, a few after it.
"""

from __future__ import annotations

import heapq
from typing import IO

import orjson

from streams.traffic import Seasonality, TrafficGenerator

DAY_S = 86_400.0
_CHUNK = 8192


def events_per_ticket(seed: int, tickets: int = 3000) -> float:
    """The generator's mean events per ticket, measured on a side copy."""
    side = TrafficGenerator(seed=seed, seasonality=None)
    n = sum(len(side.timed_story(0.0)) for _ in range(tickets))
    return n / tickets


def _redelivery_delay(gen: TrafficGenerator) -> float:
    """Most redeliveries come within the hour, 5 % after the 24 h dedup horizon."""
    rng = gen.rng
    if rng.random() < 0.95:
        return min(rng.expovariate(1 / 3600.0), DAY_S - 1)
    return rng.uniform(DAY_S, 2 * DAY_S)


def generate(
    out: IO[bytes],
    events: int,
    seed: int,
    start_s: float,
    end_s: float,
    timezone: str = "UTC",
    duplicates: float = 0.05,
) -> int:
    """Write exactly `events` lines with occurred_at in [start_s, end_s]; returns the count."""
    gen = TrafficGenerator(seed=seed, seasonality=Seasonality(timezone))
    span = end_s - start_s
    tickets_per_s = events / (events_per_ticket(seed) * (1 + duplicates) * span)
    dumps = orjson.dumps
    rng = gen.rng
    heap: list[tuple[float, int, bytes, bool]] = []
    push, pop = heapq.heappush, heapq.heappop
    seq = 0
    written = 0
    chunk: list[bytes] = []
    while written < events:
        # One pass over the span; a rare second pass tops up a short count.
        for t, desk in gen.arrivals(start_s, tickets_per_s, gen.season_mean(start_s, end_s)):
            if t > end_s:
                break
            for occurred, ev in gen.timed_story(t, desk):
                if occurred <= end_s:
                    push(heap, (occurred, seq, dumps(ev) + b"\n", False))
                    seq += 1
            while heap and heap[0][0] <= t:
                at, _, line, is_copy = pop(heap)
                chunk.append(line)
                written += 1
                if not is_copy and rng.random() < duplicates:
                    again = at + _redelivery_delay(gen)
                    if again <= end_s:
                        push(heap, (again, seq, line, True))
                        seq += 1
                if len(chunk) >= _CHUNK:
                    out.write(b"".join(chunk))
                    chunk.clear()
                if written >= events:
                    break
            if written >= events:
                break
        while heap and written < events:
            chunk.append(pop(heap)[2])
            written += 1
        heap.clear()
    out.write(b"".join(chunk))
    out.flush()
    return written
