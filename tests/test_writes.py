"""WriteBarrier: a batch's flush waits for exactly its own table writes."""

from __future__ import annotations

import asyncio

import pytest

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
