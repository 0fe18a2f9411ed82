"""Records handed to the stages a fetched batch at a time.

Faust delivers every record on its own: the fetch loop awaits each record's
delivery in two new tasks (the delivery and a watch on the flow), the
conductor decodes it into an event and queues it, and the agent's stream
takes it off the queue, runs its processors and acknowledges it. With the
stages batching already, that chain was most of a worker's time (about
150 us of 250 us per event, measured with py-spy under load), and none of
it computes a number.

``install_batch_delivery`` replaces Faust's fetch loop (``_drain_messages``
of faust-streaming 0.15.3, the version tested) with one that hands all of
a fetch's records of the stages' topics to one handler, grouped by topic,
and flushes the producer once per fetch: a stage's batch waits for the
broker once (the ticket stage, for its observations), not once per topic.
Everything Faust's loop does for exactness is kept, in the same order per
record: records below the partition's read offset are dropped (a rewind
re-reads them), gaps in the offsets are registered so commits can pass
them, and offsets are committed every ``commit_every`` acks. Records of
other topics (none in cxstream) still go through Faust's own path.

Acknowledgement follows Faust's contract with its commit loop and its
rebalance: a fetch's records are tracked as in flight (``wait_empty``
waits for them before partitions are revoked) when the handler gets them,
and acknowledged only after it returned and everything it sent and wrote
was acknowledged by the broker (the flush). A fetch made once the flow is
suspended (a rebalance began) is not handled, as Faust drops the records
it has queued then: the rebalance ends by seeking every stream partition
to its committed offset, so they are read again by their owner. When the
fetcher is stopped (SIGTERM) during a fetch's handling, it runs to its end
and is acknowledged first, so a graceful stop re-reads nothing. A handler
or flush that fails leaves the fetch's records unacknowledged: never
committed, read again after a restart, where the stages' high-water marks
make the replay harmless. An error escaping the handler stops the fetch,
as in Faust's loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

#: Handles one fetch: its records (Faust ``Message``s) by topic, in offset
#: order per partition.
FetchHandler = Callable[[Mapping[str, Sequence[Any]]], Awaitable[None]]

#: Longest a fetch waits on the broker for records (Faust's is 1,500 ms).
#: The consumer keeps one fetch in flight per broker, for the partitions it
#: holds no records of: under load that is often only the idle ones, and the
#: busy partitions wait for it to return. 1.5 s of that was most of the
#: latency from an event to /metrics; at 100 ms an idle worker sends ten
#: small requests a second.
FETCH_MAX_WAIT_MS = 100

#: Faust's diagnostic flag for a consumer waiting on a fetch.
_FETCHING = "FETCHING"
#: Records between yields to the event loop while a fetch is sorted.
_YIELD_EVERY = 1000


def install_batch_delivery(
    app: Any,
    topics: Collection[str],
    handle: FetchHandler,
    flush: Callable[[], Awaitable[None]],
) -> None:
    """Hand each fetch's records of ``topics`` to ``handle`` at once, by topic
    (``app``: a Faust App, before it starts); then ``flush`` waits until
    everything it sent and wrote is acknowledged by the broker, and only
    then are the records acknowledged."""
    consumer = app.consumer
    wanted = frozenset(topics)

    async def drain(fetcher: Any) -> None:
        await _drain(consumer, wanted, handle, flush, fetcher)

    consumer._drain_messages = drain


def shorten_fetch_wait(app: Any, max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Make the worker's consumer wait at most ``max_wait_ms`` per fetch
    (Faust fixes 1,500 ms when it makes the aiokafka consumer)."""
    thread = app.consumer._thread
    make = thread._create_worker_consumer

    def create(transport: Any) -> Any:
        consumer = make(transport)
        consumer._fetch_max_wait_ms = max_wait_ms  # read when it starts
        return consumer

    thread._create_worker_consumer = create


async def _drain(
    consumer: Any,
    topics: frozenset[str],
    handle: FetchHandler,
    flush: Callable[[], Awaitable[None]],
    fetcher: Any,
) -> None:
    callback = consumer.callback
    consumer_stopped = consumer._stopped.is_set
    fetcher_stopped = fetcher._stopped.is_set
    read_offsets = consumer._read_offset
    commit_every = consumer._commit_every
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    diag = consumer.diag
    try:
        while not (consumer_stopped() or fetcher_stopped()):
            diag.set_flag(_FETCHING)
            fetched = consumer.getmany(timeout=1.0)
            # getmany may return at once for a while: let other tasks run.
            await consumer.sleep(0)
            if consumer.should_stop:
                break
            batches: dict[str, list[Any]] = {}
            seen = 0
            async for tp, message in fetched:
                seen += 1
                if seen % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                offset = message.offset
                read = read_offsets.get(tp)
                if read is not None and offset < read:
                    continue  # fetched before a rewind; read again after it
                if read and offset - read > 1 and acks_enabled_for(message.topic):
                    # Offsets never seen (compaction, transaction markers):
                    # the commit must be able to pass them.
                    await consumer._add_gap(tp, read + 1, offset)
                if commit_every is not None and consumer._n_acked >= commit_every:
                    consumer._n_acked = 0
                    await consumer.commit()
                if tp.topic in topics:
                    batches.setdefault(tp.topic, []).append(message)
                else:
                    await consumer.wait_first(callback(message), consumer.suspend_flow.wait())
                read_offsets[tp] = offset
            diag.unset_flag(_FETCHING)
            if batches and not consumer.suspend_flow.is_set():
                # (Once a rebalance began, its seek reads them again.)
                await _deliver(consumer, batches, handle, flush)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            return
        raise
    except Exception:
        # As Faust's loop: the fetcher stops; the liveness watchdog ends the
        # worker (--stall-timeout) and its records are read again.
        log.exception("batch delivery failed")
        raise
    finally:
        diag.unset_flag(_FETCHING)


async def _deliver(
    consumer: Any,
    batches: Mapping[str, list[Any]],
    handle: FetchHandler,
    flush: Callable[[], Awaitable[None]],
) -> None:
    messages = [m for batch in batches.values() for m in batch]
    for message in messages:
        consumer.track_message(message)  # in flight: wait_empty waits for them

    async def run() -> None:
        await handle(batches)
        await flush()

    done = asyncio.ensure_future(run())
    try:
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            # The fetcher stops (SIGTERM): the fetch's handling runs to its
            # end and its records are acknowledged, so the commit that follows
            # covers them and the next owner reads nothing twice. Then the
            # stop goes on.
            await done
            _ack(consumer, messages)
            raise
    except BaseException:
        if not (done.done() and not done.cancelled() and done.exception() is None):
            # Not acknowledged, so never committed; no longer in flight, so
            # a rebalance or a stop does not wait for them.
            unacked = consumer._unacked_messages
            for message in messages:
                unacked.discard(message)
        raise
    _ack(consumer, messages)


def _ack(consumer: Any, messages: list[Any]) -> None:
    for message in messages:
        consumer.ack(message)
