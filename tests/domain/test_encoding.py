"""What cxstream keeps in its tables is right-sized: orjson (3.12 and later)
returns bytes with a few KiB allocated whatever their length, which a table
of small rows multiplies into most of a worker's memory."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import orjson

from streams.domain.encoding import dumps
from streams.domain.model import DEFAULT_WINDOWS, Observation
from streams.domain.ticket_state import RouteState
from streams.domain.windows import DimsState, obs_id

S = 1_000_000
T0 = 1_800_000_000 * S
DIMS = ("chat", "billing")


def _kept(make: Callable[[], list[bytes]]) -> tuple[float, float]:
    """(bytes traced per object, mean length) of the objects make returns."""
    tracemalloc.start()
    try:
        kept = make()
        traced = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return traced / len(kept), sum(map(len, kept)) / len(kept)


def test_dumps_is_orjson_dumps_right_sized() -> None:
    docs = [[3, "b", 3600, i, [0] * 30, {"k": "v" * i}] for i in range(50)]
    for doc in docs:
        assert dumps(doc) == orjson.dumps(doc)
        assert dumps(doc, orjson.OPT_SORT_KEYS) == orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    each, length = _kept(lambda: [dumps(docs[i % 50]) for i in range(500)])
    assert each < length + 100, (each, length)


def test_window_rows_and_ticket_states_are_kept_right_sized() -> None:
    state = DimsState.new(DIMS, DEFAULT_WINDOWS)
    now = T0
    for i in range(300):  # rows in many buckets of every window
        now += 9_000 * S
        obs = Observation("first_response", DIMS, now, (i % 90 + 60) * S, obs_id(0, i, 0))
        state.apply(obs, now)
    each, length = _kept(lambda: list(state.rows().values()))
    assert length > 50
    assert each < length + 200, (each, length)  # the list and dict slots included

    ticket = RouteState.new()
    each, length = _kept(lambda: [ticket.to_bytes() for _ in range(200)])
    assert each < length + 100, (each, length)
