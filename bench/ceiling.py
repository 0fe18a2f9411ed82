"""Raw consumer ceiling: aiokafka getmany + orjson decode of the input topics."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaConsumer


async def _read(bootstrap: str, topics: list[str], n: int) -> float:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    try:
        seen = 0
        t0 = 0.0
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                if not t0:
                    t0 = time.perf_counter()
                for r in records:
                    orjson.loads(r.value)
                seen += len(records)
        return seen / (time.perf_counter() - t0)
    finally:
        await consumer.stop()


def ceiling(bootstrap: str, topics: list[str], n: int) -> float:
    """Events/s the raw consumer reads and decodes the n pre-filled events at."""
    return asyncio.run(_read(bootstrap, topics, n))
