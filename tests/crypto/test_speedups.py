"""crypto._speedups (crypto/_speedups.c) against crypto.changes' Python path.

The C code may only answer "these bytes" (exactly the Python path's) or "ask Python"
(None); it decides no refusal. The generated changes are in the common shape and
around it: every header type swapped for a near miss (a float seq, a bool, a str or
int subclass), text with quotes, control characters, non-ASCII and lone surrogates,
withheld digests of every length, salts one character off, resolutions and keys
nothing signs.
"""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import (
    CryptoError,
    SigningKey,
    VerificationError,
    change_hash,
    get_provider,
    set_provider,
    speedups,
    verify_change,
)
from crypto import changes as crypto_changes
from crypto.canonical import DOMAINS
from crypto.provider import NaclProvider

from .helpers import b64url, build_change, fixed_salt, oracle_change_signing_bytes, seed, string_edits

KEY = SigningKey(seed(0x33))
compiled = speedups.load()
needs_build = pytest.mark.skipif(compiled is None, reason="crypto._speedups is not built here (no C compiler?)")


def fast(change: Any) -> bytes | None:
    assert compiled is not None
    out = compiled.signed_bytes(change, DOMAINS["change"], DOMAINS["field"])
    assert out is None or type(out) is bytes
    return out


def reference(change: Any) -> bytes | str:
    """The Python path's bytes, or the name of the error it refuses the change with."""
    try:
        return crypto_changes._reference_signed_bytes(change)
    except (CryptoError, TypeError, AttributeError) as exc:
        return type(exc).__name__


def scalar_change(**overrides: Any) -> dict[str, Any]:
    """build_change with every field value a scalar (its ``location`` object is not one)."""
    change = build_change()
    change["fields"].pop("location")
    change["fields"]["notes"] = {"salt": fixed_salt(5), "value": 'a "quoted"\\ note\n\ttab \x01 \x7f é ☃ 😀'}
    change["fields"]["spare"] = {"salt": fixed_salt(6), "value": None}
    change["fields"]["active"] = {"salt": fixed_salt(7), "value": True}
    change["fields"]["count"] = {"salt": fixed_salt(8), "value": -(2**53 - 1)}
    change.update(overrides)
    return change


def test_ci_builds_the_speedups() -> None:
    """CI (.ci/run) sets FIELDSYNC_REQUIRE_SPEEDUPS: a build that silently fell back to
    Python would pass every other test, only slower."""
    if os.environ.get("FIELDSYNC_REQUIRE_SPEEDUPS") != "1":
        pytest.skip("FIELDSYNC_REQUIRE_SPEEDUPS is not set")
    assert compiled is not None, "crypto._speedups is not built, or is older than crypto/_speedups.c"
    assert crypto_changes._speedups is compiled


@needs_build
def test_a_change_in_the_common_shape_is_made_in_c_with_the_documented_bytes() -> None:
    change = scalar_change()
    out = fast(change)
    assert out is not None
    assert out == crypto_changes._reference_signed_bytes(change) == oracle_change_signing_bytes(change)
    withheld = crypto_changes.withhold(change, {"notes", "name"})
    assert fast(withheld) == oracle_change_signing_bytes(withheld) == out  # digests sign alike
    resolved = {**change, "resolution": {"kind": "field", "resolves": "c-1", "by": "staff ☃"}}
    assert fast(resolved) == crypto_changes._reference_signed_bytes(resolved) != out


@needs_build
def test_verify_change_takes_the_c_path_and_still_refuses_every_single_character_edit() -> None:
    signed = crypto_changes.sign_change(scalar_change(), KEY)
    assert fast(signed) is not None
    assert verify_change(signed, KEY.verify_key).hash == change_hash(signed)
    edits = 0
    for where, edited in string_edits(signed):
        edits += 1
        with pytest.raises(VerificationError):
            verify_change(edited, KEY.verify_key)
            pytest.fail(f"verified after an edit of the {where}")
    assert edits > 500


