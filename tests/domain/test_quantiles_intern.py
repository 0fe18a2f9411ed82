"""Sketch bucket indexes are shared int objects (memory), values unchanged."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from streams.domain.quantiles import _LOG_GAMMA, Sketch, bucket_of


@given(st.integers(min_value=1, max_value=10**18))
def test_bucket_of_is_the_log_bucket_and_shared_in_range(value: int) -> None:
    index = bucket_of(value)
    assert index == math.ceil(math.log(value) / _LOG_GAMMA)
    if index < 2048:
        assert bucket_of(value) is index  # one object per index


def test_decoded_sketches_share_their_indexes() -> None:
    a, b = Sketch(), Sketch()
    for v in (31_000_000, 5_000_000_000, 86_400_000_000):
        a.add(v)
        b.add(v * 3)
    decoded = Sketch.from_json(a.to_json())
    assert decoded.buckets == a.buckets
    for mine, theirs in zip(sorted(decoded.buckets), sorted(a.buckets), strict=True):
        assert mine is theirs
