"""A mergeable, deletable quantile sketch with bounded relative error.

Log-spaced buckets (as in DDSketch): a value v > 0 falls in bucket
``ceil(log_gamma(v))`` with gamma = (1 + a) / (1 - a); every value in a bucket
is within relative error ``a`` of the bucket's representative value. Counts
are integers, so a value can be removed exactly (corrections to rolling
windows) and sketches merge by adding counts. Zero is counted exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

RELATIVE_ACCURACY = 0.01
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)


#: One int object per bucket index, shared by every sketch. Indexes above
#: 256 are not cached by CPython, and a worker holds hundreds of thousands
#: of sketch entries (a 30-day window of a busy key has hundreds): a fresh
#: 32-byte int per entry was about 13 MB of a 1,000-key worker. The range
#: covers every duration up to 10**15 us (31 years): index 1,727.
_INDEXES = tuple(range(2048))


def _shared_index(index: int) -> int:
    return _INDEXES[index] if 0 <= index < len(_INDEXES) else index


def bucket_of(value: int) -> int:
    """Bucket index of a positive value."""
    return _shared_index(math.ceil(math.log(value) / _LOG_GAMMA))


def representative(index: int) -> float:
    """The value reported for a bucket: within RELATIVE_ACCURACY of all its members."""
    return 2.0 * _GAMMA**index / (_GAMMA + 1.0)


class Sketch:
    __slots__ = ("buckets", "zeros")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.zeros = 0

    @property
    def count(self) -> int:
        return self.zeros + sum(self.buckets.values())

    def add(self, value: int, count: int = 1) -> None:
        if value <= 0:
            self.zeros += count
            return
        index = bucket_of(value)
        self.buckets[index] = self.buckets.get(index, 0) + count

    def remove(self, value: int, count: int = 1) -> int:
        """Remove up to ``count`` occurrences, never below zero; returns how
        many were removed (so a running total can follow exactly)."""
        if value <= 0:
            removed = min(count, self.zeros)
            self.zeros -= removed
            return removed
        index = bucket_of(value)
        have = self.buckets.get(index, 0)
        removed = min(count, have)
        if have - removed > 0:
            self.buckets[index] = have - removed
        else:
            self.buckets.pop(index, None)
        return removed

    def subtract(self, other: Sketch) -> None:
        """Remove every member of ``other`` (which must be contained in self)."""
        self.zeros = max(0, self.zeros - other.zeros)
        for index, n in other.buckets.items():
            left = self.buckets.get(index, 0) - n
            if left > 0:
                self.buckets[index] = left
            else:
                self.buckets.pop(index, None)

    def copy(self) -> Sketch:
        out = Sketch()
        out.zeros = self.zeros
        out.buckets = dict(self.buckets)
        return out

    def merge(self, other: Sketch) -> None:
        self.zeros += other.zeros
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n

    @classmethod
    def merged(cls, sketches: Iterable[Sketch]) -> Sketch:
        out = cls()
        for s in sketches:
            out.merge(s)
        return out

    def quantile(self, q: float) -> float | None:
        """Estimate of the nearest-rank value: sorted[max(0, ceil(q*n) - 1)]."""
        found = self.quantiles((q,))
        return None if found is None else found[0]

    def quantiles(self, qs: Iterable[float]) -> list[float] | None:
        """``quantile`` for several q in one pass over the sorted buckets."""
        n = self.count
        if n == 0:
            return None
        ranks = sorted((max(0, math.ceil(q * n) - 1), i) for i, q in enumerate(qs))
        out = [0.0] * len(ranks)
        pending = iter(ranks)
        rank, slot = next(pending, (None, -1))
        seen = self.zeros
        while rank is not None and rank < seen:
            out[slot] = 0.0
            rank, slot = next(pending, (None, -1))
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            while rank is not None and rank < seen:
                out[slot] = representative(index)
                rank, slot = next(pending, (None, -1))
            if rank is None:
                break
        return out

    def to_json(self) -> list[int]:
        """[zeros, index, count, index, count, ...], sorted: compact and deterministic."""
        flat = [self.zeros]
        for index in sorted(self.buckets):
            flat += (index, self.buckets[index])
        return flat

    @classmethod
    def from_json(cls, flat: list[int]) -> Sketch:
        s = cls()
        s.zeros = flat[0]
        s.buckets = {_shared_index(flat[i]): flat[i + 1] for i in range(1, len(flat), 2)}
        return s
