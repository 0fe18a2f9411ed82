"""What the YAML configuration files (rules, schedules) share.

* ``FieldError``: the one way a model object (a ``Rule``, a ``Schedule``, an
  SLA target) says which of its fields is wrong. Models check their own
  fields, once; the loader only reads types from YAML, builds the model, and
  turns a ``FieldError`` into ``FILE:LINE: where: problem`` by looking up the
  line of the field's key.
* ``YamlWalker``: reads a composed YAML node tree (not the plain
  ``safe_load`` result, which has lost its lines) so every error can name the
  line it is about. Unknown and repeated keys are errors, merge keys too.
* ``parse_duration_us``: the duration syntax of both files (``30s``, ``10m``,
  ``2h``, ``1d``, ``500ms``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

import yaml

from streams.domain.model import US_PER_S
from streams.domain.validation import normalise_dimension
from streams.errors import CxError

__all__ = [
    "DURATION_HINT",
    "FieldError",
    "YamlWalker",
    "check_filters",
    "parse_duration_us",
    "read_text",
]

DURATION_HINT: Final = "a duration like 30s, 10m, 2h, 1d or seconds"
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
_UNIT_US: Final = {
    "ms": 1_000,
    "s": US_PER_S,
    "m": 60 * US_PER_S,
    "h": 3600 * US_PER_S,
    "d": 86_400 * US_PER_S,
}
_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


class FieldError(ValueError):
    """A model field's value is wrong. ``field`` is the name as written in
    the file (``for``, not ``for_s``); ``key`` optionally names an entry inside
    it (a filter's label), so the loader can point at that entry's line."""

    def __init__(self, field: str, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.key = key


def parse_duration_us(text: str) -> int | None:
    """``30s``, ``10m``, ``2h``, ``1d``, ``500ms`` -> microseconds; None if not one."""
    match = _DURATION.match(text)
    return None if match is None else int(match.group(1)) * _UNIT_US[match.group(2)]


def check_filters(filters: dict[str, str], reserved: frozenset[str]) -> None:
    """Dimension filters (label -> normalised value): the one check of both files."""
    for key, value in filters.items():
        if not _LABEL.match(key) or key in reserved:
            raise FieldError("filters", f"{key!r} is not a dimension label name", key)
        if normalise_dimension(value) != value:
            raise FieldError("filters", f"{value!r} is not a valid dimension value", key)


def read_text(path: str, what: str, error: type[CxError]) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the {what}: {exc}") from None


Nodes = dict[str, tuple[yaml.Node, yaml.Node]]


class YamlWalker:
    """Typed reads from a YAML node tree; every failure is ``error(FILE:LINE: ...)``."""

    def __init__(self, path: str, error: type[CxError]) -> None:
        self.path = path
        self.error = error
        self._constructor = yaml.constructor.SafeConstructor()

    def compose(self, text: str) -> yaml.Node | None:
        """The root node; None for an empty file (comments only)."""
        try:
            root: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            raise self.error(f"{self.path}{line}: not valid YAML: {exc.problem}") from None
        except yaml.YAMLError as exc:
            raise self.error(f"{self.path}: not valid YAML: {exc}") from None
        return root

    def fail(self, node: yaml.Node | None, where: str, problem: str) -> CxError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return self.error(f"{self.path}{line}: {where}: {problem}")

    def field_error(self, exc: FieldError, keys: Nodes, fallback: yaml.Node, where: str) -> CxError:
        """A model's ``FieldError`` at the line of the field (or of its entry)."""
        node = fallback
        if exc.field in keys:
            node = keys[exc.field][1]
            if exc.key is not None and isinstance(node, yaml.MappingNode):
                for key_node, _ in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == exc.key:
                        node = key_node
                        break
            where = f"{where}.{exc.field}"
        return self.fail(node, where, str(exc))

    def scalar(self, node: yaml.Node, where: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, where, "expected a single value, not a list or mapping")
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:  # ValueError: 2025-02-30
            raise self.fail(node, where, f"unreadable value: {exc}") from None

    def is_null(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")

    def mapping(self, node: yaml.Node, where: str, known: Sequence[str] | None) -> Nodes:
        """key -> (key node, value node); unknown and repeated keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, "expected a mapping (key: value)")
        out: Nodes = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, where)
            if not isinstance(key, str):
                raise self.fail(key_node, where, f"key {key!r} is not a string")
            if key == "<<":
                raise self.fail(key_node, where, "merge keys (<<) are not supported")
            if known is not None and key not in known:
                raise self.fail(key_node, where, f"unknown key {key!r} (known: {', '.join(known)})")
            if key in out:
                raise self.fail(key_node, where, f"key {key!r} is given twice")
            out[key] = (key_node, value_node)
        return out

    def sequence(self, node: yaml.Node, where: str, what: str) -> list[yaml.Node]:
        """A list's items; an empty value (``key:``) is an empty list."""
        if self.is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, where, f"expected a list of {what}")
        return list(node.value)

    def number(self, node: yaml.Node, where: str) -> float:
        value = self.scalar(node, where)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, where, f"{value!r} is not a number")
        if not math.isfinite(value):
            raise self.fail(node, where, f"{value!r} is not a finite number")
        return float(value)

    def integer(self, node: yaml.Node, where: str, minimum: int | None = None) -> int:
        value = self.scalar(node, where)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(node, where, f"{value!r} is not an integer")
        if minimum is not None and value < minimum:
            raise self.fail(node, where, f"{value} is below the minimum of {minimum}")
        return value

    def boolean(self, node: yaml.Node, where: str) -> bool:
        value = self.scalar(node, where)
        if not isinstance(value, bool):
            raise self.fail(node, where, f"{value!r} is not true or false")
        return value

    def text(self, node: yaml.Node, where: str) -> str:
        value = self.scalar(node, where)
        if not isinstance(value, str):
            raise self.fail(node, where, f"{value!r} is not a string (quote it)")
        return value

    def duration_us(self, node: yaml.Node, where: str) -> int:
        """A duration string, or a plain number of seconds."""
        value = self.scalar(node, where)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not (math.isfinite(value) and value >= 0):
                raise self.fail(node, where, f"{value!r} is not a duration >= 0")
            return round(value * US_PER_S)
        us = parse_duration_us(value) if isinstance(value, str) else None
        if us is None:
            raise self.fail(node, where, f"{value!r} is not {DURATION_HINT}")
        return us

    def filters(self, node: yaml.Node, where: str) -> dict[str, str]:
        """Dimension filters, values normalised as on input events; the checks
        are the model's (``check_filters``), this reads strings."""
        out: dict[str, str] = {}
        for key, (_, value_node) in self.mapping(node, where, None).items():
            raw = self.scalar(value_node, f"{where}.{key}")
            if isinstance(raw, bool) or raw is None:
                raise self.fail(
                    value_node, f"{where}.{key}", f"{raw!r} is not a valid dimension value"
                )
            text = str(raw)
            out[key] = normalise_dimension(text) or text
        return out

    def build(self, make: Callable[[], Any], keys: Nodes, node: yaml.Node, where: str) -> Any:
        """``make()`` (a model constructor); its ``FieldError`` names the field's line."""
        try:
            return make()
        except FieldError as exc:
            raise self.field_error(exc, keys, node, where) from None
