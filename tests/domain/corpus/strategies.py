"""Hypothesis strategies for near-valid events.

A valid document with one field (sometimes more) replaced by a value chosen
to sit on either side of its rule: lengths at the limits, calendar and
leap-second edges, offsets just out of range, dimension values with odd
whitespace and case, scores of every JSON type. Mostly boundary values, since
uniformly random ones are almost always far from any rule and prove little.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from streams.domain.model import AUTHORS, PRIORITIES, SURVEY_TYPES, TICKET_TYPES
from tests.domain.corpus import BASES

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def encode(doc: Any) -> bytes:
    """Compact UTF-8 JSON; the standard encoder, so integers of any size work."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _edge(n: int) -> st.SearchStrategy[int]:
    return st.sampled_from([n - 1, n, n + 1])


# -- timestamps -------------------------------------------------------------------------

_YEARS = [0, 4, 100, 400, 1900, 1970, 2000, 2023, 2024, 2027, 2100, 2400, 9999]
_FLAWS = [None] * 6 + [
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "offset",
    "zone",
    "separator",
    "year",
    "fraction",
    "affix",
    "digits",
]


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """An RFC 3339 date-time at a calendar or clock edge, often with one flaw."""
    year = draw(st.sampled_from(_YEARS) | st.integers(0, 9999))
    month = draw(st.sampled_from([2, 2, 4, 12]) | st.integers(1, 12))
    day = draw(st.sampled_from([1, 28, 29, 29, 30, 31]) | st.integers(1, 31))
    hour, minute = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    second = draw(st.sampled_from([0, 59, 60]) | st.integers(0, 59))
    frac = draw(st.sampled_from(["", "", ".5", ".000001", ".123456789", ".9999999999999"]))
    off_h, off_m = draw(st.sampled_from([0, 1, 5, 14, 23])), draw(st.sampled_from([0, 30, 59]))
    zone = draw(st.sampled_from(["Z", "z", "+", "-"]))
    year_text, sep, affix = f"{year:04d}", "T", ""
    flaw = draw(st.sampled_from(_FLAWS))
    if flaw == "month":
        month = draw(st.sampled_from([0, 13, 19]))
    elif flaw == "day":
        day = draw(st.sampled_from([0, 32, 39]))
    elif flaw == "hour":
        hour = draw(st.sampled_from([24, 25, 29]))
    elif flaw == "minute":
        minute = draw(st.sampled_from([60, 61, 69]))
    elif flaw == "second":
        second = draw(st.sampled_from([61, 69]))
    elif flaw == "offset":
        zone = draw(st.sampled_from("+-"))
        off_h, off_m = draw(st.sampled_from([(24, 0), (23, 60), (99, 0)]))
    elif flaw == "zone":
        zone = draw(st.sampled_from(["", " Z", "UTC", "+0200", "+02", "Z+01:00"]))
    elif flaw == "separator":
        sep = draw(st.sampled_from([" ", "_", "TT", ""]))
    elif flaw == "year":
        year_text = draw(st.sampled_from([f"{year:d}", f"{year:05d}", f"+{year:04d}"]))
    elif flaw == "fraction":
        frac = draw(st.sampled_from([".", ",5", ".5.5", ".-1"]))
    elif flaw == "affix":
        affix = draw(st.sampled_from([" ", "\n", "\t", "x"]))
    elif flaw == "digits":
        year_text = year_text.replace("2", "\u0662")  # Arabic-Indic two: \d matches it
    offset = zone if zone in ("Z", "z") or len(zone) != 1 else f"{zone}{off_h:02d}:{off_m:02d}"
    text = (
        f"{year_text}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}{frac}{offset}"
    )
    return draw(st.sampled_from([affix + text, text + affix]))


# -- field values -----------------------------------------------------------------------

dimension_texts = st.text(
    alphabet=" \t\r\n\x0babcXYZ09_./:-!\u00e9\u212a\u0130", max_size=70
) | st.builds(
    lambda pad_l, core, pad_r: pad_l + core + pad_r,
    st.sampled_from(["", "", " ", "\t", "\n ", "\r\n", "\x0b", "\u00a0"]),
    st.builds(
        lambda first, n, fill: first + fill * n,
        st.sampled_from("aZ0_ .-!"),
        st.integers(0, 3) | _edge(63),
        st.sampled_from(["a", "B", " ", "_", "./:-", "\t", "!"]),
    ),
    st.sampled_from(["", "", " ", "\t", "\n", "  \n\t", "\x0b"]),
)
dimension_values = dimension_texts | dimension_texts | json_scalars
identifiers = (
    st.builds(
        lambda n, ch: ch * n,
        _edge(128) | st.sampled_from([0, 1]),
        st.sampled_from("i\u00e9\u65e5\U0001f600"),
    )
    | st.text(max_size=20)
    | json_scalars
)
scores = (
    st.integers(-2, 12)
    | st.sampled_from([2**63 - 1, 2**63, 2**64, 2**64 + 5, -(2**63) - 1, 10**30])
    | st.sampled_from([9.0, 9.5, 1e20, -0.0, True, False, "9", None, [9], {"v": 9}])
)
types = st.sampled_from(TICKET_TYPES + SURVEY_TYPES + ("ticket.merged", "Survey.nps", "")) | (
    json_scalars
)
authors = st.sampled_from((*AUTHORS, "Agent", "manager", "", None, 1, ["agent"]))
priorities = st.sampled_from((*PRIORITIES, "HIGH", "p1", "", None, 1, ["low"]))
comments = st.integers(0, 2) | _edge(2000)
respondents = st.integers(0, 2) | _edge(256)

