"""The fast canonical JSON (core.jcs) is byte-identical to the rfc8785 reference."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from parcelproof.core import jcs

_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _text
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def _reference(value: Any) -> bytes | type[BaseException]:
    try:
        return bytes(rfc8785.dumps(value))
    except Exception as e:
        return type(e)


def _ours(value: Any) -> bytes | type[BaseException]:
    try:
        return jcs.dumps(value)
    except Exception as e:
        return type(e)


@settings(max_examples=600, deadline=None)
@given(_json)
def test_same_bytes_or_same_error_as_rfc8785(value: Any) -> None:
    assert _ours(value) == _reference(value)


@pytest.mark.parametrize(
    "value",
    [
        '\x00\x1f\x7f\u2028\u2029"\\/',
        "\ud800",  # a lone surrogate: refused
        {"\U0001f600": 1, "\uffff": 2, "a": 3},  # UTF-16 order, not code-point order
        2**53 - 1,
        -(2**53) + 1,
        2**53,  # outside the safe integer range: refused
        1.0,
        1e21,
        -0.0,
        (1, "x", [None, True, False]),
        {1: "a"},  # a non-string key: refused
        [{"b": [], "a": {}}],
    ],
)
def test_edges(value: Any) -> None:
    assert _ours(value) == _reference(value)
