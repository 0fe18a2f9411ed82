"""WriteBarrier and ChangelogTable: a batch's table writes go out with its
flush, in order, and the flush waits for exactly their outcome."""

from __future__ import annotations

import asyncio

import pytest

from streams.pipeline.tables import ChangelogTable
from streams.pipeline.writes import WriteBarrier


class Buffer:
    """Faust's producer buffer as the tables use it: put() queues a write."""

    def __init__(self) -> None:
        self.queued: list[asyncio.Future[None]] = []

    def put(self, fut: asyncio.Future[None]) -> None:
        self.queued.append(fut)


def test_take_waits_for_the_writes_queued_so_far_then_the_client_flush() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        buffer = Buffer()
        events: list[str] = []

        async def client_flush() -> None:
            events.append("client flush")

        barrier = WriteBarrier(buffer, client_flush)
        first, second = loop.create_future(), loop.create_future()
        buffer.put(first)
        assert buffer.queued == [first]  # still queued in Faust's buffer
        done = barrier.take()
        buffer.put(second)  # the next batch's write: not this flush's
        assert barrier.pending == 1
        await asyncio.sleep(0.01)
        assert not done.done()  # its write is not acknowledged yet
        first.set_result(None)
        await asyncio.wait_for(done, 1)
        events.append("first batch acknowledged")
        assert not second.done()
        second.set_result(None)
        await barrier.take()
        return events

    assert asyncio.run(main()) == ["client flush", "first batch acknowledged", "client flush"]


def test_a_failed_write_fails_the_flush() -> None:
    async def main() -> None:
        buffer = Buffer()

        async def client_flush() -> None:
            pass

        barrier = WriteBarrier(buffer, client_flush)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        buffer.put(fut)
        fut.set_exception(ConnectionError("changelog write failed"))
        await barrier.take()

    with pytest.raises(ConnectionError, match="changelog write failed"):
        asyncio.run(main())


class Sent:
    """The producer side: records sent per (topic, partition), in order."""

    def __init__(self, fail: bool = False) -> None:
        self.records: list[tuple[str, int, bytes, bytes | None]] = []
        self.fail = fail

    async def __call__(
        self, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]
    ) -> list[asyncio.Future[None]]:
        await asyncio.sleep(0)  # the client may make the caller wait
        self.records.extend((topic, partition, k, v) for k, v in records)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            fut.set_exception(ConnectionError("MessageSizeTooLarge"))
        else:
            fut.set_result(None)
        return [fut]


def test_changelog_records_go_out_with_the_take_in_order_per_partition() -> None:
    async def main() -> Sent:
        sent = Sent()

        async def client_flush() -> None:
            pass

        barrier = WriteBarrier(Buffer(), client_flush, sent)
        barrier.changelog("t-changelog", 1, b"a", b"1")
        barrier.changelog("t-changelog", 0, b"b", b"1")
        barrier.changelog("t-changelog", 1, b"a", None)  # a delete: a tombstone
        assert sent.records == []  # nothing before the flush
        assert barrier.pending == 3
        first = barrier.take()
        barrier.changelog("t-changelog", 1, b"a", b"2")  # the next batch
        second = barrier.take()
        await asyncio.gather(first, second)
        return sent

    assert asyncio.run(main()).records == [
        ("t-changelog", 1, b"a", b"1"),
        ("t-changelog", 1, b"a", None),
        ("t-changelog", 0, b"b", b"1"),
        ("t-changelog", 1, b"a", b"2"),
    ]


def test_a_refused_changelog_record_fails_the_take() -> None:
    async def main() -> None:
        async def client_flush() -> None:
            pass

        barrier = WriteBarrier(Buffer(), client_flush, Sent(fail=True))
        barrier.changelog("t-changelog", 0, b"k", b"v" * 1000)
        await barrier.take()

    with pytest.raises(ConnectionError, match="MessageSizeTooLarge"):
        asyncio.run(main())


class FakeTable:
    """What ChangelogTable uses of a Faust table: its store's dict, its
    changelog topic and its partitioner."""

    class _Topic:
        def get_topic_name(self) -> str:
            return "app-tickets-changelog"

    class _Store:
        def __init__(self) -> None:
            self.data: dict[bytes, bytes] = {}

    def __init__(self) -> None:
        self.data = self._Store()
        self.changelog_topic = self._Topic()

    def partition_for_key(self, key: bytes) -> int:
        return len(key) % 4


def test_changelog_table_writes_the_store_at_once_and_queues_the_record() -> None:
    async def main() -> tuple[FakeTable, Sent]:
        sent = Sent()

        async def client_flush() -> None:
            pass

        barrier = WriteBarrier(Buffer(), client_flush, sent)
        faust_table = FakeTable()
        table = ChangelogTable(faust_table, barrier)  # type: ignore[arg-type]
        table[b"t:1"] = b"state-1"
        table[b"t:22"] = b"state-2"
        assert table[b"t:1"] == b"state-1" and b"t:22" in table and len(table) == 2
        assert table.pop(b"t:1") == b"state-1"
        assert table.get(b"t:1") is None
        assert dict(table.items()) == {b"t:22": b"state-2"}
        assert sent.records == []
        await barrier.take()
        return faust_table, sent

    faust_table, sent = asyncio.run(main())
    assert faust_table.data.data == {b"t:22": b"state-2"}
    assert sent.records == [
        ("app-tickets-changelog", 3, b"t:1", b"state-1"),
        ("app-tickets-changelog", 3, b"t:1", None),
        ("app-tickets-changelog", 0, b"t:22", b"state-2"),
    ]