# every way off the common shape: the C code says "ask Python", and Python decides
OFF_PATH: dict[str, Any] = {
    "float seq": {"seq": 3.0},
    "bool seq": {"seq": True},
    "seq past 2**53-1": {"seq": 2**53},
    "seq below -(2**53-1)": {"seq": -(2**53)},
    "int subclass seq": {"seq": type("Int", (int,), {})(3)},
    "str subclass agency": {"agency": type("Str", (str,), {})("metro-pd")},
    "lone surrogate in agency": {"agency": "metro-\ud800"},
    "bytes id": {"id": b"5b0f"},
    "int deleted": {"deleted": 0},
    "prev neither text nor null": {"prev": 7},
    "base not a dict": {"base": [["name", None]]},
    "dict subclass base": {"base": type("D", (dict,), {})(name=None)},
    "base value a number": {"base": {"name": 1}},
    "non-ASCII base key": {"base": {"naméé": None}},
    "non-text base key": {"base": {1: None}},
    "fields not a dict": {"fields": None},
    "float value": {"fields": {"quantity": {"salt": fixed_salt(3), "value": 2.5}}},
    "whole float value": {"fields": {"quantity": {"salt": fixed_salt(3), "value": 2.0}}},
    "list value": {"fields": {"tags": {"salt": fixed_salt(3), "value": ["a"]}}},
    "object value": {"fields": {"where": {"salt": fixed_salt(3), "value": {"text": "Pier 4"}}}},
    "value past 2**53-1": {"fields": {"quantity": {"salt": fixed_salt(3), "value": 2**53}}},
    "lone surrogate in a value": {"fields": {"name": {"salt": fixed_salt(3), "value": "\udfff"}}},
    "non-ASCII field name": {"fields": {"namé": {"salt": fixed_salt(3), "value": "x"}}},
    "salt one short": {"fields": {"name": {"salt": fixed_salt(3)[:-1], "value": "x"}}},
    "salt one long": {"fields": {"name": {"salt": fixed_salt(3) + "A", "value": "x"}}},
    "salt with padding": {"fields": {"name": {"salt": fixed_salt(3)[:-1] + "=", "value": "x"}}},
    "salt in standard base64": {"fields": {"name": {"salt": fixed_salt(3)[:-1] + "+", "value": "x"}}},
    "salt not text": {"fields": {"name": {"salt": b"A" * 22, "value": "x"}}},
    "entry with a third key": {"fields": {"name": {"salt": fixed_salt(3), "value": "x", "digest": "y"}}},
    "entry missing its value": {"fields": {"name": {"salt": fixed_salt(3), "valeu": "x"}}},
    "entry not a dict": {"fields": {"name": "x"}},
    "digest one short": {"fields": {"name": {"digest": b64url(bytes(32))[:-1]}}},
    "digest one long": {"fields": {"name": {"digest": b64url(bytes(32)) + "A"}}},
    "digest of 33 bytes": {"fields": {"name": {"digest": b64url(bytes(33))}}},
    "digest with unused bits set": {"fields": {"name": {"digest": b64url(bytes(32))[:-1] + "B"}}},
    "digest not text": {"fields": {"name": {"digest": 7}}},
    "resolution missing a key": {"resolution": {"kind": "field", "resolves": "c-1"}},
    "resolution with an empty value": {"resolution": {"kind": "field", "resolves": "", "by": "staff"}},
    "resolution with a fourth key": {"resolution": {"kind": "f", "resolves": "c", "by": "s", "note": "n"}},
    "resolution not a dict": {"resolution": "field"},
    "a key nothing signs": {"extra": "rides along"},
}


@needs_build
@pytest.mark.parametrize("edit", OFF_PATH.values(), ids=OFF_PATH.keys())
def test_off_the_common_shape_the_c_code_asks_python(edit: dict[str, Any]) -> None:
    change = scalar_change()
    change.update(copy.deepcopy(edit))
    assert fast(change) is None
    expected = reference(change)
    if isinstance(expected, bytes):  # a shape only Python writes (a float, a non-ASCII key): RFC 8785's bytes
        assert crypto_changes._signed_bytes(change) == expected == oracle_change_signing_bytes(change)
    else:  # or one Python refuses, with its reason
        with pytest.raises(CryptoError):
            crypto_changes._signed_bytes(change)


@needs_build
@pytest.mark.parametrize("key", ["id", "collection", "record_id", "agency", "device", "seq", "hlc", "base", "fields"])
def test_a_change_missing_a_signed_key_is_left_to_python(key: str) -> None:
    change = scalar_change()
    del change[key]
    assert fast(change) is None
    assert reference(change) in ("VerificationError", "KeyFormatError")


class LookAlike:
    """A key that hashes and compares as ``name`` does, and may run code when compared."""

    def __init__(self, name: str, on_compare: Any = None) -> None:
        self.name, self.on_compare = name, on_compare

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        if self.on_compare is not None:
            self.on_compare()
        return other == self.name


@needs_build
@pytest.mark.parametrize("where", ["change", "entry", "resolution"])
def test_a_key_that_is_not_exact_text_is_left_to_python_and_runs_no_code(where: str) -> None:
    """Such a key's __eq__ could change the change while the C code reads it (a use after
    free, before it checked every key first); and it would write the look-alike's own name."""
    change = {**scalar_change(), "resolution": {"kind": "field", "resolves": "c-1", "by": "staff"}}
    compared: list[str] = []

    def meddle() -> None:
        compared.append(where)
        change["fields"] = {}  # drops what the C code would be reading

    if where == "change":
        change[LookAlike("seq", meddle)] = change.pop("seq")  # type: ignore[index]
    elif where == "entry":
        entry = change["fields"]["status"]
        entry[LookAlike("salt", meddle)] = entry.pop("salt")
    else:
        change["resolution"][LookAlike("kind", meddle)] = change["resolution"].pop("kind")
    assert fast(change) is None
    assert compared == []


