"""crypto.encoding: unpadded base64url, one text form per value."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import KeyFormatError, b64d, b64e

from .helpers import ALPHABET


@given(st.binary(max_size=256))
def test_round_trip(data: bytes) -> None:
    text = b64e(data)
    assert b64d(text) == data


@given(st.binary(max_size=256))
def test_encoding_is_unpadded_base64url(data: bytes) -> None:
    text = b64e(data)
    assert text == base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
    assert set(text) <= set(ALPHABET)


@given(st.binary(max_size=64))
def test_expected_length_is_checked(data: bytes) -> None:
    assert b64d(b64e(data), length=len(data)) == data
    with pytest.raises(KeyFormatError, match=f"must be {len(data) + 1} bytes, got {len(data)}"):
        b64d(b64e(data), length=len(data) + 1)


def test_error_names_what_was_decoded() -> None:
    with pytest.raises(KeyFormatError, match="device key"):
        b64d("A", what="device key")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("AA==", id="padding-2"),
        pytest.param("AAA=", id="padding-1"),
        pytest.param("AA=", id="padding-short"),
        pytest.param("=AAA", id="padding-leading"),
        pytest.param("+_8", id="plus"),
        pytest.param("-/8", id="slash"),
        pytest.param("+/8", id="standard-alphabet"),
        pytest.param(" AAA", id="leading-space"),
        pytest.param("AAA ", id="trailing-space"),
        pytest.param("AA AA", id="inner-space"),
        pytest.param("AAAA\n", id="newline"),
        pytest.param("AA\nAA", id="inner-newline"),
        pytest.param("\tAAA", id="tab"),
        pytest.param("AAA\r", id="carriage-return"),
        pytest.param("AAé", id="latin-1"),
        pytest.param("\uff21\uff21\uff21\uff21", id="fullwidth"),
        pytest.param("AA\u00a0A", id="nbsp"),
        pytest.param("A", id="length-1"),
        pytest.param("AAAAA", id="length-5"),
        pytest.param("AA.A", id="dot"),
        pytest.param("AA*A", id="star"),
        pytest.param("AA\x00A", id="nul"),
    ],
)
def test_refuses_non_canonical_text(text: str) -> None:
    with pytest.raises(KeyFormatError):
        b64d(text)


@pytest.mark.parametrize("value", [b"AAAA", None, 1234, ["AAAA"], bytearray(b"AAAA")])
def test_refuses_non_text(value: object) -> None:
    with pytest.raises(KeyFormatError):
        b64d(value)  # type: ignore[arg-type]


def test_plus_and_slash_spellings_are_real_alternatives() -> None:
    # The refusal above is meaningful: b"\xfb\xff" is "-_8" in base64url and "+/8" in
    # standard base64; a lax decoder would take both.
    assert b64e(b"\xfb\xff") == "-_8"
    assert base64.b64decode("+/8=") == b"\xfb\xff"
    assert b64d("-_8") == b"\xfb\xff"


@given(st.binary(min_size=1, max_size=64).filter(lambda d: len(d) % 3 != 0), st.data())
def test_refuses_second_spelling_with_trailing_bits_set(data: bytes, draw: st.DataObject) -> None:
    text = b64e(data)
    unused_bits = 4 if len(data) % 3 == 1 else 2
    last = ALPHABET.index(text[-1])
    assert last % (1 << unused_bits) == 0  # the canonical form leaves them clear
    k = draw.draw(st.integers(min_value=1, max_value=(1 << unused_bits) - 1))
    other = text[:-1] + ALPHABET[last + k]
    # A lax decoder reads the other spelling as the very same bytes...
    assert base64.urlsafe_b64decode(other + "=" * (-len(other) % 4)) == data
    # ...and b64d refuses it, so a value has exactly one text form.
    with pytest.raises(KeyFormatError, match="canonical"):
        b64d(other)


def test_every_spelling_of_one_byte_but_the_canonical_one_is_refused() -> None:
    accepted = []
    for second in ALPHABET:
        with contextlib.suppress(KeyFormatError):
            accepted.append((b64d("A" + second), "A" + second))
    # "A?" carries 12 bits for one byte: 4 trailing bits must be zero, so only
    # A, Q, g and w are legal second characters, each naming a different byte.
    assert accepted == [(b"\x00", "AA"), (b"\x01", "AQ"), (b"\x02", "Ag"), (b"\x03", "Aw")]


def test_empty_text_is_empty_bytes() -> None:
    assert b64e(b"") == ""
    assert b64d("") == b""
    with pytest.raises(KeyFormatError):
        b64d("", length=32)
