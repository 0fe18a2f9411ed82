"""Where stream partitions start after a rebalance (streams/pipeline/offsets.py).

The end-to-end proof is the fault suite's cold-start scenario (workers
starting together on a pre-filled log, exact afterwards) and the benchmark's
scale-out section; these pin the rules themselves: while rebalancing, a
stream partition is resumed only after the seek to committed offsets; the
seek reads a stream partition with no commit from its earliest offset and
leaves a committed one alone; changelog partitions (read by position, never
committed) are never held or sought; a fetch may take only the partitions
active when it takes its records, and nothing when none are (the Kafka
client's side of that is pinned on the real broker in
tests/integration/test_fetch_partitions.py).
"""

from __future__ import annotations

import asyncio
from collections import namedtuple
from typing import Any

from streams.pipeline.offsets import guard_fetch_partitions, guard_stream_positions

TP = namedtuple("TP", ["topic", "partition"])


class FakeConsumer:
    def __init__(self, committed: dict[TP, int | None], earliest: dict[TP, int]) -> None:
        self.committed = committed
        self.earliest = earliest
        self.seeks: list[tuple[TP, int]] = []
        self.resumed: list[set[TP]] = []

    def assignment(self) -> set[TP]:
        return set(self.committed)

    def resume_partitions(self, tps: set[TP]) -> None:
        self.resumed.append(set(tps))

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return dict(self.committed)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.earliest[tp] for tp in tps}

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


class FakeTopics:
    def acks_enabled_for(self, topic: str) -> bool:
        return not topic.endswith("-changelog")


class FakeApp:
    def __init__(self, consumer: FakeConsumer, rebalancing: bool = False) -> None:
        self.consumer: Any = consumer
        self.topics = FakeTopics()
        self.rebalancing = rebalancing


def test_uncommitted_stream_partitions_are_read_from_their_earliest_offset() -> None:
    obs0, obs1, obs2 = TP("app-observations", 0), TP("app-observations", 1), TP("in", 2)
    changelog = TP("app-windows-changelog", 0)
    consumer = FakeConsumer(
        committed={obs0: None, obs1: 41, obs2: -1, changelog: None},
        earliest={obs0: 0, obs1: 0, obs2: 17, changelog: 0},
    )
    app = FakeApp(consumer)
    guard_stream_positions(app)

    result = asyncio.run(app.consumer.seek_to_committed())

    assert sorted(consumer.seeks) == [(obs0, 0), (obs2, 17)]  # from the log start
    assert result == {obs0: None, obs1: 41, obs2: -1, changelog: None}  # Faust sees the same


def test_nothing_is_sought_when_every_partition_has_a_commit() -> None:
    tp = TP("in", 0)
    consumer = FakeConsumer(committed={tp: 5}, earliest={tp: 0})
    app = FakeApp(consumer)
    guard_stream_positions(app)
    asyncio.run(app.consumer.seek_to_committed())
    assert consumer.seeks == []


def test_while_rebalancing_stream_partitions_resume_only_after_the_seek() -> None:
    s0, s1, changelog = TP("in", 0), TP("in", 1), TP("app-windows-changelog", 0)
    consumer = FakeConsumer(committed={s0: 3, s1: 9, changelog: None}, earliest={})
    app = FakeApp(consumer, rebalancing=True)
    guard_stream_positions(app)

    app.consumer.resume_partitions({s0, s1, changelog})
    assert consumer.resumed == [{changelog}]  # the changelog reads on; streams wait

    asyncio.run(app.consumer.seek_to_committed())
    assert consumer.resumed == [{changelog}, {s0, s1}]  # now at their committed offsets


def test_outside_a_rebalance_resuming_is_immediate() -> None:
    s0 = TP("in", 0)
    consumer = FakeConsumer(committed={s0: 3}, earliest={})
    app = FakeApp(consumer, rebalancing=False)
    guard_stream_positions(app)
    app.consumer.resume_partitions({s0})
    assert consumer.resumed == [{s0}]


class FetchingConsumer:
    """Faust's consumer as the guard sees it: ``_getmany`` hands the active
    set on to the consumer's thread, which reads it while it waits."""

    def __init__(self) -> None:
        self.given: list[Any] = []

    async def _getmany(self, active_partitions: Any, timeout: float) -> dict[Any, Any]:
        self.given.append(active_partitions)
        return {}


def test_a_fetch_sees_the_active_set_as_it_changes_and_never_as_everything() -> None:
    live = {TP("in", 0), TP("app-windows-changelog", 0)}
    consumer = FetchingConsumer()
    app = FakeApp(consumer)  # type: ignore[arg-type]
    guard_fetch_partitions(app)

    asyncio.run(app.consumer._getmany(active_partitions=live, timeout=1.0))
    (view,) = consumer.given
    assert TP("app-windows-changelog", 0) in view
    assert TP("in", 1) not in view

    live.clear()  # a rebalance pauses every partition while the fetch waits
    assert bool(view)  # still a filter: the client must not read it as "all"
    assert TP("app-windows-changelog", 0) not in view

    live.add(TP("in", 1))  # resumed during the wait: taken from then on
    assert TP("in", 1) in view


def test_a_client_only_fetch_still_asks_for_everything() -> None:
    consumer = FetchingConsumer()
    app = FakeApp(consumer)  # type: ignore[arg-type]
    guard_fetch_partitions(app)
    asyncio.run(app.consumer._getmany(active_partitions=None, timeout=1.0))
    assert consumer.given == [None]