@needs_build
def test_not_a_dict_is_left_to_python() -> None:
    assert fast([scalar_change()]) is None
    assert fast(type("D", (dict,), {})(scalar_change())) is None


# -- generated changes, in the common shape and around it -------------------------------------
_texts = st.text(max_size=8) | st.sampled_from(["", '"', "\\", "\x00", "\x1f", "\x7f", "é", "\u2028", "😀", "\ud800"])
_ascii_names = st.text(st.characters(max_codepoint=0x7F), min_size=1, max_size=6)
_names = _ascii_names | st.sampled_from(["namé", "\uffff", "\U0001f600"])
_salts = st.just(fixed_salt(1)) | st.builds(lambda n, tail: fixed_salt(n)[:21] + tail, st.integers(1, 9), _texts)
_digests = st.builds(b64url, st.binary(min_size=31, max_size=33)) | st.builds(
    lambda d, tail: d[:-1] + tail, st.builds(b64url, st.binary(min_size=32, max_size=32)), _texts
)
_ints = st.integers(-(2**53) - 1, 2**53 + 1) | st.sampled_from([0, -1, 2**53 - 1, -(2**53 - 1), 2**63, -(2**64)])
_scalars = st.none() | st.booleans() | _ints | _texts | st.floats(allow_nan=False) | st.lists(st.integers(), max_size=2)
_entries = st.fixed_dictionaries({"salt": _salts, "value": _scalars}) | st.fixed_dictionaries({"digest": _digests})
_header_values = _texts | _ints | st.none() | st.booleans() | st.floats(allow_nan=False)


@st.composite
def changes(draw: st.DrawFn) -> dict[str, Any]:
    change = scalar_change()
    change["base"] = draw(st.dictionaries(_names, st.none() | _texts | _ints, max_size=4))
    change["fields"] = draw(st.dictionaries(_names, _entries, max_size=4))
    for key in draw(st.lists(st.sampled_from(["id", "agency", "device", "hlc", "seq", "prev", "deleted"]), max_size=2)):
        change[key] = draw(_header_values)
    if draw(st.booleans()):
        change["resolution"] = draw(st.dictionaries(st.sampled_from(["kind", "resolves", "by", "x"]), _texts))
    if draw(st.booleans()):
        change["signature"] = draw(_texts)
    if draw(st.integers(0, 9)) == 0:
        change[draw(_texts)] = "?"
    return change


@needs_build
@settings(max_examples=500, deadline=None)
@given(changes())
def test_the_c_code_gives_the_python_bytes_or_asks_python(change: dict[str, Any]) -> None:
    out = fast(change)
    if out is not None:
        assert out == reference(change)


@needs_build
@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_ascii_names, st.fixed_dictionaries({"salt": st.just(fixed_salt(2)), "value": _texts | _ints})))
def test_every_common_change_is_made_in_c(fields: dict[str, Any]) -> None:
    """Off the path only where the docstring says: a lone surrogate, a number past 2**53-1."""
    change = scalar_change(fields=fields)
    if any(type(e["value"]) is int and abs(e["value"]) > 2**53 - 1 for e in fields.values()) or any(
        type(e["value"]) is str and any("\ud800" <= c <= "\udfff" for c in e["value"]) for e in fields.values()
    ):
        assert fast(change) is None
    else:
        assert fast(change) == oracle_change_signing_bytes(change)


# -- when the build is not used ----------------------------------------------------------------
@needs_build
def test_a_build_older_than_its_source_is_not_used(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    edited = tmp_path / "_speedups.c"
    edited.write_bytes(speedups.SOURCE.read_bytes() + b"\n/* edited after the build */\n")
    with caplog.at_level(logging.WARNING, logger="fieldsync.crypto"):
        assert speedups.load(edited) is None
    assert "changed since crypto._speedups was built" in caplog.text
    assert speedups.load(speedups.SOURCE) is compiled
    assert speedups.load(tmp_path / "no-source-beside-it.c") is compiled  # an installed copy


def test_fieldsync_speedups_0_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIELDSYNC_SPEEDUPS", "0")
    assert speedups.load() is None
    probe = "import crypto.changes as c; print(c._speedups is None, c._signed_bytes.__module__)"
    for setting, off in (("0", "True"), ("", str(compiled is None))):
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env={**os.environ, "FIELDSYNC_SPEEDUPS": setting},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert done.stdout.split() == [off, "crypto.changes"]


@needs_build
def test_another_provider_gets_the_python_path() -> None:
    """The C code hashes with OpenSSL's SHA-256: a provider installed in its place (a FIPS
    module) must do every digest of the signed bytes itself."""

    class Counting(NaclProvider):
        calls = 0

        def hash(self, data: bytes) -> bytes:
            Counting.calls += 1
            return super().hash(data)

    change = scalar_change()
    previous = set_provider(Counting())
    try:
        assert crypto_changes._signed_bytes(change) == oracle_change_signing_bytes(change)
    finally:
        set_provider(previous)
    assert Counting.calls == len(change["fields"])
    assert type(get_provider()) is NaclProvider
