"""The validation corpus (cases.json) as ready-to-use records.

Kept as data so the same cases drive the validator tests, the schema
equivalence test and the file validator test; the builder vocabulary is
described in the file's "about" field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

_DATA = json.loads((Path(__file__).parent / "cases.json").read_text(encoding="utf-8"))

NOW_US: int = _DATA["now_us"]
BASES: dict[str, dict[str, Any]] = _DATA["bases"]


@dataclass(frozen=True)
class Case:
    case: str
    source: str
    raw: bytes | None
    reason: str | None  # None for a valid case
    expect: dict[str, Any]


def _padded(doc: dict[str, Any], size: int) -> bytes:
    """``doc`` with a ``pad`` field that makes its compact encoding ``size`` bytes."""
    base = len(orjson.dumps({**doc, "pad": ""}))
    if size < base:
        raise ValueError(f"cannot pad to {size} bytes: the document alone is {base}")
    raw = orjson.dumps({**doc, "pad": "p" * (size - base)})
    assert len(raw) == size
    return raw


def _build(spec: dict[str, Any]) -> bytes | None:
    if spec.get("none"):
        return None
    if "hex" in spec:
        return bytes.fromhex(spec["hex"])
    if "text" in spec:
        return str(spec["text"]).encode("utf-8") * int(spec.get("times", 1))
    if "base" in spec:
        doc: Any = dict(BASES[spec["base"]])
        doc.update(spec.get("set", {}))
        for field in spec.get("drop", []):
            doc.pop(field)
        for field, (char, times) in spec.get("fill", {}).items():
            doc[field] = char * times
    else:
        doc = spec["doc"]
    if "pad_to" in spec:
        return _padded(doc, spec["pad_to"])
    return orjson.dumps(doc)


def _cases(kind: str) -> list[Case]:
    return [
        Case(
            spec["case"],
            spec["source"],
            _build(spec),
            spec.get("reason"),
            spec.get("expect", {}),
        )
        for spec in _DATA[kind]
    ]


INVALID: list[Case] = _cases("invalid")
VALID: list[Case] = _cases("valid")
