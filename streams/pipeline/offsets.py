"""Where a worker reads its partitions from after a rebalance.

Every stage judges replays by per-partition high-water marks, so each
partition must be read in offset order from its committed offset, without
gaps. Faust (faust-streaming 0.15.3, the version tested) breaks that in two ways once tables are
recovered, both seen on a real broker as lost numbers:

1. It resumes fetching the stream partitions *before* seeking them to their
   committed offsets. Records fetched in between come from the consumer's
   old position, often past the committed offset; they are delivered first,
   the seek then rewinds, and Faust treats the rewound records as already
   read (below its read offset: dropped) or, for the offsets it jumped over,
   as a gap it counts as acknowledged. Records were skipped, and a partition
   could keep an unacknowledged offset forever (its lag stuck at 1).
2. It seeks only partitions that have a committed offset. A partition
   without one (a new consumer group: a first deployment, a new
   ``--app-id``, workers starting together on a backfill) stays where the
   consumer was, which can be past records it fetched and dropped during
   the rebalance.

So, while the worker is rebalancing, resuming a stream partition is held
back until the seek, and the seek also moves partitions without a committed
offset to their earliest offset (what ``consumer_auto_offset_reset=
"earliest"`` promises). Reading a record again is harmless; skipping one is
not. Changelog partitions are left alone: Faust reads them by position.

A third way loses records of every kind, changelogs included:

3. A fetch runs in the consumer's thread and may wait there for records
   (up to a second) while the partitions it asked for change: it is given
   Faust's live set of active partitions, and the Kafka client reads an
   empty set as "every partition". When a rebalance pauses every partition
   during such a fetch, it drains whatever the client holds for all of them,
   changelog partitions included, and Faust drops those records because the
   flow is stopped. Their positions have moved past them: a table recovery
   that had just sought a changelog partition to its start then waits
   forever for records already taken (seen in the fault suite's takeover:
   the surviving worker recovered nothing, every changelog partition at its
   end offset). ``guard_fetch_partitions`` makes a fetch take only what is
   active when it takes it, and nothing when nothing is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Set
from typing import Any

log = logging.getLogger(__name__)


def guard_stream_positions(app: Any) -> None:
    """Install both guards on the consumer of ``app`` (a Faust App)."""
    consumer = app.consumer
    resume_partitions = consumer.resume_partitions
    seek_to_committed = consumer.seek_to_committed
    held: set[Any] = set()

    def is_stream(tp: Any) -> bool:
        # The topics Faust commits offsets for: the agents' streams.
        return bool(app.topics.acks_enabled_for(tp.topic))

    def resume_after_seek(tps: Iterable[Any]) -> None:
        tps = set(tps)
        if app.rebalancing:
            hold = {tp for tp in tps if is_stream(tp)}
            held.update(hold)
            tps -= hold
        if tps:
            resume_partitions(tps)

    async def seek_then_resume() -> Mapping[Any, int]:
        committed: Mapping[Any, int] = await seek_to_committed()
        fresh = [
            tp
            for tp, offset in committed.items()
            if (offset is None or offset < 0) and is_stream(tp)
        ]
        if fresh:
            log.info(
                "no committed offset: reading from the beginning of %s",
                ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(fresh)),
            )
            earliest: Mapping[Any, int] = await consumer.earliest_offsets(*fresh)
            for tp in fresh:
                await consumer.seek(tp, earliest.get(tp) or 0)
        if held:
            assigned = set(consumer.assignment())
            now = {tp for tp in held if tp in assigned}
            held.clear()
            if now:
                resume_partitions(now)
        return committed

    consumer.resume_partitions = resume_after_seek
    consumer.seek_to_committed = seek_then_resume


class ActivePartitions:
    """What a fetch in the consumer's thread may take: the partitions active
    at that moment (a view of Faust's live set), and never "all of them".

    The Kafka client filters a fetch's records with ``if partitions and tp
    not in partitions``: only membership and truth are asked."""

    __slots__ = ("_live",)

    def __init__(self, live: Set[Any]) -> None:
        self._live = live

    def __bool__(self) -> bool:
        return True  # empty still filters: it lets nothing through

    def __contains__(self, tp: object) -> bool:
        return tp in self._live


def guard_fetch_partitions(app: Any) -> None:
    """Give every fetch of ``app``'s consumer (a Faust App) an
    ``ActivePartitions`` view instead of the live set itself."""
    consumer = app.consumer
    getmany = consumer._getmany

    async def fetch(active_partitions: Set[Any] | None, timeout: float) -> Any:
        view = None if active_partitions is None else ActivePartitions(active_partitions)
        return await getmany(active_partitions=view, timeout=timeout)

    consumer._getmany = fetch
