"""Builders and oracles shared by the crypto tests.

The oracles here are written from the rules stated in the crypto modules'
docstrings and in DESIGN.md, using independent code (hashlib, base64, the
``rfc8785`` package), so a test comparing crypto's output with them can fail.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from hypothesis import strategies as st

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)

# The change header as DESIGN.md ("Changes, clocks and signatures") lists it.
HEADER_KEYS = ("id", "collection", "record_id", "agency", "device", "seq", "prev", "hlc", "base", "deleted")


def seed(byte: int) -> bytes:
    """A fixed 32-byte seed: ``byte`` repeated."""
    return bytes([byte]) * 32


def b64url(data: bytes) -> str:
    """Unpadded base64url, by the standard library (independent of crypto.b64e)."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def fixed_salt(n: int) -> str:
    """A valid 22-character salt (16 bytes) that does not depend on randomness."""
    return b64url(hashlib.sha256(b"salt %d" % n).digest()[:16])


def oracle_field_digest(salt: str, value: Any) -> str:
    """digest = SHA-256("fieldsync/v1/field\\0" || salt text || JCS(value)), as crypto.changes states."""
    return b64url(hashlib.sha256(b"fieldsync/v1/field\x00" + salt.encode("ascii") + rfc8785.dumps(value)).digest())


def oracle_change_signing_bytes(change: dict[str, Any]) -> bytes:
    """The signed bytes of a change per crypto.changes' docstring: the canonical header
    plus each field's digest, under the ``change`` domain."""
    payload = {key: change[key] for key in HEADER_KEYS}
    payload["fields"] = {
        name: entry["digest"] if "digest" in entry else oracle_field_digest(entry["salt"], entry["value"])
        for name, entry in change["fields"].items()
    }
    return b"fieldsync/v1/change\x00" + rfc8785.dumps(payload)


def build_change(**overrides: Any) -> dict[str, Any]:
    """An unsigned change shaped as sync builds one (sync.changes.make_change), with
    fixed salts so that it is fully deterministic."""
    change: dict[str, Any] = {
        "id": "5b0f7c1e-2d7a-4c8e-9a51-0c6f1d2e3a4b",
        "collection": "resources",
        "record_id": "9e2d4a60-7f0b-4f3c-8d21-6a5b4c3d2e1f",
        "agency": "metro-pd",
        "device": "dev-7",
        "seq": 3,
        "prev": b64url(hashlib.sha256(b"change 2 of dev-7").digest()),
        "hlc": "0001767225600000-000002-dev-7",
        "base": {
            "name": "0001767225500000-000000-dev-2",
            "status": None,
            "location": "0001767225400000-000001-dev-7",
            "_deleted": None,
        },
        "fields": {
            "name": {"salt": fixed_salt(1), "value": "Rescue boat 2 — Bootshaus Süd"},
            "status": {"salt": fixed_salt(2), "value": "available"},
            "quantity": {"salt": fixed_salt(3), "value": 2},
            "location": {"salt": fixed_salt(4), "value": {"text": "Pier 4", "lat": 47.6062, "lon": -122.3321}},
        },
        "deleted": False,
    }
    change.update(overrides)
    return change


def _replacements(char: str) -> list[str]:
    """Characters to put in place of ``char``: a low-bit flip of the code point and,
    for base64url characters, two other alphabet characters (one differing only in
    the lowest bit, which for a final character may be an unused trailing bit)."""
    out = {chr(ord(char) ^ 1)}
    if char in ALPHABET:
        index = ALPHABET.index(char)
        out.add(ALPHABET[index ^ 1])
        out.add(ALPHABET[index ^ 32])
    out.discard(char)
    return sorted(out)


def _set_in(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        obj = obj[step]
    obj[path[-1]] = value


def string_edits(obj: Any, *, keys: bool = True) -> Iterator[tuple[str, Any]]:
    """Every copy of ``obj`` with exactly one character of one string changed.

    Walks string values at any depth and, when ``keys`` is true, dictionary keys
    too. Yields (a description for failure messages, the edited deep copy).
    """

    def walk(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[str, Any]]:
        if isinstance(node, str):
            for pos, char in enumerate(node):
                for new in _replacements(char):
                    edited = copy.deepcopy(obj)
                    _set_in(edited, path, node[:pos] + new + node[pos + 1 :])
                    yield f"value at {path!r}[{pos}] {char!r}->{new!r}", edited
        elif isinstance(node, dict):
            for key, child in node.items():
                yield from walk(child, (*path, key))
                if keys:
                    for pos, char in enumerate(key):
                        for new in _replacements(char):
                            renamed = key[:pos] + new + key[pos + 1 :]
                            edited = copy.deepcopy(obj)
                            parent = edited
                            for step in path:
                                parent = parent[step]
                            parent[renamed] = parent.pop(key)
                            yield f"key at {path!r} {key!r}->{renamed!r}", edited
        elif isinstance(node, list):
            for i, child in enumerate(node):
                yield from walk(child, (*path, i))

    yield from walk(obj, ())


def string_paths(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every non-empty string value inside ``obj``."""
    if isinstance(obj, str):
        return [path] if obj else []
    if isinstance(obj, dict):
        return [p for key, child in obj.items() for p in string_paths(child, (*path, key))]
    if isinstance(obj, list):
        return [p for i, child in enumerate(obj) for p in string_paths(child, (*path, i))]
    return []


def get_in(obj: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        obj = obj[step]
    return obj


# -- hypothesis strategies for JSON values ----------------------------------------
# Keys mix ASCII, BMP private-use and astral-plane characters: UTF-16 order (RFC 8785
# §3.2.3) and code-point order disagree between U+E000..U+FFFF and U+10000 and above.
_KEY_CHARS = st.sampled_from(
    [
        *["a", "b", "Z", "_", "1", "\x7f", "é", "\u20ac", "\ud7ff", "\ue000", "\uf8ff", "\ufb33", "\uffff"],
        *["\U00010000", "\U0001f600", "\U000f0000", "\U0010fffd"],
    ]
)
json_keys = st.text(_KEY_CHARS, max_size=4) | st.text(max_size=6)
json_floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [
        *[5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308],
        *[1e21, 1e20, 1e-6, 1e-7, -0.0, 0.1, 1e23, 9007199254740993.0, 333333333.3333333],
    ]
)
json_ints = st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
json_scalars = st.none() | st.booleans() | json_ints | json_floats | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(json_keys, children, max_size=5),
    max_leaves=20,
)
