"""Liveness and readiness: a worker never hangs alive but idle.

``StallDetector`` is the rule (pure, time passed in): the worker is *stuck*
while the broker is unreachable, while input is waiting (lag > 0) and no
record was read since the previous check, or while it recovers its tables
and read no changelog record since the previous check (a recovery once
waited forever for changelog records a fetch had taken and dropped: see
``guard_fetch_partitions`` in offsets.py; whatever else stops one, the
worker does not wait with it). Stuck for longer than the stall timeout, the
worker exits non-zero so its supervisor restarts it (a fresh process rejoins
the group and recovers its tables; replays are harmless).

``Liveness`` runs the checks on a timer in the worker, publishes
``cx_consumer_lag`` and ``cx_state_recovering``, and answers ``/readyz``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streams.exposition.pipeline_metrics import PipelineMetrics

log = logging.getLogger(__name__)

#: Exit status of a stalled worker (2 is a start-up error, see cli.py).
EXIT_STALLED = 3
STALL_SETTING = "--stall-timeout / CX_STALL_TIMEOUT"


@dataclass(frozen=True)
class Check:
    """One observation of the worker, taken every check interval."""

    reachable: bool
    lag: int | None  # records waiting on assigned input partitions; None = unknown
    progress: int  # grows whenever a record is read or an offset committed
    recovering: bool = False  # reading changelogs: progress of its own kind
    #: Changelog records recovery has read (None: not known, not judged).
    recovery_progress: int | None = None


class StallDetector:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._ok_at: float | None = None  # the last check that found it well
        self._progress: int | None = None
        self._recovery_progress: int | None = None
        self.reason = ""

    def observe(self, now_s: float, check: Check) -> float:
        """Seconds since the worker was last seen well (0 when it is well now)."""
        if self._ok_at is None:
            self._ok_at = now_s
        idle = check.progress == self._progress
        self._progress = check.progress
        recovery_idle = (
            check.recovery_progress is not None
            and check.recovery_progress == self._recovery_progress
        )
        self._recovery_progress = check.recovery_progress if check.recovering else None
        if not check.reachable:
            reason = "the broker is unreachable"
        elif check.lag and idle and not check.recovering:
            reason = f"{check.lag} records wait and none was read"
        elif check.recovering and recovery_idle:
            reason = "recovering its tables, and no changelog record was read"
        else:
            self._ok_at, self.reason = now_s, ""
            return 0.0
        self.reason = reason
        return now_s - self._ok_at

    def expired(self, stuck_s: float) -> bool:
        return stuck_s >= self.timeout_s


def interval_s(timeout_s: float) -> float:
    """Checks often enough to exit within about 1.25 x the timeout."""
    return max(0.5, min(5.0, timeout_s / 4))


class Liveness:
    """The worker side: reads Faust's consumer, feeds the detector, exits."""

    def __init__(
        self,
        app: Any,
        metrics: PipelineMetrics,
        topics: Iterable[str],
        bootstrap: str,
        timeout_s: float,
        exit_process: Callable[[int], None] = os._exit,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.topics = frozenset(topics)
        self.bootstrap = bootstrap
        self.detector = StallDetector(timeout_s)
        self.stuck_s = 0.0
        self._exit = exit_process
        self._lag_series: set[tuple[str, str]] = set()
        self._last_lag: int | None = None
        # Read at scrape time: the gauge is never staler than /readyz.
        metrics.state_recovering.set_function(lambda: 1.0 if self.recovering() else 0.0)

    # -- state Faust knows ---------------------------------------------------

    @property
    def _recovery(self) -> Any:
        return getattr(self.app.tables, "recovery")  # noqa: B009 - untyped in Faust

    def recovering(self) -> bool:
        recovery = self._recovery
        return bool(recovery.in_recovery) or not recovery.completed.is_set()

    def ready(self) -> bool:
        """Assigned (even to nothing: a spare worker is ready) and recovered."""
        return not self.recovering() and not bool(self.app.rebalancing)

    def _progress(self) -> int:
        return int(self.app.monitor.messages_received_total)

    def _recovery_progress(self) -> int:
        """Changelog records read by the recovery (its offsets, summed)."""
        recovery = self._recovery
        return int(sum(recovery.active_offsets.values()) + sum(recovery.standby_offsets.values()))

    # -- the periodic check --------------------------------------------------

    async def check(self) -> None:
        recovering = self.recovering()
        reachable, lag, committed = await self._lag()
        self.stuck_s = self.detector.observe(
            time.monotonic(),
            Check(
                reachable,
                lag,
                self._progress() + committed,
                recovering,
                self._recovery_progress() if recovering else None,
            ),
        )
        if self.stuck_s and not self.detector.expired(self.stuck_s):
            log.warning(
                "no progress for %.0f s: %s (exit after %s = %.0f s)",
                self.stuck_s,
                self.detector.reason,
                STALL_SETTING,
                self.detector.timeout_s,
            )
        if self.detector.expired(self.stuck_s):
            log.error(
                "stalled for %.0f s: %s; exiting with status %d (%s = %.0f s). "
                "Committed state is safe: a restarted worker replays harmlessly.",
                self.stuck_s,
                self.detector.reason,
                EXIT_STALLED,
                STALL_SETTING,
                self.detector.timeout_s,
            )
            logging.shutdown()
            sys.stderr.flush()
            # Not a graceful stop: with the broker gone it would block on the
            # very commits and leave-group that cannot complete.
            self._exit(EXIT_STALLED)

    async def _lag(self) -> tuple[bool, int | None, int]:
        """(broker reachable, records waiting, sum of committed offsets).

        Lag is the consumer group's: end offset minus committed offset (the
        next offset to read), as ``kafka-consumer-groups`` reports it; it
        trails processing by at most the commit interval (1 s)."""
        timeout = interval_s(self.detector.timeout_s) / 2  # a check never takes a whole interval
        consumer = self.app.consumer
        try:
            tps = [tp for tp in consumer.assignment() if tp.topic in self.topics]
        except Exception:  # not started yet
            tps = []
        if not tps:
            self._publish_lag({})
            return await asyncio.to_thread(self._tcp_reachable, timeout), None, 0
        try:
            ends = await asyncio.wait_for(consumer.highwaters(*tps), timeout)
        except Exception as exc:  # timeouts and connection errors alike
            # Right after a broker restart the consumer may be busy
            # reconnecting: the broker is up if it accepts connections, and
            # the lag last seen still says whether input was waiting.
            log.debug("end offsets unavailable: %r", exc)
            reachable = await asyncio.to_thread(self._tcp_reachable, timeout)
            committed = sum(consumer._committed_offset.get(tp) or 0 for tp in tps)
            return reachable, self._last_lag if reachable else None, committed
        committed_sum = 0
        lags: dict[tuple[str, str], int] = {}
        for tp in tps:
            end = ends.get(tp)
            if end is None:
                continue
            # Faust keeps the group's committed offsets (next to read) here.
            committed = consumer._committed_offset.get(tp) or 0
            committed_sum += committed
            lags[(tp.topic, str(tp.partition))] = max(0, int(end) - committed)
        self._publish_lag(lags)
        self._last_lag = sum(lags.values())
        return True, self._last_lag, committed_sum

    def _publish_lag(self, lags: dict[tuple[str, str], int]) -> None:
        for gone in self._lag_series - lags.keys():
            self.metrics.consumer_lag.remove(*gone)  # revoked partitions
        for labels, value in lags.items():
            self.metrics.consumer_lag.labels(*labels).set(value)
        self._lag_series = set(lags)

    def _tcp_reachable(self, timeout: float) -> bool:
        for server in self.bootstrap.split(","):
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                    return True
            except OSError:
                continue
        return False
