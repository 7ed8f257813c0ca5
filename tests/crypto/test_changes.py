"""crypto.changes: signed changes with salted field digests.

The tamper tests: any edit of anything a change's signature covers must make
verify_change raise VerificationError, and withholding a field must not.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import (
    CanonicalError,
    CryptoError,
    KeyFormatError,
    SigningKey,
    VerificationError,
    VerifiedChange,
    b64d,
    change_hash,
    field_digest,
    new_salt,
    sign_change,
    verify_change,
    withhold,
)

from .helpers import (
    HEADER_KEYS,
    b64url,
    build_change,
    fixed_salt,
    get_in,
    json_values,
    oracle_change_signing_bytes,
    oracle_field_digest,
    seed,
    string_edits,
    string_paths,
)

KEY = SigningKey(seed(0x11))
OTHER = SigningKey(seed(0x22))
SIGNED = sign_change(build_change(), KEY)


@pytest.fixture
def signed() -> dict:
    return copy.deepcopy(SIGNED)


def _fails(change: object, key: SigningKey = KEY) -> bool:
    try:
        verify_change(change, key.verify_key)  # type: ignore[arg-type]
    except VerificationError:
        return True
    return False


# -- the happy path ------------------------------------------------------------------------
def test_sign_then_verify(signed: dict) -> None:
    verified = verify_change(signed, KEY.verify_key)
    assert isinstance(verified, VerifiedChange)
    assert verified.change == signed
    assert verified.hash == change_hash(signed)


def test_signature_is_over_the_documented_bytes(signed: dict) -> None:
    # Header plus per-field salted digests, canonical, under the "change" domain.
    signature = b64d(signed["signature"], length=64)
    assert KEY.verify_key.verify(oracle_change_signing_bytes(signed), signature)


def test_sign_change_returns_a_copy_and_replaces_an_old_signature() -> None:
    unsigned = build_change()
    snapshot = copy.deepcopy(unsigned)
    first = sign_change(unsigned, KEY)
    assert unsigned == snapshot  # not modified in place
    assert "signature" not in unsigned
    again = sign_change(first, OTHER)
    assert again["signature"] != first["signature"]
    verify_change(again, OTHER.verify_key)
    assert _fails(again, KEY)


def test_verification_survives_json_and_key_order(signed: dict) -> None:
    wire = json.loads(json.dumps(signed, ensure_ascii=True))
    reordered = dict(reversed(list(wire.items())))
    reordered["fields"] = dict(reversed(list(wire["fields"].items())))
    assert verify_change(reordered, KEY.verify_key).hash == change_hash(signed)


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(st.text(min_size=1, max_size=10), json_values, min_size=0, max_size=4),
    st.data(),
)
def test_any_values_sign_verify_and_withhold(values: dict, data: st.DataObject) -> None:
    change = build_change(fields={name: {"salt": new_salt(), "value": value} for name, value in values.items()})
    signed = sign_change(change, KEY)
    verified = verify_change(signed, KEY.verify_key)
    hidden = data.draw(st.sets(st.sampled_from(sorted(values))) if values else st.just(set()))
    assert verify_change(withhold(signed, hidden), KEY.verify_key).hash == verified.hash


# -- (a) one character changed anywhere ---------------------------------------------------------
def test_every_single_character_edit_fails(signed: dict) -> None:
    survivors = [what for what, edited in string_edits(signed) if not _fails(edited)]
    assert survivors == []


def test_the_edit_walk_covers_every_string(signed: dict) -> None:
    # Guard for the test above: it must have edited each string of the change.
    edited_paths = {what.split("[")[0] for what, _ in string_edits(signed, keys=False)}
    expected = {f"value at {path!r}" for path in string_paths(signed)}
    assert edited_paths == expected
    assert any("'signature'" in p for p in edited_paths)
    assert any("'salt'" in p for p in edited_paths)
    assert len(expected) >= 16


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_replacement_character_anywhere_fails(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(string_paths(SIGNED)))
    text = get_in(SIGNED, path)
    pos = data.draw(st.integers(0, len(text) - 1))
    new = data.draw(st.characters(codec="utf-8").filter(lambda c: c != text[pos]))
    edited = copy.deepcopy(SIGNED)
    get_in(edited, path[:-1])[path[-1]] = text[:pos] + new + text[pos + 1 :]
    assert _fails(edited)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_inserting_or_deleting_a_character_fails(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(string_paths(SIGNED)))
    text = get_in(SIGNED, path)
    pos = data.draw(st.integers(0, len(text)))
    if data.draw(st.booleans()) and pos < len(text):
        new_text = text[:pos] + text[pos + 1 :]
    else:
        new_text = text[:pos] + data.draw(st.characters(codec="utf-8")) + text[pos:]
    edited = copy.deepcopy(SIGNED)
    get_in(edited, path[:-1])[path[-1]] = new_text
    assert _fails(edited)


def test_flipping_each_bit_of_the_signature_fails(signed: dict) -> None:
    raw = b64d(signed["signature"])
    survivors = []
    for bit in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        edited = dict(signed, signature=b64url(bytes(flipped)))
        if not _fails(edited):
            survivors.append(bit)
    assert survivors == []


# -- (b) header and field-set edits -------------------------------------------------------------
HEADER_EDITS = {
    "seq+1": lambda c: c.update(seq=c["seq"] + 1),
    "seq-1": lambda c: c.update(seq=c["seq"] - 1),
    "seq-as-text": lambda c: c.update(seq=str(c["seq"])),
    "seq-as-bool": lambda c: c.update(seq=True),
    "deleted-true": lambda c: c.update(deleted=True),
    "deleted-null": lambda c: c.update(deleted=None),
    "deleted-zero": lambda c: c.update(deleted=0),
    "prev-null": lambda c: c.update(prev=None),
    "prev-other": lambda c: c.update(prev=b64url(bytes(32))),
    "hlc-later": lambda c: c.update(hlc="0001767225600001-000002-dev-7"),
    "base-entry-changed": lambda c: c["base"].update(name="0001767225500001-000000-dev-2"),
    "base-entry-nulled": lambda c: c["base"].update(name=None),
    "base-entry-set": lambda c: c["base"].update(status="0001767225500000-000000-dev-3"),
    "base-entry-added": lambda c: c["base"].update(notes=None),
    "base-entry-removed": lambda c: c["base"].pop("location"),
    "base-empty": lambda c: c.update(base={}),
    "base-null": lambda c: c.update(base=None),
    "field-added": lambda c: c["fields"].update(notes={"salt": fixed_salt(9), "value": "added later"}),
    "field-added-withheld": lambda c: c["fields"].update(notes={"digest": b64url(bytes(32))}),
    "field-removed": lambda c: c["fields"].pop("status"),
    "fields-emptied": lambda c: c.update(fields={}),
    "value-number": lambda c: c["fields"]["quantity"].update(value=3),
    "value-type": lambda c: c["fields"]["quantity"].update(value="2"),
    "value-float": lambda c: c["fields"]["quantity"].update(value=2.5),
    "value-nested": lambda c: c["fields"]["location"]["value"].update(lat=47.6063),
    "value-nested-key-added": lambda c: c["fields"]["location"]["value"].update(alt=0),
    "value-null": lambda c: c["fields"]["status"].update(value=None),
    "salt-regenerated": lambda c: c["fields"]["status"].update(salt=new_salt()),
    "field-renamed": lambda c: c["fields"].update(state=c["fields"].pop("status")),
}


@pytest.mark.parametrize("edit", sorted(HEADER_EDITS))
def test_edit_fails(signed: dict, edit: str) -> None:
    HEADER_EDITS[edit](signed)
    assert _fails(signed)


# -- (c) swapping between fields ----------------------------------------------------------------
def test_swapping_two_values_fails(signed: dict) -> None:
    f = signed["fields"]
    f["name"]["value"], f["status"]["value"] = f["status"]["value"], f["name"]["value"]
    assert _fails(signed)


def test_swapping_two_whole_entries_fails(signed: dict) -> None:
    f = signed["fields"]
    f["name"], f["status"] = f["status"], f["name"]
    assert _fails(signed)


def test_swapping_two_salts_fails(signed: dict) -> None:
    f = signed["fields"]
    f["name"]["salt"], f["status"]["salt"] = f["status"]["salt"], f["name"]["salt"]
    assert _fails(signed)


def test_swapping_two_withheld_digests_fails(signed: dict) -> None:
    hidden = withhold(signed, {"name", "status"})
    f = hidden["fields"]
    f["name"], f["status"] = f["status"], f["name"]
    assert _fails(hidden)


# -- (d) replay under another record ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("record_id", "00000000-0000-4000-8000-000000000000"),
        ("collection", "contacts"),
        ("agency", "county-so"),
        ("device", "dev-8"),
        ("id", "6c1f8d2f-3e8b-4d9f-0b62-1d7e2f3a4b5c"),
    ],
)
def test_replay_under_another_header_fails(signed: dict, name: str, value: str) -> None:
    assert signed[name] != value
    signed[name] = value
    assert _fails(signed)


def test_fields_moved_onto_another_signed_change_fail(signed: dict) -> None:
    donor = sign_change(build_change(record_id="00000000-0000-4000-8000-000000000001"), KEY)
    donor["fields"] = signed["fields"] | {"quantity": {"salt": fixed_salt(5), "value": 99}}
    assert _fails(donor)


# -- (e) and (f) withholding ----------------------------------------------------------------------
def test_withheld_field_still_verifies(signed: dict) -> None:
    original = copy.deepcopy(signed)
    hidden = withhold(signed, {"status"})
    assert signed == original  # withhold returns a copy
    verified = verify_change(hidden, KEY.verify_key)
    assert verified.hash == change_hash(signed)
    entry = hidden["fields"]["status"]
    assert entry == {"digest": field_digest(signed["fields"]["status"]["salt"], "available")}
    assert entry["digest"] == oracle_field_digest(signed["fields"]["status"]["salt"], "available")
    assert "available" not in json.dumps(hidden)
    assert signed["fields"]["status"]["salt"] not in json.dumps(hidden)
    for name in ("name", "quantity", "location"):
        assert hidden["fields"][name] == signed["fields"][name]
    assert {k: v for k, v in hidden.items() if k != "fields"} == {k: v for k, v in signed.items() if k != "fields"}


def test_withholding_everything_still_verifies_and_is_idempotent(signed: dict) -> None:
    everything = set(signed["fields"])
    hidden = withhold(signed, everything)
    assert all(set(entry) == {"digest"} for entry in hidden["fields"].values())
    assert withhold(hidden, everything) == hidden
    assert withhold(withhold(signed, {"name"}), {"status"}) == withhold(signed, {"name", "status"})
    assert verify_change(hidden, KEY.verify_key).hash == change_hash(signed)


def test_withholding_an_unknown_field_changes_nothing(signed: dict) -> None:
    assert withhold(signed, {"no-such-field"}) == signed


def test_disclosing_again_with_the_true_salt_and_value_verifies(signed: dict) -> None:
    hidden = withhold(signed, {"status"})
    hidden["fields"]["status"] = copy.deepcopy(signed["fields"]["status"])
    verify_change(hidden, KEY.verify_key)


@pytest.mark.parametrize(
    "guess", [{"value": "deployed"}, {"value": "available", "salt": fixed_salt(99)}, {"value": "Available"}]
)
def test_disclosing_a_guessed_value_fails(signed: dict, guess: dict) -> None:
    hidden = withhold(signed, {"status"})
    hidden["fields"]["status"] = {"salt": signed["fields"]["status"]["salt"]} | guess
    assert _fails(hidden)


def test_every_edit_of_a_withheld_digest_fails(signed: dict) -> None:
    hidden = withhold(signed, {"status"})
    survivors = [
        what for what, edited in string_edits(hidden["fields"]["status"]) if not _fails(_with_status(hidden, edited))
    ]
    assert survivors == []


def _with_status(change: dict, entry: dict) -> dict:
    return {**change, "fields": {**change["fields"], "status": entry}}


@pytest.mark.parametrize(
    "entry",
    [
        {"digest": field_digest(fixed_salt(2), "deployed")},  # right salt, other value
        {"digest": field_digest(fixed_salt(3), "available")},  # other salt, right value
        {"digest": b64url(bytes(32))},
    ],
)
def test_substituted_digest_fails(signed: dict, entry: dict) -> None:
    assert _fails(_with_status(withhold(signed, {"status"}), entry))


def test_digest_is_salted() -> None:
    assert field_digest(fixed_salt(1), "available") != field_digest(fixed_salt(2), "available")
    assert field_digest(fixed_salt(1), "available") == field_digest(fixed_salt(1), "available")
    assert field_digest(fixed_salt(1), "available") != field_digest(fixed_salt(1), "deployed")
    assert len(b64d(field_digest(fixed_salt(1), None))) == 32


@settings(max_examples=50, deadline=None)
@given(json_values)
def test_field_digest_matches_documented_formula(value: object) -> None:
    assert field_digest(fixed_salt(7), value) == oracle_field_digest(fixed_salt(7), value)


@pytest.mark.parametrize("salt", ["", "short", fixed_salt(1) + "A", fixed_salt(1)[:-1] + "+", 12, None, b"x" * 22])
def test_field_digest_refuses_bad_salt(salt: object) -> None:
    with pytest.raises(KeyFormatError):
        field_digest(salt, "x")  # type: ignore[arg-type]


def test_new_salt_is_16_random_bytes() -> None:
    salts = {new_salt() for _ in range(200)}
    assert len(salts) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", s) and len(b64d(s)) == 16 for s in salts)


# -- (g) change_hash ---------------------------------------------------------------------------------
def test_change_hash_is_stable(signed: dict) -> None:
    first = change_hash(signed)
    assert change_hash(signed) == first
    assert change_hash(copy.deepcopy(signed)) == first
    assert change_hash(json.loads(json.dumps(signed))) == first
    assert change_hash(build_change()) == first  # the signature is not part of it
    assert change_hash(sign_change(build_change(), OTHER)) == first
    assert change_hash(withhold(signed, {"name", "location"})) == first
    assert len(b64d(first)) == 32


def test_change_hash_is_sha256_of_signed_bytes(signed: dict) -> None:
    import hashlib

    assert change_hash(signed) == b64url(hashlib.sha256(oracle_change_signing_bytes(signed)).digest())


def test_change_hash_differs_when_any_signed_byte_differs(signed: dict) -> None:
    original = change_hash(signed)
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    collisions = []
    for what, edited in string_edits(unsigned):
        try:
            if change_hash(edited) == original:
                collisions.append(what)
        except VerificationError:
            pass  # no longer a change at all (a header key renamed, a salt made invalid)
    for edit in HEADER_EDITS.values():
        edited = copy.deepcopy(unsigned)
        edit(edited)
        try:
            if change_hash(edited) == original:
                collisions.append(edit)
        except VerificationError:
            pass  # refused outright (e.g. seq no longer a whole number): no collision either
    assert collisions == []


# -- (h) another key ------------------------------------------------------------------------------
def test_another_key_fails(signed: dict) -> None:
    assert _fails(signed, OTHER)
    assert _fails(withhold(signed, {"status"}), OTHER)


def test_error_names_the_change(signed: dict) -> None:
    with pytest.raises(VerificationError) as info:
        verify_change(signed, OTHER.verify_key)
    assert info.value.subject is not None and signed["id"] in info.value.subject
    assert signed["id"] in str(info.value)
    assert info.value.reason


# -- (i) malformed input ----------------------------------------------------------------------------
def _true_digest(change: dict) -> str:
    entry = change["fields"]["status"]
    return field_digest(entry["salt"], entry["value"])


def _without(name: str):
    return lambda c: c.pop(name)


MALFORMED = {
    **{f"no-{name}": _without(name) for name in (*HEADER_KEYS, "fields", "signature")},
    "fields-null": lambda c: c.update(fields=None),
    "fields-list": lambda c: c.update(fields=[["status", "available"]]),
    "fields-text": lambda c: c.update(fields="status=available"),
    "entry-text": lambda c: c["fields"].update(status="available"),
    "entry-null": lambda c: c["fields"].update(status=None),
    "entry-empty": lambda c: c["fields"].update(status={}),
    "entry-extra-key": lambda c: c["fields"]["status"].update(note="x"),
    # The extra-key cases carry the true digest, so only the shape check can refuse them.
    "entry-salt-value-digest": lambda c: c["fields"]["status"].update(digest=_true_digest(c)),
    "entry-digest-extra-key": lambda c: c["fields"].update(status={"digest": _true_digest(c), "note": "x"}),
    "entry-digest-and-salt": lambda c: c["fields"].update(status={"digest": _true_digest(c), "salt": fixed_salt(2)}),
    "entry-salt-only": lambda c: c["fields"]["status"].pop("value"),
    "entry-value-only": lambda c: c["fields"]["status"].pop("salt"),
    "salt-number": lambda c: c["fields"]["status"].update(salt=12),
    "salt-short": lambda c: c["fields"]["status"].update(salt="abc"),
    "salt-plus": lambda c: c["fields"]["status"].update(salt="+" * 22),
    "digest-short": lambda c: c["fields"].update(status={"digest": b64url(bytes(31))}),
    "digest-number": lambda c: c["fields"].update(status={"digest": 7}),
    "digest-padded": lambda c: c["fields"].update(status={"digest": _true_digest(c) + "="}),
    "value-nan": lambda c: c["fields"]["status"].update(value=float("nan")),
    "value-bytes": lambda c: c["fields"]["status"].update(value=b"available"),
    "value-huge-int": lambda c: c["fields"]["quantity"].update(value=2**64),
    "field-name-int": lambda c: c["fields"].update({7: {"salt": fixed_salt(7), "value": 1}}),
    "header-set": lambda c: c.update(base={"name", "status"}),
    "seq-huge": lambda c: c.update(seq=2**60),
    "signature-null": lambda c: c.update(signature=None),
    "signature-number": lambda c: c.update(signature=1),
    "signature-bytes": lambda c: c.update(signature=b"x" * 64),
    "signature-short": lambda c: c.update(signature=c["signature"][:-2]),
    "signature-padded": lambda c: c.update(signature=c["signature"] + "=="),
    "signature-empty": lambda c: c.update(signature=""),
}


@pytest.mark.parametrize("malformation", sorted(MALFORMED))
def test_malformed_change_raises_verification_error(signed: dict, malformation: str) -> None:
    MALFORMED[malformation](signed)
    with pytest.raises(VerificationError):
        verify_change(signed, KEY.verify_key)


@pytest.mark.parametrize("change", [None, [], "change", 42, {}, {"fields": {}}, [("id", "x")]])
def test_not_a_change_raises_verification_error(change: object) -> None:
    with pytest.raises(VerificationError):
        verify_change(change, KEY.verify_key)  # type: ignore[arg-type]


@pytest.mark.parametrize("malformation", ["no-seq", "no-fields", "fields-list", "entry-extra-key", "value-nan"])
def test_change_hash_of_malformed_change_raises_crypto_error(signed: dict, malformation: str) -> None:
    # Never a KeyError or TypeError. (A value without a canonical form gives
    # CanonicalError here where verify_change gives VerificationError.)
    MALFORMED[malformation](signed)
    with pytest.raises(CryptoError):
        change_hash(signed)


@pytest.mark.parametrize("malformation", ["no-record_id", "fields-null", "value-nan", "salt-short"])
def test_signing_a_malformed_change_raises(malformation: str) -> None:
    change = build_change()
    MALFORMED[malformation](change)
    with pytest.raises(CanonicalError):
        sign_change(change, KEY)


def test_unsigned_top_level_keys_are_refused(signed: dict) -> None:
    signed["officer"] = "someone else"
    assert _fails(signed)


# -- the optional signed resolution (hub-signed decisions of command staff) -----------------
RESOLUTION = {"kind": "conflict", "resolves": "r/status/a/b", "by": "Lt. Dana Cruz"}


def test_a_resolution_is_signed_with_the_header_and_changes_the_hash() -> None:
    with_it = sign_change({**build_change(), "resolution": RESOLUTION}, KEY)
    verified = verify_change(with_it, KEY.verify_key)
    assert verified.change["resolution"] == RESOLUTION
    plain = sign_change(build_change(), KEY)
    assert change_hash(with_it) != change_hash(plain)  # it is part of what prev chains over
    assert change_hash(plain) == change_hash(SIGNED)  # absent, the signed bytes are unchanged


@pytest.mark.parametrize("key", sorted(RESOLUTION))
def test_editing_any_part_of_a_resolution_breaks_the_signature(key: str) -> None:
    signed = sign_change({**build_change(), "resolution": RESOLUTION}, KEY)
    edited = copy.deepcopy(signed)
    edited["resolution"][key] += "x"
    with pytest.raises(VerificationError):
        verify_change(edited, KEY.verify_key)
    removed = {k: v for k, v in signed.items() if k != "resolution"}
    with pytest.raises(VerificationError):
        verify_change(removed, KEY.verify_key)


@pytest.mark.parametrize(
    "bad",
    [None, "Lt. Cruz", {"by": "x"}, {**RESOLUTION, "extra": "x"}, {**RESOLUTION, "by": ""}, {**RESOLUTION, "by": 1}],
)
def test_a_malformed_resolution_cannot_be_signed(bad: object) -> None:
    with pytest.raises(CanonicalError):
        sign_change({**build_change(), "resolution": bad}, KEY)


@pytest.mark.parametrize("seq", [2**53, 2**60, -(2**53)])
def test_a_seq_beyond_the_exact_range_of_json_numbers_is_neither_signed_nor_verified(seq: int) -> None:
    # RFC 8785 has no bytes for such a number (crypto.canonical refuses it): a change that
    # carries one must not get signed bytes through the fast path either
    with pytest.raises(CanonicalError, match="exact range"):
        sign_change(build_change(seq=seq), KEY)
    forged = {**SIGNED, "seq": seq}
    with pytest.raises(VerificationError, match="exact range"):
        verify_change(forged, KEY.verify_key)
    assert sign_change(build_change(seq=2**53 - 1), KEY)["seq"] == 2**53 - 1  # the last exact one signs
