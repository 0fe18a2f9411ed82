"""Batch delivery's fetch loop against a consumer double with Faust's
bookkeeping (read offsets, gaps, tracking, acks). The real consumer, broker
and rebalances are in the integration and fault suites, which run with batch
delivery (the default)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from streams.pipeline.delivery import install_batch_delivery


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass(eq=False)
class Message:
    topic: str
    partition: int
    offset: int
    acked: bool = False

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


class Flag:
    def __init__(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True

    async def wait(self) -> None:
        while not self._set:
            await asyncio.sleep(0.01)


class Diag:
    def set_flag(self, flag: str) -> None:
        pass

    def unset_flag(self, flag: str) -> None:
        pass


class Topics:
    def acks_enabled_for(self, topic: str) -> bool:
        return True


class App:
    def __init__(self) -> None:
        self.topics = Topics()
        self.should_stop = False
        self.consumer: Consumer


class Consumer:
    """What the loop uses of Faust's consumer, recording what it does."""

    consumer_stopped_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, fetches: list[list[Message]], suspend_before: int | None = None) -> None:
        self.app = App()
        self.app.consumer = self
        self.transport = self
        self._fetches = list(fetches)
        self._suspend_before = suspend_before
        self._stopped = Flag()
        self.suspend_flow = Flag()
        self._read_offset: dict[TP, int | None] = {}
        self._commit_every: int | None = None
        self._n_acked = 0
        self.diag = Diag()
        self.should_stop = False
        self._unacked_messages: set[Message] = set()
        self.tracked: list[Message] = []
        self.acked: list[Message] = []
        self.gaps: list[tuple[TP, int, int]] = []
        self.via_callback: list[Message] = []
        self.fetch_number = 0

    async def callback(self, message: Message) -> None:
        self.via_callback.append(message)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        self.fetch_number += 1
        if self._suspend_before == self.fetch_number:
            self.suspend_flow.set()
        if not self._fetches:
            self._stopped.set()
            return
        for m in self._fetches.pop(0):
            yield m.tp, m

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait_first(self, *coros: Any) -> None:
        await coros[0]
        for c in coros[1:]:
            c.close()

    async def _add_gap(self, tp: TP, start: int, end: int) -> None:
        self.gaps.append((tp, start, end))

    async def commit(self) -> None:
        pass

    def track_message(self, message: Message) -> None:
        self._unacked_messages.add(message)
        self.tracked.append(message)

    def ack(self, message: Message) -> bool:
        message.acked = True
        self._unacked_messages.discard(message)
        self.acked.append(message)
        return True


def msgs(topic: str, partition: int, offsets: Sequence[int]) -> list[Message]:
    return [Message(topic, partition, o) for o in offsets]


class Fetcher:
    def __init__(self) -> None:
        self._stopped = Flag()


class Flushes:
    """The flush: records what was acknowledged when it ran."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.acked_before: list[int] = []

    async def __call__(self) -> None:
        self.acked_before.append(len(self.consumer.acked))


def run(consumer: Consumer, topics: Sequence[str], handle: Any) -> Flushes:
    flush = Flushes(consumer)
    install_batch_delivery(consumer.app, topics, handle, flush)
    asyncio.run(consumer._drain_messages(Fetcher()))  # type: ignore[attr-defined]
    return flush


def offsets(batches: Mapping[str, Sequence[Message]]) -> dict[str, list[tuple[int, int]]]:
    return {t: [(m.partition, m.offset) for m in ms] for t, ms in batches.items()}


def test_each_fetch_reaches_the_handler_at_once_by_topic_then_is_acked() -> None:
    a0, a1, other = msgs("a", 0, [0, 1, 2]), msgs("a", 1, [0]), msgs("x", 0, [5])
    b0 = msgs("b", 0, [7])
    consumer = Consumer([a0[:2] + other + a1 + b0, a0[2:]])
    fetches: list[dict[str, list[tuple[int, int]]]] = []

    async def handle(batches: Mapping[str, Sequence[Message]]) -> None:
        # In flight while handled: a rebalance's wait_empty waits for them.
        assert all(
            m in consumer._unacked_messages and not m.acked for ms in batches.values() for m in ms
        )
        fetches.append(offsets(batches))

    flush = run(consumer, ["a", "b"], handle)
    assert fetches == [{"a": [(0, 0), (0, 1), (1, 0)], "b": [(0, 7)]}, {"a": [(0, 2)]}]
    # One flush per fetch, before any of its records is acknowledged.
    assert flush.acked_before == [0, 4]
    assert sorted((m.topic, m.partition, m.offset) for m in consumer.acked) == [
        ("a", 0, 0),
        ("a", 0, 1),
        ("a", 0, 2),
        ("a", 1, 0),
        ("b", 0, 7),
    ]
    assert not consumer._unacked_messages
    assert consumer.via_callback == other  # topics not handed over: Faust's path
    assert consumer._read_offset == {
        TP("a", 0): 2,
        TP("a", 1): 0,
        TP("b", 0): 7,
        TP("x", 0): 5,
    }


def test_records_below_the_read_offset_are_dropped_and_gaps_registered() -> None:
    consumer = Consumer([msgs("a", 0, [3, 4, 9])])
    consumer._read_offset[TP("a", 0)] = 4  # a rewind (seek) to 4
    seen: list[int] = []

    async def handle(batches: Mapping[str, Sequence[Message]]) -> None:
        seen.extend(m.offset for m in batches["a"])

    run(consumer, ["a"], handle)
    assert seen == [4, 9]
    assert consumer.gaps == [(TP("a", 0), 5, 9)]


def test_a_fetch_made_once_a_rebalance_began_is_not_handled_nor_tracked() -> None:
    consumer = Consumer([msgs("a", 0, [0, 1]), msgs("a", 0, [2])], suspend_before=2)
    seen: list[int] = []

    async def handle(batches: Mapping[str, Sequence[Message]]) -> None:
        seen.extend(m.offset for m in batches["a"])

    run(consumer, ["a"], handle)
    assert seen == [0, 1]
    assert [m.offset for m in consumer.tracked] == [0, 1]
    assert not consumer._unacked_messages


def test_a_failed_batch_is_neither_acked_nor_left_in_flight() -> None:
    consumer = Consumer([msgs("b", 0, [0]) + msgs("a", 0, [0, 1])])

    async def handle(batches: Mapping[str, Sequence[Message]]) -> None:
        raise RuntimeError("broker gone")

    with pytest.raises(RuntimeError, match="broker gone"):
        run(consumer, ["a", "b"], handle)
    assert consumer.acked == []
    assert not consumer._unacked_messages  # wait_empty would otherwise wait forever


def test_a_stop_during_a_batch_lets_it_finish_and_acks_it() -> None:
    consumer = Consumer([msgs("a", 0, [0, 1])])
    finished: list[int] = []

    async def handle(batches: Mapping[str, Sequence[Message]]) -> None:
        await asyncio.sleep(0.05)  # still sending when the stop comes
        finished.extend(m.offset for m in batches["a"])

    async def main() -> None:
        install_batch_delivery(consumer.app, ["a"], handle, Flushes(consumer))
        drain = asyncio.ensure_future(consumer._drain_messages(Fetcher()))  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)
        drain.cancel()  # what Faust's Fetcher.on_stop does
        with pytest.raises(asyncio.CancelledError):
            await drain

    asyncio.run(main())
    assert finished == [0, 1]
    assert [m.offset for m in consumer.acked] == [0, 1]
    assert not consumer._unacked_messages
