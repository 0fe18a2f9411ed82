"""The exposition's fast paths write exactly what prometheus_client writes:
values as ``floatToGoString`` formats them."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.utils import floatToGoString

from streams.exposition.text import value_text

#: where floatToGoString changes form: Go's exponents from 1e6, Python's
#: from 1e16 and below 1e-4, infinities, NaN, signed zeros
EDGES = (
    *(0, 0.0, -0.0, 1, -1, 5e-324, 1e-4, 9.999e-5, 0.1, 1 / 3, 2**53, -(2**53), 2**70),
    *(999_999, 999_999.999_999_9, 1e6, 1_000_000, 1_000_001, 1e6 + 0.5, -1e6, -1e7, 1e15),
    *(1e16, 1e16 - 2, 1e17, -1e17, 1.7976931348623157e308, math.inf, -math.inf, math.nan),
    *(True, False),
)


def test_values_at_the_edges_of_each_form_are_written_as_float_to_go_string_writes_them() -> None:
    for value in EDGES:
        assert value_text(value) == floatToGoString(value), value


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**20), max_value=10**20),
    )
)
def test_values_are_written_as_float_to_go_string_writes_them(value: float) -> None:
    assert value_text(value) == floatToGoString(value)
