"""``cxstream worker`` with test-only faults, set in its environment:

- $FAULTS_BOOM_PREFIX: events whose event_id starts with it raise inside the
  pipeline, as a bug would. This wraps the validator's ``decode`` before the
  pipeline imports it: the record decodes, then processing raises. The
  contract says such a record is dead-lettered with reason
  ``processing_error`` and processing continues.
- $FAULTS_RECOVERY_SEEK_DELAY_S: Faust's table recovery pauses this long
  after seeking its changelog partitions, before it resumes fetching them
  (a busy event loop does the same, for less long). A fetch still waiting
  in the consumer's thread from before the rebalance used to take their
  records in that pause and drop them, and the recovery then waited forever
  (``guard_fetch_partitions`` in streams/pipeline/offsets.py).

cxstream has no fault-injection hook of its own: these wrap its parts, or
Faust's, before the worker starts.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from typing import Any

import streams.domain.validation as validation


def _install(prefix: str) -> None:
    real = validation.decode

    def decode(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if str(getattr(result, "event_id", "")).startswith(prefix):
            raise RuntimeError(f"injected processing error ({prefix}*)")
        return result

    validation.decode = decode


def _slow_recovery_seek(delay_s: float) -> None:
    from faust.transport.consumer import ThreadDelegateConsumer

    real = ThreadDelegateConsumer.seek_wait

    async def seek_wait(self: ThreadDelegateConsumer, partitions: Mapping[Any, int]) -> None:
        await real(self, partitions)
        await asyncio.sleep(delay_s)

    ThreadDelegateConsumer.seek_wait = seek_wait  # type: ignore[method-assign]


if __name__ == "__main__":
    prefix = os.environ.get("FAULTS_BOOM_PREFIX")
    if prefix:
        _install(prefix)
    delay = os.environ.get("FAULTS_RECOVERY_SEEK_DELAY_S")
    if delay:
        _slow_recovery_seek(float(delay))
    from streams.cli import main  # imported after the patch: its modules bind the wrapper

    sys.exit(main(sys.argv[1:]))
