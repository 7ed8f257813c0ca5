"""The byte screen in front of the unstorable-text walk: it may send a body to the walk for
nothing, never let a body with NUL or a lone surrogate past it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.api.text import may_hold_unstorable, unstorable

# Text with every kind of character, lone surrogates and NUL included.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
JSONS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def spellings(value: Any) -> list[bytes]:
    """The bytes a client could send for ``value``: escaped, raw UTF-8 (surrogates as their
    UTF-8 spelling), UTF-16 and UTF-32 with and without a byte order mark."""
    raw = json.dumps(value, ensure_ascii=False)
    return [
        json.dumps(value).encode(),
        raw.encode("utf-8", "surrogatepass"),
        raw.encode("utf-16", "surrogatepass"),
        raw.encode("utf-16-le", "surrogatepass"),
        raw.encode("utf-32", "surrogatepass"),
        raw.encode("utf-32-be", "surrogatepass"),
    ]


@settings(max_examples=400, deadline=None)
@given(JSONS)
def test_a_body_the_screen_passes_holds_no_unstorable_string(value: Any) -> None:
    for raw in spellings(value):
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue  # a 400 either way
        if not may_hold_unstorable(raw):
            assert unstorable(data) is None, (raw, data)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"changes":[{"id":"a\\u0000b"}]}',
        b'{"changes":[{"id":"a\\ud800b"}]}',
        '{"changes":[{"id":"a\ud800b"}]}'.encode("utf-8", "surrogatepass"),
        '{"changes":[{"a\udfffb":1}]}'.encode("utf-8", "surrogatepass"),
        '{"changes":[{"id":"a\ud800b"}]}'.encode("utf-16", "surrogatepass"),
        '{"changes":[{"id":"a\udc00b"}]}'.encode("utf-32-le", "surrogatepass"),
    ],
)
def test_each_way_to_spell_nul_or_a_surrogate_is_sent_to_the_walk(raw: bytes) -> None:
    assert may_hold_unstorable(raw)
    assert unstorable(json.loads(raw)) is not None


def test_a_plain_push_body_skips_the_walk() -> None:
    body = {"changes": [{"id": "0b0c3e51", "fields": {"name": {"value": "Caf\u00e9 \u05e9 \U0001f693 \ud55c"}}}]}
    assert not may_hold_unstorable(json.dumps(body, ensure_ascii=False).encode())
    assert may_hold_unstorable(json.dumps(body).encode())  # escaped: walked, for nothing
