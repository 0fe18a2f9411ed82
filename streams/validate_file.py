"""`cxstream validate FILE`: check a JSON Lines file against the contract offline.

For teams wiring up a new event source: the very rules the worker applies
(``streams.domain.validation.decode``), without a broker, one line per
rejected event with its reason, then a summary. The exit status makes it
usable in CI: 0 when every event is valid, 1 otherwise.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import BinaryIO, TextIO

import orjson

from streams.domain.model import DEFAULT_DIMENSIONS, REASONS, Rejection, Source
from streams.domain.validation import decode


def topic_of(raw: bytes) -> Source:
    """The input topic a line belongs on, judged by its ``type`` prefix.

    ``survey.*`` goes to surveys; everything else, including lines whose type
    cannot be read at all, is checked as a ticket event so that it still gets
    its own reason (``malformed``, ``schema`` or ``unknown_type``) instead of
    being skipped.
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "tickets"
    kind = doc.get("type") if isinstance(doc, dict) else None
    return "surveys" if isinstance(kind, str) and kind.startswith("survey.") else "tickets"


def check_lines(
    lines: Iterable[bytes], out: TextIO, now_us: int, dimensions: Sequence[str]
) -> tuple[int, Counter[str]]:
    """Report each rejected line on ``out``; return (accepted, rejections by reason).

    Lines are numbered from 1 counting every physical line, so a number points
    into the file as an editor shows it. Empty and whitespace-only lines are
    skipped: JSON Lines files often end with a blank line.
    """
    accepted = 0
    reasons: Counter[str] = Counter()
    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")  # the line ending is not part of the event
        if not raw.strip():
            continue
        result = decode(raw, topic_of(raw), now_us, dimensions=dimensions)
        if isinstance(result, Rejection):
            reasons[result.reason] += 1
            print(f"line {number}: {result.reason}: {result.detail}", file=out)
        else:
            accepted += 1
    return accepted, reasons


def summary(accepted: int, reasons: Counter[str]) -> str:
    """One line: ``N valid, M invalid (reason count, ...)``, reasons in the
    contract's order so summaries of different files compare line by line."""
    rejected = sum(reasons.values())
    text = f"{accepted} valid, {rejected} invalid"
    if rejected:
        order = [r for r in REASONS if r in reasons] + sorted(set(reasons) - set(REASONS))
        text += " (" + ", ".join(f"{reason} {reasons[reason]}" for reason in order) + ")"
    return text


def run(path: str, out: TextIO, now_us: int, dimensions: Sequence[str] = DEFAULT_DIMENSIONS) -> int:
    """Check the JSON Lines file at ``path`` (``-`` for standard input) as of
    processing time ``now_us``.

    Prints ``line N: REASON: detail`` per rejected line and a summary line to
    ``out``; returns 0 when every non-empty line is valid, 1 otherwise. An
    unreadable file raises ``OSError`` for the caller to report.
    """
    handle: BinaryIO
    if path == "-":
        handle = sys.stdin.buffer
        accepted, reasons = check_lines(handle, out, now_us, dimensions)
    else:
        with open(path, "rb") as handle:
            accepted, reasons = check_lines(handle, out, now_us, dimensions)
    print(summary(accepted, reasons), file=out)
    return 0 if not reasons else 1
