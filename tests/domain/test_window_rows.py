"""The window state as stored rows: what the table holds is the state, and a
crash that lands only some of a batch's rows is repaired by the replay.

Rows are written independently after each batch (``take_changes``). After a
crash, any subset of the last batch's row writes may have reached the
changelog; the batch is then replayed with the same observation ids. Every
row judges a replay by its own high-water marks, so the repaired state must
equal the state of a run without the crash, snapshot for snapshot.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.model import DEFAULT_WINDOWS, Observation
from streams.domain.windows import FORMAT, META_ROW, DimsState, bucket_row, obs_id
from streams.errors import StateFormatError

S = 1_000_000
DAY = 86_400 * S
T0 = 1_800_000_000 * S
DIMS = ("chat", "billing")
KINDS = (
    "nps",
    "csat",
    "ces",
    "first_response",
    "resolution",
    "fcr",
    "ticket_created",
    "open",
    "first_response_business",
    "resolution_business",
    "sla_outcome",
    "sla_pending",
    "sla_due",
)
VALUES = {
    "nps": (0, 10),
    "csat": (1, 5),
    "ces": (1, 7),
    "first_response": (0, 3 * DAY),
    "resolution": (0, 3 * DAY),
    "fcr": (0, 1),
    "ticket_created": (1, 1),
    "open": (-1, 1),
    "first_response_business": (0, 3 * DAY),
    "resolution_business": (0, 3 * DAY),
    "sla_outcome": (0, 3),
    "sla_pending": (0, 5),
    "sla_due": (2 * T0, 2 * (T0 + 2 * DAY) + 1),  # sla_due_code: due instant, target bit
}


@st.composite
def batches(draw: st.DrawFn) -> list[list[tuple[Observation, int]]]:
    """Batches of (observation, processing time), positions increasing per partition."""
    out: list[list[tuple[Observation, int]]] = []
    offsets = {0: 0, 1: 0, 100_000: 0}
    now = T0
    for _ in range(draw(st.integers(1, 6))):
        batch = []
        for _ in range(draw(st.integers(1, 25))):
            now += draw(st.integers(0, 3 * 3600 * S))
            kind = draw(st.sampled_from(KINDS))
            lo, hi = VALUES[kind]
            partition = draw(st.sampled_from(sorted(offsets)))
            offsets[partition] += 1
            placed = now + draw(st.integers(-35 * DAY, 120 * S))
            batch.append(
                (
                    Observation(
                        kind,  # type: ignore[arg-type]
                        DIMS,
                        placed,
                        draw(st.integers(lo, hi)),
                        obs_id(partition, offsets[partition], 0),
                        priority="high",
                        sign=1,
                        counted=draw(st.booleans()),
                    ),
                    now,
                )
            )
        out.append(batch)
    return out


def view(state: DimsState, now: int) -> tuple[object, ...]:
    return (tuple(state.windows(now)), state.counters(now))


def table_state(table: dict[bytes, bytes]) -> DimsState:
    return DimsState.from_rows(DIMS, table.items(), DEFAULT_WINDOWS)


def write(state: DimsState, table: dict[bytes, bytes], keep: list[bool] | None = None) -> None:
    upserts, deletes = state.take_changes()
    changes: list[tuple[bytes, bytes | None]] = [*upserts.items(), *((d, None) for d in deletes)]
    for i, (row, raw) in enumerate(changes):
        if keep is not None and not keep[i % len(keep)]:
            continue  # this write never reached the changelog
        if raw is None:
            table.pop(row, None)
        else:
            table[row] = raw


@settings(max_examples=150, deadline=None)
@given(batches(), st.data())
def test_rows_are_the_state_and_partial_writes_are_repaired(
    script: list[list[tuple[Observation, int]]], data: st.DataObject
) -> None:
    live = DimsState.new(DIMS, DEFAULT_WINDOWS)
    table: dict[bytes, bytes] = {}
    for batch in script:
        for obs, now in batch:
            live.apply(obs, now)
        if data.draw(st.booleans(), label="expire"):
            live.expire(batch[-1][1])
        write(live, table)
        now = batch[-1][1]
        assert view(table_state(table), now) == view(live, now)

    # A crash while the last batch's rows were being written: only some landed.
    crashed = DimsState.new(DIMS, DEFAULT_WINDOWS)
    table = {}
    for batch in script[:-1]:
        for obs, now in batch:
            crashed.apply(obs, now)
        write(crashed, table)
    for obs, now in script[-1]:
        crashed.apply(obs, now)
    keep = data.draw(st.lists(st.booleans(), min_size=1, max_size=8), label="landed")
    write(crashed, table, keep)
    # Recovery: the state is what the table holds; the last batch is replayed.
    recovered = table_state(table)
    for obs, now in script[-1]:
        recovered.apply(obs, now)
    now = script[-1][-1][1]
    fresh = DimsState.new(DIMS, DEFAULT_WINDOWS)
    for batch in script:
        for obs, t in batch:
            fresh.apply(obs, t)
    later = now + data.draw(st.integers(0, 2 * DAY), label="later")
    assert view(recovered, later) == view(fresh, later)
    # And a replay of everything changes nothing at all.
    rows = recovered.rows()
    for batch in script:
        for obs, t in batch:
            recovered.apply(obs, t)
    assert recovered.rows() == rows
    assert view(recovered, later) == view(fresh, later)


def test_a_batch_writes_only_the_rows_it_touched() -> None:
    state = DimsState.new(DIMS, DEFAULT_WINDOWS)
    now = T0
    for i in range(2_000):  # 30 days of history
        now += 1_300 * S
        state.apply(
            Observation("first_response", DIMS, now, (i % 900 + 60) * S, obs_id(0, i, 0)), now
        )
    state.take_changes()
    state.apply(Observation("nps", DIMS, now, 9, obs_id(0, 5_000, 0)), now)
    upserts, deletes = state.take_changes()
    # The meta row and the newest bucket of each of the four windows.
    assert sorted(upserts) == sorted(
        [META_ROW]
        + [
            b"b\x1f" + w.name.encode() + b"\x1f" + str(now - now % (w.us // 60)).encode()
            for w in DEFAULT_WINDOWS
        ]
    )
    assert deletes == []
    assert sum(map(len, upserts.values())) < 0.05 * len(state.to_bytes())


def test_unknown_row_format_is_refused_with_a_clear_error() -> None:
    state = DimsState.new(DIMS, DEFAULT_WINDOWS)
    rows = state.rows()
    rows[META_ROW] = rows[META_ROW].replace(f"[{FORMAT},".encode(), b"[99,", 1)
    with pytest.raises(StateFormatError, match=rf"format 99.*reads format {FORMAT}"):
        DimsState.from_rows(DIMS, rows.items(), DEFAULT_WINDOWS)
    with pytest.raises(StateFormatError, match="format 1"):
        DimsState.from_rows(DIMS, [(META_ROW, b'{"v": 1, "dims": []}')], DEFAULT_WINDOWS)


def test_snapshot_cache_follows_changes_and_the_clock() -> None:
    state = DimsState.new(DIMS, DEFAULT_WINDOWS)
    state.apply(Observation("nps", DIMS, T0, 10, obs_id(0, 1, 0)), T0)
    first = state.windows(T0)
    assert state.windows(T0 + S) is first  # nothing changed: the cached answer
    assert first[0].nps["promoter"] == 1
    state.apply(Observation("nps", DIMS, T0, 0, obs_id(0, 2, 0)), T0 + S)
    assert state.windows(T0 + S)[0].nps["detractor"] == 1
    assert state.windows(T0 + 2 * 3600 * S)[0].nps_responses == 0  # slid out of 1h
    assert state.windows(T0 + 2 * 3600 * S)[1].nps_responses == 2  # still in 24h


def test_settled_buckets_are_kept_as_their_rows_and_a_replay_leaves_them_so() -> None:
    state = DimsState.new(DIMS, DEFAULT_WINDOWS)
    now = T0
    applied = []
    for i in range(200):
        now += 3_000 * S
        obs = Observation("nps", DIMS, now, i % 11, obs_id(0, i, 0))
        state.apply(obs, now)
        applied.append(obs)
    state.expire(now)  # buckets that left their window are gone
    upserts, _ = state.take_changes()
    for name, buckets in state.series.items():
        newest = max(buckets)
        kept = {start for start, b in buckets.items() if isinstance(b, bytes)}
        assert kept == set(buckets) - {newest}, name  # all but the newest
        for start in kept:  # the very bytes written to the table
            assert buckets[start] is upserts[bucket_row(name, start)]
    before = state.windows(now)  # reading decodes nothing either
    # A replay of what every bucket has changes nothing and decodes nothing for good.
    for obs in applied:
        assert not state.apply(obs, now)
    assert all(
        isinstance(b, bytes)
        for buckets in state.series.values()
        for b in list(buckets.values())[:-1]
    )
    assert state.windows(now) == before
    assert state.take_changes() == ({}, [])


@pytest.mark.parametrize("settled", [False, True])
def test_expire_drops_a_bucket_exactly_when_it_leaves_its_window(settled: bool) -> None:
    """A bucket [start, start + W/60) leaves W at now = start + W/60 + W:
    its row is deleted then, not a microsecond before."""
    one_hour = DEFAULT_WINDOWS[0]
    assert one_hour.name == "1h"
    width = one_hour.us // 60
    start = T0 - T0 % width
    state = DimsState.new(DIMS, DEFAULT_WINDOWS)
    state.apply(Observation("nps", DIMS, start + 5 * S, 10, obs_id(0, 1, 0)), start + 5 * S)
    if settled:  # a newer bucket makes this one settle into its row's bytes
        later = start + 3 * width
        state.apply(Observation("nps", DIMS, later, 10, obs_id(0, 2, 0)), later)
    state.take_changes()
    leaves = start + width + one_hour.us
    state.expire(leaves - 1)
    assert start in state.series["1h"]
    assert state.take_changes()[1] == []
    state.expire(leaves)
    assert start not in state.series["1h"]
    assert bucket_row("1h", start) in state.take_changes()[1]
    assert state.windows(leaves)[0].nps["promoter"] == (1 if settled else 0)


def test_keys_share_their_bucket_starts() -> None:
    """Memory: one int object per bucket start, whichever key holds it."""
    a = DimsState.new(("web", "billing"), DEFAULT_WINDOWS)
    b = DimsState.new(("chat", "billing"), DEFAULT_WINDOWS)
    placed = T0 + 7_777 * S  # a start above 256, built anew by each key
    a.apply(Observation("nps", a.dims, placed, 9, obs_id(0, 1, 0)), placed)
    b.apply(Observation("nps", b.dims, placed + 1, 9, obs_id(0, 1, 0)), placed + 1)
    loaded = DimsState.from_rows(a.dims, a.rows().items(), DEFAULT_WINDOWS)
    for name in ("1h", "30d"):
        (sa,), (sb,), (sl,) = a.series[name], b.series[name], loaded.series[name]
        assert sa == sb == sl and sa is sb and sl is sa
