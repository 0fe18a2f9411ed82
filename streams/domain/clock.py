"""Time sources. The domain never reads the clock; the pipeline owns one ``Clock``."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the Unix epoch."""
        ...


class SystemClock:
    """The wall clock: the only place cxstream reads the time."""

    def now_us(self) -> int:
        return time.time_ns() // 1000


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, now_us: int = 0) -> None:
        self._now_us = now_us

    def now_us(self) -> int:
        return self._now_us

    def set(self, now_us: int) -> None:
        self._now_us = now_us

    def advance(self, seconds: float) -> None:
        self._now_us += int(seconds * 1_000_000)
