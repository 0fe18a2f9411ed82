"""Records handed to the stages a fetched batch at a time.

Faust delivers every record on its own: the fetch loop awaits each record's
delivery in two new tasks (the delivery and a watch on the flow), the
conductor decodes it into an event and queues it, and the agent's stream
takes it off the queue, runs its processors and acknowledges it. With the
stages batching already, that chain was most of a worker's time (about
150 us of 250 us per event, measured with py-spy under load), and none of
it computes a number.

``install_batch_delivery`` replaces Faust's fetch loop (``_drain_messages``
of faust-streaming 0.15.3, the version tested) with one that hands the
records of the stages' topics to their handlers as one list per topic per
fetch. Everything Faust's loop does for exactness is kept, in the same
order per record: records below the partition's read offset are dropped
(a rewind re-reads them), gaps in the offsets are registered so commits
can pass them, and offsets are committed every ``commit_every`` acks.
Records of other topics (none in cxstream) still go through Faust's own
path.

Acknowledgement follows Faust's contract with its commit loop and its
rebalance: a batch's records are tracked as in flight (``wait_empty``
waits for them before partitions are revoked) when the handler gets them,
and acknowledged only after it returned, that is after everything the
batch sent and wrote was acknowledged by the broker (the stages flush).
A batch fetched while the flow is suspended (a rebalance began) is not
handled, as Faust drops the records it has queued then: the rebalance
ends by seeking every stream partition to its committed offset, so they
are read again by their owner. When the fetcher is stopped
(SIGTERM) during a batch, the batch runs to its end and is acknowledged
first, so a graceful stop re-reads nothing. A handler that fails leaves
its records unacknowledged: never committed, read again after a restart,
where the stages' high-water marks make the replay harmless.
An error escaping a handler stops the fetch, as in Faust's loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

#: Handles one topic's records of one fetch (Faust ``Message``s), in offset
#: order per partition.
BatchHandler = Callable[[Sequence[Any]], Awaitable[None]]

#: Faust's diagnostic flag for a consumer waiting on a fetch.
_FETCHING = "FETCHING"
#: Records between yields to the event loop while a fetch is sorted.
_YIELD_EVERY = 1000


def install_batch_delivery(app: Any, handlers: Mapping[str, BatchHandler]) -> None:
    """Hand the records of ``handlers``' topics to them a fetch at a time
    (``app``: a Faust App, before it starts)."""
    consumer = app.consumer

    async def drain(fetcher: Any) -> None:
        await _drain(consumer, handlers, fetcher)

    consumer._drain_messages = drain


async def _drain(consumer: Any, handlers: Mapping[str, BatchHandler], fetcher: Any) -> None:
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
                handler = handlers.get(tp.topic)
                if handler is None:
                    await consumer.wait_first(callback(message), consumer.suspend_flow.wait())
                else:
                    batches.setdefault(tp.topic, []).append(message)
                read_offsets[tp] = offset
            diag.unset_flag(_FETCHING)
            for topic, messages in batches.items():
                if consumer.suspend_flow.is_set():
                    break  # a rebalance began: its seek reads them again
                await _deliver(consumer, handlers[topic], messages)
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


async def _deliver(consumer: Any, handler: BatchHandler, messages: list[Any]) -> None:
    for message in messages:
        consumer.track_message(message)  # in flight: wait_empty waits for it
    batch = asyncio.ensure_future(handler(messages))
    try:
        try:
            await asyncio.shield(batch)
        except asyncio.CancelledError:
            # The fetcher stops (SIGTERM): the batch runs to its end and is
            # acknowledged, so the commit that follows covers it and the next
            # owner reads nothing twice. Then the stop goes on.
            await batch
            _ack(consumer, messages)
            raise
    except BaseException:
        if not (batch.done() and not batch.cancelled() and batch.exception() is None):
            # Not acknowledged, so never committed; no longer in flight, so
            # a rebalance or a stop does not wait for it.
            unacked = consumer._unacked_messages
            for message in messages:
                unacked.discard(message)
        raise
    _ack(consumer, messages)


def _ack(consumer: Any, messages: list[Any]) -> None:
    for message in messages:
        consumer.ack(message)
