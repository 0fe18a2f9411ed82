"""`cxstream validate FILE`: check JSON Lines against the contract offline.

For platform teams wiring a new source: the same rules the worker applies,
one line per rejected event with its reason, then a summary.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from typing import IO

import orjson

from streams.domain.model import DEFAULT_DIMENSIONS, Rejection, Source
from streams.domain.validation import decode


def topic_of(raw: bytes) -> Source:
    """Which input topic a line belongs on, by its ``type`` prefix (tickets
    when it cannot be told, so the line still gets its own reason)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "tickets"
    kind = doc.get("type") if isinstance(doc, dict) else None
    return "surveys" if isinstance(kind, str) and kind.startswith("survey.") else "tickets"


def run(
    path: str, out: IO[str], now_us: int, dimensions: Sequence[str] = DEFAULT_DIMENSIONS
) -> int:
    """Returns 0 when every non-empty line is valid, 1 otherwise."""
    reasons: Counter[str] = Counter()
    accepted = 0
    handle = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        for number, line in enumerate(handle, start=1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            result = decode(raw, topic_of(raw), now_us, dimensions=dimensions)
            if isinstance(result, Rejection):
                reasons[result.reason] += 1
                print(f"line {number}: {result.reason}: {result.detail}", file=out)
            else:
                accepted += 1
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
    rejected = sum(reasons.values())
    detail = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
    print(f"{accepted} valid, {rejected} invalid" + (f" ({detail})" if detail else ""), file=out)
    return 0 if rejected == 0 else 1