_TIMESTAMP_EDGES = [
    "2027-01-15T07:59:00Z",
    "2027-01-15t07:59:00z",
    "2027-01-15T07:59:00.123456789+02:00",
    "2027-01-15T07:59:00-00:00",
    "2027-01-15T07:59:00+23:59",
    "2027-01-15T07:59:00+24:00",
    "2027-01-15T07:59:00+00:60",
    "2027-01-15T07:59:00",
    "2027-01-15T07:59:00.",
    "2027-01-15 07:59:00Z",
    "2027-01-15T07:59:00Z\n",
    " 2027-01-15T07:59:00Z",
    "2027-01-15T07:59Z",
    "2027-01-15",
    "2016-12-31T23:59:60Z",
    "2016-12-31T23:59:61Z",
    "2027-01-15T24:00:00Z",
    "2027-01-15T23:60:00Z",
    "2024-02-29T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2000-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "0000-02-29T00:00:00Z",
    "2400-02-29T00:00:00Z",
    "2100-02-29T00:00:00Z",
    "1904-02-29T00:00:00Z",
    "2096-02-29T00:00:00Z",
    "2022-02-29T00:00:00Z",
    "2001-02-29T00:00:00Z",
    "2027-02-30T00:00:00Z",
    "2027-04-31T00:00:00Z",
    "2027-12-31T00:00:00Z",
    "2027-00-10T00:00:00Z",
    "2027-01-00T00:00:00Z",
    "2027-01-32T00:00:00Z",
    "9999-12-31T23:59:59.999999-23:59",
    "10000-01-01T00:00:00Z",
    "\u0662027-01-15T07:59:00Z",
]

#: Values on both sides of each field's rule, every one tried on every start document.
EDGES: dict[str, list[Any]] = {
    "event_id": [
        "",
        "i",
        "i" * 128,
        "i" * 129,
        "\u65e5" * 128,
        "\u65e5" * 129,
        "\U0001f600" * 128,
        "\U0001f600" * 129,
        None,
        5,
        True,
        ["e"],
        {},
    ],
    "type": [*TICKET_TYPES, *SURVEY_TYPES, "ticket.merged", "Survey.nps", "", None, 1, ["x"]],
    "occurred_at": [*_TIMESTAMP_EDGES, None, 1800000000, 1.8e9, True, []],
    "score": [
        *range(-2, 13),
        2**63 - 1,
        2**63,
        2**64,
        10**30,
        -(2**63) - 1,
        9.5,
        1e20,
        True,
        False,
        "9",
        None,
        [9],
        {"v": 9},
    ],
    "author": [*AUTHORS, "Agent", "manager", "", None, 1, ["agent"]],
    "priority": [*PRIORITIES, "HIGH", "p1", "", None, 1, ["low"]],
    "comment": ["", "c" * 1999, "c" * 2000, "c" * 2001, "\u00e9" * 2001, None, 5, ["c"]],
    "respondent_id": ["", "r" * 255, "r" * 256, "r" * 257, None, 5, {}],
    "channel": [
        "",
        " ",
        "a",
        "A",
        " Chat ",
        "\tchat\r\n",
        "a" * 64,
        "a" * 65,
        " " + "A" * 64 + "\n",
        "a" + " " * 62 + "b",
        "a" + " " * 63 + "b",
        "\u212a",
        "\u00e9",
        "a\tb",
        "a\nb",
        "\x0ba",
        "\u00a0a",
        "_a",
        "a_",
        "a!",
        "0",
        "web chat_v2.1/eu:north-1",
        None,
        5,
        True,
        [],
        {},
    ],
}
EDGES["ticket_id"] = EDGES["event_id"]
EDGES["team"] = EDGES["channel"]

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "event_id": identifiers,
    "type": types,
    "occurred_at": timestamps() | timestamps() | json_scalars,
    "ticket_id": identifiers,
    "score": scores,
    "author": authors,
    "priority": priorities,
    "comment": comments.map(lambda n: "c" * n) | json_scalars,
    "respondent_id": respondents.map(lambda n: "r" * n) | json_scalars,
    "channel": dimension_values,
    "team": dimension_values,
}
FIELDS = {name: st.sampled_from(EDGES[name]) | values for name, values in FIELDS.items()}

#: Valid documents to start from: the corpus bases, and some with every optional field.
STARTS: list[dict[str, Any]] = [
    *BASES.values(),
    {**BASES["created"], "priority": "low", "channel": "chat", "team": "Billing"},
    {**BASES["replied"], "channel": " Email ", "team": None},
    {**BASES["ces"], "ticket_id": "T-1", "comment": "fine", "respondent_id": "r-7", "team": "a"},
]


@st.composite
def near_valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with usually one field set to a boundary value, and
    sometimes a field dropped, another set, or an extra field added."""
    doc = dict(draw(st.sampled_from(STARTS)))
    if draw(st.integers(0, 9)) > 0:
        field = draw(st.sampled_from(sorted(FIELDS)))
        doc[field] = draw(FIELDS[field])
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        action = draw(st.sampled_from(["set", "drop", "extra"]))
        if action == "set":
            field = draw(st.sampled_from(sorted(FIELDS)))
            doc[field] = draw(FIELDS[field])
        elif action == "drop" and doc:
            doc.pop(draw(st.sampled_from(sorted(doc))))
        else:
            doc[draw(st.text(max_size=10))] = draw(json_values)
    return doc


@st.composite
def near_valid_records(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A near-valid event and the topic it is read from: mostly the topic its
    type belongs on (so the other rules get exercised), sometimes the other."""
    doc = draw(near_valid_events())
    kind = doc.get("type")
    home = "surveys" if isinstance(kind, str) and kind.startswith("survey.") else "tickets"
    other = "tickets" if home == "surveys" else "surveys"
    return doc, draw(st.sampled_from([home] * 9 + [other]))
