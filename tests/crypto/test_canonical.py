"""crypto.canonical: RFC 8785 (JCS) encoding and per-kind domain separation."""

from __future__ import annotations

import itertools
import json
import random
import struct
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import DOMAINS, CanonicalError, SigningKey, VerificationError, canonical, signing_bytes

from .helpers import json_keys, json_scalars, json_values, seed


# -- agreement with an independent implementation -----------------------------------
@settings(max_examples=150, deadline=None)
@given(json_values)
def test_equals_rfc8785_package(value: object) -> None:
    assert canonical(value) == rfc8785.dumps(value)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(json_keys, json_scalars, max_size=8), st.randoms(use_true_random=False))
def test_key_insertion_order_does_not_matter(obj: dict, rnd: random.Random) -> None:
    items = list(obj.items())
    rnd.shuffle(items)
    assert canonical(dict(items)) == canonical(obj)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_output_is_compact_utf8_json_of_the_same_value(value: object) -> None:
    text = canonical(value).decode("utf-8")
    # Numbers are IEEE-754 doubles in JCS: "58976227291646010" is a float's shortest form.
    assert json.loads(text, parse_int=float) == value
    # No pretty-printing, and control characters inside strings are escaped.
    assert "\n" not in text and "\r" not in text


@settings(max_examples=100, deadline=None)
@given(st.lists(json_scalars, max_size=6))
def test_tuples_encode_as_arrays(items: list) -> None:
    assert canonical(tuple(items)) == canonical(items) == rfc8785.dumps(items)


# -- RFC 8785 examples, written out from the RFC ------------------------------------
# Appendix B: IEEE 754 bit patterns and their JCS text.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]
APPENDIX_B_ERRORS = ["7fffffffffffffff", "7ff0000000000000"]  # NaN, Infinity


def _double(bits: str) -> float:
    return struct.unpack(">d", bytes.fromhex(bits))[0]


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    value = _double(bits)
    assert canonical(value) == expected.encode("ascii")
    assert canonical({"n": value}) == b'{"n":' + expected.encode("ascii") + b"}"
    assert canonical([value, value]) == f"[{expected},{expected}]".encode("ascii")


@pytest.mark.parametrize("bits", APPENDIX_B_ERRORS)
def test_rfc8785_appendix_b_errors(bits: str) -> None:
    with pytest.raises(CanonicalError):
        canonical(_double(bits))


def test_rfc8785_section_3_2_2_example() -> None:
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical(value) == expected.encode("utf-8")


def test_rfc8785_section_3_2_3_sorting_example() -> None:
    # Keys ordered by their UTF-16 code units; the RFC lists the resulting order.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    expected = "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{json.dumps(value[k])}" for k in order) + "}"
    expected = expected.replace('"\r"', '"\\r"')
    assert canonical(value) == expected.encode("utf-8")


def test_astral_keys_sort_before_private_use_keys() -> None:
    # U+1F600 is D83D DE00 in UTF-16, so it sorts before U+E000 although its code
    # point is larger: a code-point sort would get this wrong.
    value = {"\ue000": 1, "\U0001f600": 2, "z": 3}
    assert canonical(value) == '{"z":3,"\U0001f600":2,"\ue000":1}'.encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\x00\x1f\x7f", '"\\u0000\\u001f\x7f"'),
        ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
        ("\u2028\u2029", '"\u2028\u2029"'),
        ("é\U0001f600", '"é\U0001f600"'),
        ("</script>", '"</script>"'),
        ({"a": [1, {"b": None}], "A": True}, '{"A":true,"a":[1,{"b":null}]}'),
        (1.0, "1"),
        (-0.0, "0"),
        (1e-7, "1e-7"),
        (123456789.0, "123456789"),
        (2**53 - 1, "9007199254740991"),
        (-(2**53 - 1), "-9007199254740991"),
        ([], "[]"),
        ({}, "{}"),
    ],
)
def test_known_encodings(value: object, expected: str) -> None:
    assert canonical(value) == expected.encode("utf-8")


# -- refusals -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="inf"),
        pytest.param(float("-inf"), id="-inf"),
        pytest.param({"a": [1, float("nan")]}, id="nested-nan"),
        pytest.param(2**53, id="2**53"),
        pytest.param(-(2**53), id="-2**53"),
        pytest.param(10**30, id="10**30"),
        pytest.param({"seq": 2**53}, id="nested-big-int"),
        pytest.param([{"a": [-(2**60)]}], id="deep-big-int"),
        pytest.param(b"bytes", id="bytes"),
        pytest.param({"a": b"x"}, id="nested-bytes"),
        pytest.param(bytearray(b"x"), id="bytearray"),
        pytest.param({1, 2}, id="set"),
        pytest.param({"a": frozenset()}, id="nested-frozenset"),
        pytest.param({1: "a"}, id="int-key"),
        pytest.param({None: "a"}, id="none-key"),
        pytest.param({True: "a"}, id="bool-key"),
        pytest.param({("a",): 1}, id="tuple-key"),
        pytest.param({"a": {2: 3}}, id="nested-int-key"),
        pytest.param({"a": 1.5, 2: 3}, id="int-key-with-float"),
        pytest.param(Decimal("1.5"), id="decimal"),
        pytest.param(datetime(2026, 1, 1, tzinfo=UTC), id="datetime"),
        pytest.param(object(), id="object"),
        pytest.param("\ud800", id="lone-surrogate"),
        pytest.param({"\udc00": 1}, id="lone-surrogate-key"),
        pytest.param(["ok", "\udfff"], id="nested-lone-surrogate"),
    ],
)
def test_refuses_values_without_a_canonical_form(value: object) -> None:
    with pytest.raises(CanonicalError):
        canonical(value)


