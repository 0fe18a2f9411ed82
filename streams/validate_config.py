"""``cxstream validate-config FILE``: check a rules or schedules file with
the loaders the worker uses, and say what it holds or where it is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TextIO

import yaml

from streams.domain import rules as rules_mod
from streams.domain import schedules_file
from streams.domain.configfile import read_text
from streams.errors import CxError

__all__ = ["KINDS", "detect_kind", "run"]

KINDS: Final = ("rules", "schedules")


def detect_kind(text: str, path: str) -> str:
    """``rules`` or ``schedules`` from the file's top-level keys."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None  # the loader reports the syntax error with its line
    keys = set(doc) if isinstance(doc, dict) else set()
    if keys and keys <= set(rules_mod.loader.TOP_KEYS):
        return "rules"
    if keys and keys <= set(schedules_file.TOP_KEYS):
        return "schedules"
    raise CxError(
        f"{path}: cannot tell a rules file (keys {', '.join(rules_mod.loader.TOP_KEYS)}) from a "
        f"schedules file (keys {', '.join(schedules_file.TOP_KEYS)}); pass --kind"
    )


def run(path: str, kind: str | None, window_names: Sequence[str], out: TextIO) -> int:
    """0 and a summary when the file is valid; raises the loader's error
    (``FILE:LINE: where: problem``) otherwise."""
    text = read_text(path, "file", CxError)
    kind = kind or detect_kind(text, path)
    if kind == "rules":
        ruleset = rules_mod.parse_rules(text, path, window_names)
        names = ", ".join(r.alertname for r in ruleset) or "none"
        print(f"{path}: valid rules file: {len(ruleset)} rules ({names})", file=out)
        return 0
    config = schedules_file.parse_schedules(text, path)
    priorities = ", ".join(config.sla.targets) if config.sla is not None else "none"
    print(
        f"{path}: valid schedules file: {len(config.schedules)} schedules, "
        f"{len(config.assignments)} assignments, SLA targets for: {priorities}",
        file=out,
    )
    return 0
