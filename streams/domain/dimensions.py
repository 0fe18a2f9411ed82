"""Dimension labels: fill missing values and cap distinct values per label.

Values arrive already normalised (trimmed, lower-cased, pattern-checked) by
validation. This module decides the final label tuple of an observation.
The cap bounds memory and Prometheus series under hostile input: after
``max_values`` distinct values of one label, new values become ``other``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streams.domain.model import DEFAULT_DIMENSIONS, OTHER, UNKNOWN

DEFAULT_MAX_VALUES = 100


class DimensionCap:
    """Resolves an event's dimensions to the tuple used as labels and as key.

    The set of admitted values is state of one worker: after a restart it is
    rebuilt from the values seen again, in arrival order. ``unknown`` and
    ``other`` are always admitted and do not count against the cap.
    """

    def __init__(
        self,
        names: Sequence[str] = DEFAULT_DIMENSIONS,
        max_values: int = DEFAULT_MAX_VALUES,
    ) -> None:
        if max_values < 1:
            raise ValueError("max_values must be at least 1")
        self.names: tuple[str, ...] = tuple(names)
        self.max_values = max_values
        self._admitted: dict[str, set[str]] = {name: set() for name in self.names}

    def admit(self, name: str, value: str) -> str:
        """Return ``value`` if admitted (or admissible) for label ``name``, else ``other``."""
        if value in (UNKNOWN, OTHER):
            return value
        admitted = self._admitted[name]
        if value in admitted:
            return value
        if len(admitted) < self.max_values:
            admitted.add(value)
            return value
        return OTHER

    def resolve(
        self,
        own: Mapping[str, str],
        inherited: Mapping[str, str] | None = None,
    ) -> tuple[str, ...]:
        """Final label values: the event's own value, else the inherited one,
        else ``unknown``; each passed through the cap."""
        values = []
        for name in self.names:
            value = own.get(name)
            if value is None and inherited is not None:
                value = inherited.get(name)
            values.append(self.admit(name, value if value is not None else UNKNOWN))
        return tuple(values)

    def admitted_count(self, name: str) -> int:
        return len(self._admitted[name])

    def as_labels(self, dims: Sequence[str]) -> dict[str, str]:
        return dict(zip(self.names, dims, strict=True))
