"""The one shape in which stages see a Kafka record (decoupled from Faust)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.domain.model import Event
    from streams.pipeline.envelope import Provenance

#: Offset spaces: the route topic, and the two input topics (whose records
#: go straight to the ticket stage when they already sit in their partition).
SPACES: dict[str, int] = {"r": 0, "t": 1, "s": 2}


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int
    space: str = "r"  # which topic's offsets ``offset`` counts (SPACES)
    #: An input record already validated at ingest: its provenance and event.
    prepared: tuple[Provenance, Event] | None = None

    @property
    def position_partition(self) -> int:
        """The partition part of this record's observation ids: distinct per
        offset space, so positions from different topics never compare."""
        return SPACES[self.space] * 100_000 + self.partition