# -- domain separation ----------------------------------------------------------------
# The kinds DESIGN.md names as signed objects.
DESIGN_KINDS = ["change", "certificate", "registry", "checkpoint"]


def test_every_designed_kind_has_a_domain() -> None:
    assert set(DESIGN_KINDS) <= set(DOMAINS)


@pytest.mark.parametrize("kind", sorted(DOMAINS))
def test_signing_bytes_are_prefix_plus_canonical(kind: str) -> None:
    obj = {"b": 1, "a": [True, None, "x"]}
    data = signing_bytes(kind, obj)
    assert data.endswith(canonical(obj))
    prefix = data[: -len(canonical(obj))]
    assert kind.encode("ascii") in prefix
    assert prefix.endswith(b"\x00")  # the separator cannot occur in canonical JSON text


def test_domain_prefixes_are_distinct_and_none_is_a_prefix_of_another() -> None:
    obj = {"x": 1}
    prefixes = {kind: signing_bytes(kind, obj)[: -len(canonical(obj))] for kind in DOMAINS}
    assert len(set(prefixes.values())) == len(prefixes)
    for a, b in itertools.permutations(prefixes, 2):
        assert not prefixes[b].startswith(prefixes[a]), (a, b)


@pytest.mark.parametrize("kind", ["", "Change", "changes", "change\x00", "unknown", "fieldsync/v1/change"])
def test_unknown_kind_raises(kind: str) -> None:
    with pytest.raises(CanonicalError, match="unknown kind"):
        signing_bytes(kind, {"x": 1})


def test_signing_bytes_refuses_uncanonical_object() -> None:
    with pytest.raises(CanonicalError):
        signing_bytes("change", {"x": float("nan")})


@pytest.mark.parametrize(("signed_as", "verified_as"), list(itertools.permutations(sorted(DOMAINS), 2)))
def test_a_signature_for_one_kind_does_not_verify_as_another(signed_as: str, verified_as: str) -> None:
    key = SigningKey(seed(7))
    obj = {"id": "x", "seq": 1, "fields": {"a": "b"}}
    signature = key.sign(signing_bytes(signed_as, obj))
    assert key.verify_key.verify(signing_bytes(signed_as, obj), signature)
    with pytest.raises(VerificationError):
        key.verify_key.verify(signing_bytes(verified_as, obj), signature)


_plain_scalars = st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1) | st.text(max_size=20)
_plain_values = st.recursive(
    _plain_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127), max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_plain_values)
def test_canonical_plain_gives_the_same_bytes_on_plain_values(value: object) -> None:
    from crypto.canonical import canonical_plain

    assert canonical_plain(value) == canonical(value) == rfc8785.dumps(value)


# Every code point JSON escapes differently anywhere (controls, quote, backslash, DEL, the
# line separators, the BOM, the last of each plane): the fast path must agree with RFC 8785.
_ESCAPE_PROBES = [chr(cp) for cp in [*range(0x800), 0x2028, 0x2029, 0xFEFF, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF]]


def test_canonical_plain_escapes_every_character_as_rfc8785_does() -> None:
    from crypto.canonical import canonical_plain

    for char in _ESCAPE_PROBES:
        value = {"b": char, "a": [char, f"x{char}y", 1, None, True], "c": {"k": char}}
        assert canonical_plain(value) == rfc8785.dumps(value), hex(ord(char))


@pytest.mark.parametrize("value", [["ok", "\ud800"], {"k": {"j": "\udfff"}}], ids=["list", "nested-dict"])
def test_canonical_plain_refuses_a_lone_surrogate(value: object) -> None:
    from crypto.canonical import canonical_plain

    with pytest.raises(CanonicalError, match="surrogate"):
        canonical_plain(value)


def test_canonical_plain_of_deep_nesting_agrees() -> None:
    # deeper than orjson's limit (254): the C encoder takes over and gives the same bytes
    from crypto.canonical import canonical_plain

    value: object = "leaf"
    for i in range(300):
        value = [value] if i % 2 else {"k": value}
    assert canonical_plain(value) == canonical(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [{"at": datetime(2026, 12, 2, tzinfo=UTC)}, {"k": {"n": True}.keys()}, [Decimal("1.5")]],
    ids=["datetime", "dict-keys", "decimal"],
)
def test_canonical_plain_writes_no_bytes_for_what_is_not_json(value: object) -> None:
    # canonical_plain trusts its caller; should one ever break the promise, a value that is not
    # plain JSON is refused, never written in some encoder's own way
    from crypto.canonical import canonical_plain

    with pytest.raises((TypeError, CanonicalError)):
        canonical_plain(value)
