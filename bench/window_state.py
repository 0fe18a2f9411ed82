"""Memory and speed of one dims key's state holding a full 30-day window.

Prints figures, asserts nothing. Run: make bench (or python bench/window_state.py).
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc

from streams.domain.model import DEFAULT_WINDOWS, Observation
from streams.domain.windows import DimsState, obs_id

S = 1_000_000
DAYS = 30


def build(n: int, seed: int = 1) -> tuple[DimsState, float]:
    rng = random.Random(seed)
    dims = ("chat", "billing")
    state = DimsState.new(dims, DEFAULT_WINDOWS)
    start = 1_800_000_000 * S
    step = DAYS * 86_400 * S // n
    kinds = ["nps", "csat", "ces", "first_response", "resolution", "fcr"]
    t0 = time.perf_counter()
    now = start
    for i in range(n):
        now += step
        kind = rng.choice(kinds)
        if kind in ("first_response", "resolution"):
            value = int(rng.uniform(30, 5 * 86_400) * S)
        elif kind == "nps":
            value = rng.randint(0, 10)
        elif kind == "csat":
            value = rng.randint(1, 5)
        elif kind == "ces":
            value = rng.randint(1, 7)
        else:
            value = rng.randint(0, 1)
        state.apply(
            Observation(
                kind, dims, now - rng.randint(0, 600) * S, value, obs_id(i % 8, i, 0), "normal"
            ),
            now,
        )  # type: ignore[arg-type]
        if i % 10_000 == 0:
            state.expire(now)
    state.expire(now)
    return state, time.perf_counter() - t0


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    tracemalloc.start()
    state, seconds = build(n)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    raw = state.to_bytes()
    t0 = time.perf_counter()
    for _ in range(20):
        DimsState.from_bytes(raw, DEFAULT_WINDOWS)
    decode_ms = (time.perf_counter() - t0) / 20 * 1000
    t0 = time.perf_counter()
    for _ in range(20):
        state.to_bytes()
    encode_ms = (time.perf_counter() - t0) / 20 * 1000
    t0 = time.perf_counter()
    for _ in range(20):
        state.windows(1_800_000_000 * S + DAYS * 86_400 * S)
    snapshot_ms = (time.perf_counter() - t0) / 20 * 1000
    buckets = {name: len(b) for name, b in state.series.items()}
    print(f"observations applied     {n:,} over {DAYS} days ({n / seconds:,.0f}/s)")
    print(f"buckets per window       {buckets}")
    print(f"serialised state         {len(raw) / 1024:,.1f} KiB (one changelog record)")
    print(f"heap of the state        {current / 1024:,.1f} KiB (tracemalloc)")
    print(f"to_bytes / from_bytes    {encode_ms:.2f} ms / {decode_ms:.2f} ms")
    print(f"snapshot of 4 windows    {snapshot_ms:.2f} ms")


if __name__ == "__main__":
    main()
