"""Log lines that cannot flood the log under a storm of bad input."""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable


class RateLimitedLog:
    """At most one line per key per interval; the next line says how many were suppressed."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._last: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def warning(self, key: Hashable, msg: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            msg += f" (+{suppressed} similar suppressed)"
        self._logger.warning(msg, *args)
