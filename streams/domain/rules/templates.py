"""Annotation templates: lenient rendering for alerts, strict checking for files."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = ["check_template", "dims_text", "render_template"]


class _Formatter(string.Formatter):
    """str.format that never fails on a missing field or a missing value:
    an alert must still go out when its text is imperfect."""

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, str) and key in kwargs:
            return kwargs[key]
        return "{" + str(key) + "}"

    def format_field(self, value: Any, format_spec: str) -> Any:
        if value is None:
            return "n/a"  # e.g. {value:.1f} once a window has drained
        if isinstance(value, str) and value.startswith("{") and format_spec:
            return value  # an unknown field, kept as written
        return super().format_field(value, format_spec)


_FORMATTER: Final = _Formatter()


def render_template(template: str, fields: Mapping[str, Any]) -> str:
    """Render a summary/description template; falls back to the raw template."""
    try:
        return _FORMATTER.vformat(template, (), fields)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError):
        return template


def check_template(template: str, numeric: Mapping[str, float]) -> str | None:
    """Render with sample values; returns the problem, or None when it renders.

    Unlike ``render_template`` this is strict: the file is where a broken
    format spec should be reported, not every alert it would garble.
    ``numeric`` gives sample values of the numeric fields; every other field
    is rendered as a string.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return str(exc)
    sample: dict[str, Any] = {}
    for _, name, _, _ in parsed:
        if name is None:
            continue
        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        if root == "" or root.isdigit():
            return f"positional field {{{name}}}: use a named field"
        sample[root] = numeric.get(root, "x")
    try:
        template.format(**sample)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def dims_text(labels: Mapping[str, str]) -> str:
    """``channel=chat, team=billing``: the ``{dims}`` field."""
    return ", ".join(f"{k}={v}" for k, v in labels.items())
