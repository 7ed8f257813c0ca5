"""crypto.registry: the hub's append-only key registry."""

from __future__ import annotations

import copy
import itertools
from datetime import datetime
from typing import Any

import pytest

from crypto import (
    KeyPeriod,
    KeyRegistry,
    RegistryHead,
    Revocation,
    SigningKey,
    VerificationError,
    agency_entry,
    entry_hash,
    format_time,
    hub_entry,
    issue_certificate,
    revocation_entry,
    rotation_entry,
    signing_bytes,
)
from crypto.encoding import b64e

from .helpers import DAY, SECOND, T0, seed

HUB = SigningKey(seed(0xF0))
HUB2 = SigningKey(seed(0xF1))
METRO_1 = SigningKey(seed(0xA1))
METRO_2 = SigningKey(seed(0xA2))
COUNTY = SigningKey(seed(0xB1))
STRANGER = SigningKey(seed(0xEE))
DEVICE = SigningKey(seed(0x11))

ROTATED = T0 + 30 * DAY
REVOKED = T0 + 40 * DAY


def _build() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    entries.append(hub_entry(entries, HUB, at=T0))
    entries.append(agency_entry(entries, METRO_1, agency="metro-pd", name="Metro Police", at=T0))
    entries.append(agency_entry(entries, COUNTY, agency="county-so", name="County Sheriff", at=T0 + DAY))
    entries.append(rotation_entry(entries, METRO_1, METRO_2, agency="metro-pd", at=ROTATED))
    entries.append(
        revocation_entry(
            entries, METRO_2, agency="metro-pd", device_id="dev-9", after_seq=41, at=REVOKED, reason="laptop stolen"
        )
    )
    return entries


ENTRIES = _build()


@pytest.fixture
def entries() -> list[dict[str, Any]]:
    return copy.deepcopy(ENTRIES)


def _cert(issuer: SigningKey, not_before: datetime, *, agency: str = "metro-pd") -> dict[str, Any]:
    return issue_certificate(
        issuer,
        device_id="dev-7",
        device_key=DEVICE.verify_key,
        agency=agency,
        officer="Officer Ortiz",
        not_before=not_before,
        not_after=not_before + 365 * DAY,
    )


def _fails_at(entries: list[dict[str, Any]], index: int, *, match: str | None = None) -> VerificationError:
    with pytest.raises(VerificationError, match=match) as info:
        KeyRegistry.verify(entries)
    assert info.value.subject == f"registry entry {index}"
    assert f"registry entry {index}" in str(info.value)
    return info.value


def _resign(entry: dict[str, Any], **signers: SigningKey) -> dict[str, Any]:
    """Sign an entry by hand, as registry's docstring describes: every signature covers
    the canonical entry without its signatures, under the "registry" domain."""
    body = {k: v for k, v in entry.items() if k not in ("signature", "new_signature", "previous_signature")}
    message = signing_bytes("registry", body)
    return {**body, **{name: b64e(key.sign(message)) for name, key in signers.items()}}


# -- a good chain ----------------------------------------------------------------------------------
def test_good_chain_verifies(entries: list[dict[str, Any]]) -> None:
    reg = KeyRegistry.verify(entries)
    assert reg.entries == ENTRIES
    assert reg.hub_key == HUB.verify_key
    assert reg.current_key("metro-pd") == METRO_2.verify_key
    assert reg.current_key("county-so") == COUNTY.verify_key
    assert reg.agencies["metro-pd"] == [
        KeyPeriod(METRO_1.verify_key, T0, ROTATED),
        KeyPeriod(METRO_2.verify_key, ROTATED, None),
    ]
    assert reg.names == {"metro-pd": "Metro Police", "county-so": "County Sheriff"}
    assert reg.head == RegistryHead(5, entry_hash(entries[-1]))


def test_entries_chain_by_index_and_hash(entries: list[dict[str, Any]]) -> None:
    assert [e["index"] for e in entries] == list(range(len(entries)))
    assert entries[0]["prev"] is None
    for before, after in itertools.pairwise(entries):
        assert after["prev"] == entry_hash(before)
    assert len({entry_hash(e) for e in entries}) == len(entries)


def test_entry_hash_covers_content_not_signatures(entries: list[dict[str, Any]]) -> None:
    entry = entries[1]
    assert entry_hash(_resign(entry, signature=METRO_1)) == entry_hash(entry)
    assert entry_hash({**entry, "name": "Metro Police Dept"}) != entry_hash(entry)


def test_empty_registry() -> None:
    reg = KeyRegistry.verify([])
    assert reg.head == RegistryHead(0, None)
    with pytest.raises(VerificationError):
        reg.hub_key  # noqa: B018
    with pytest.raises(VerificationError):
        reg.current_key("metro-pd")


@pytest.mark.parametrize("entries", [None, {}, "[]", ({"index": 0},)])
def test_registry_must_be_a_list(entries: object) -> None:
    with pytest.raises(VerificationError):
        KeyRegistry.verify(entries)  # type: ignore[arg-type]


# -- certificates across a rotation --------------------------------------------------------------
def test_certificate_from_old_key_before_rotation_still_verifies() -> None:
    reg = KeyRegistry.verify(ENTRIES)
    cert = _cert(METRO_1, ROTATED - 10 * DAY)
    parsed = reg.verify_certificate(cert, at=ROTATED + 100 * DAY)
    assert parsed.issuer_key == METRO_1.verify_key
    assert parsed.device_key == DEVICE.verify_key


def test_certificate_from_old_key_in_the_rotation_second_verifies() -> None:
    # Signed times have one-second resolution: a laptop enrolled in the very second
    # its agency key was rotated holds a certificate from the old key dated then.
    reg = KeyRegistry.verify(ENTRIES)
    assert reg.verify_certificate(_cert(METRO_1, ROTATED), at=ROTATED + DAY).issuer_key == METRO_1.verify_key


def test_certificate_from_old_key_dated_after_rotation_fails() -> None:
    reg = KeyRegistry.verify(ENTRIES)
    for not_before in (ROTATED + SECOND, ROTATED + 10 * DAY):
        with pytest.raises(VerificationError, match="period"):
            reg.verify_certificate(_cert(METRO_1, not_before), at=ROTATED + 20 * DAY)


def test_certificate_from_new_key_verifies_only_after_rotation() -> None:
    reg = KeyRegistry.verify(ENTRIES)
    assert reg.verify_certificate(_cert(METRO_2, ROTATED), at=ROTATED + DAY).issuer_key == METRO_2.verify_key
    with pytest.raises(VerificationError):
        reg.verify_certificate(_cert(METRO_2, ROTATED - SECOND), at=ROTATED + DAY)


def test_certificate_from_a_key_outside_the_agency_fails() -> None:
    reg = KeyRegistry.verify(ENTRIES)
    with pytest.raises(VerificationError, match="not signed by any key"):
        reg.verify_certificate(_cert(STRANGER, T0 + DAY), at=T0 + 2 * DAY)
    with pytest.raises(VerificationError, match="not signed by any key"):
        reg.verify_certificate(_cert(COUNTY, T0 + 2 * DAY), at=T0 + 3 * DAY)  # another agency's key
    with pytest.raises(VerificationError):
        reg.verify_certificate(_cert(METRO_2, ROTATED, agency="unknown-pd"), at=ROTATED + DAY)


def test_registry_certificate_check_still_checks_validity_and_signature() -> None:
    reg = KeyRegistry.verify(ENTRIES)
    cert = _cert(METRO_2, ROTATED)
    with pytest.raises(VerificationError, match="expired"):
        reg.verify_certificate(cert, at=ROTATED + 400 * DAY)
    with pytest.raises(VerificationError):
        reg.verify_certificate({**cert, "officer": "Someone Else"}, at=ROTATED + DAY)


# -- rotations -------------------------------------------------------------------------------------
def test_rotation_from_an_unrelated_key_fails(entries: list[dict[str, Any]]) -> None:
    base = entries[:3]
    base.append(rotation_entry(base, STRANGER, METRO_2, agency="metro-pd", at=ROTATED))
    _fails_at(base, 3, match="current key")


def test_rotation_naming_the_old_key_but_not_signed_by_it_fails(entries: list[dict[str, Any]]) -> None:
    good = entries[3]
    # Hand-signed with the right keys, the entry verifies: the forgery below differs only in who signed.
    assert KeyRegistry.verify([*entries[:3], _resign(good, signature=METRO_1, new_signature=METRO_2)])
    forged = _resign(good, signature=STRANGER, new_signature=METRO_2)
    _fails_at([*entries[:3], forged], 3, match="signature does not verify")
    without_new = _resign(good, signature=METRO_1, new_signature=STRANGER)
    _fails_at([*entries[:3], without_new], 3, match="new_signature does not verify")
    unsigned = {k: v for k, v in good.items() if k != "signature"}
    _fails_at([*entries[:3], unsigned], 3)


def test_rotation_from_a_retired_key_fails(entries: list[dict[str, Any]]) -> None:
    third = SigningKey(seed(0xA3))
    entries.append(rotation_entry(entries, METRO_1, third, agency="metro-pd", at=REVOKED + DAY))
    _fails_at(entries, 5, match="current key")


def test_rotation_back_to_an_earlier_key_fails(entries: list[dict[str, Any]]) -> None:
    entries.append(rotation_entry(entries, METRO_2, METRO_1, agency="metro-pd", at=REVOKED + DAY))
    _fails_at(entries, 5, match="reuses")


def test_rotation_dated_before_the_current_key_fails(entries: list[dict[str, Any]]) -> None:
    third = SigningKey(seed(0xA3))
    entries.append(rotation_entry(entries, METRO_2, third, agency="metro-pd", at=ROTATED - DAY))
    _fails_at(entries, 5, match="before")


def test_rotation_of_an_unknown_agency_fails(entries: list[dict[str, Any]]) -> None:
    entries.append(rotation_entry(entries, METRO_2, SigningKey(seed(0xA3)), agency="state-police", at=REVOKED))
    _fails_at(entries, 5, match="not in the key registry")


# -- reordered, deleted, edited ---------------------------------------------------------------------
@pytest.mark.parametrize(("i", "j"), [(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)])
def test_reordered_entries_fail_naming_the_index(entries: list[dict[str, Any]], i: int, j: int) -> None:
    entries[i], entries[j] = entries[j], entries[i]
    _fails_at(entries, i)


@pytest.mark.parametrize("i", range(4))
def test_deleted_entry_fails_naming_the_index(entries: list[dict[str, Any]], i: int) -> None:
    del entries[i]
    _fails_at(entries, i)


EDITS: dict[str, Any] = {
    "at": lambda e: e.update(at=format_time(T0 - DAY)),
    "index": lambda e: e.update(index=e["index"] + 1),
    "prev": lambda e: e.update(prev=entry_hash(ENTRIES[0]) if e["prev"] is None else None),
    "type": lambda e: e.update(type={"hub": "agency", "agency": "hub"}.get(e["type"], "agency")),
    "extra-key": lambda e: e.update(note="added"),
    "signature": lambda e: e.update(signature=e["signature"][::-1]),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
@pytest.mark.parametrize("i", range(5))
def test_edited_entry_fails_naming_the_index(entries: list[dict[str, Any]], i: int, edit: str) -> None:
    EDITS[edit](entries[i])
    _fails_at(entries, i)


@pytest.mark.parametrize(
    ("i", "name", "value"),
    [
        (1, "name", "Metro Police Department"),
        (1, "agency", "metro-pd2"),
        (1, "key", COUNTY.verify_key.to_text()),
        (2, "name", "County Sheriff's Office"),
        (3, "new_key", STRANGER.verify_key.to_text()),
        (3, "old_key", STRANGER.verify_key.to_text()),
        (3, "agency", "county-so"),
        (4, "device_id", "dev-8"),
        (4, "after_seq", 400),
        (4, "reason", "returned"),
        (0, "key", HUB2.verify_key.to_text()),
    ],
)
def test_edited_content_fails_naming_the_index(entries: list[dict[str, Any]], i: int, name: str, value: Any) -> None:
    entries[i][name] = value
    _fails_at(entries, i)


def test_edit_re_signed_by_the_key_holder_breaks_the_chain_after_it(entries: list[dict[str, Any]]) -> None:
    entries[1] = _resign({**entries[1], "name": "Metro PD"}, signature=METRO_1)
    _fails_at(entries, 2, match="does not follow")


@pytest.mark.parametrize("entry", [None, "entry", 7, [], {}])
def test_malformed_entry_fails_naming_the_index(entries: list[dict[str, Any]], entry: Any) -> None:
    entries[2] = entry
    _fails_at(entries, 2)


@pytest.mark.parametrize("missing", ["type", "at", "agency", "key", "name", "signature"])
def test_entry_missing_a_part_fails_naming_the_index(entries: list[dict[str, Any]], missing: str) -> None:
    del entries[2][missing]
    _fails_at(entries, 2)


def test_unknown_entry_type_fails(entries: list[dict[str, Any]]) -> None:
    entry = {"type": "amnesty", "index": 5, "prev": entry_hash(entries[-1]), "at": format_time(REVOKED)}
    entries.append(_resign(entry, signature=HUB))
    _fails_at(entries, 5, match="unknown registry entry type")


# -- pinning ------------------------------------------------------------------------------------------
def _rewritten() -> list[dict[str, Any]]:
    """The same story told again by a hub that swapped its own key and the county's."""
    entries: list[dict[str, Any]] = []
    entries.append(hub_entry(entries, HUB2, at=T0))
    entries.append(agency_entry(entries, METRO_1, agency="metro-pd", name="Metro Police", at=T0))
    entries.append(agency_entry(entries, STRANGER, agency="county-so", name="County Sheriff", at=T0 + DAY))
    entries.append(rotation_entry(entries, METRO_1, METRO_2, agency="metro-pd", at=ROTATED))
    return entries


def test_pinned_prefix_accepts_the_extension() -> None:
    for size in range(len(ENTRIES) + 1):
        pinned = KeyRegistry.verify(ENTRIES[:size]).head
        assert pinned.size == size
        assert KeyRegistry.verify(ENTRIES, pinned=pinned).head == RegistryHead(5, entry_hash(ENTRIES[-1]))


def test_pinned_head_rejects_rewritten_history() -> None:
    rewritten = _rewritten()
    KeyRegistry.verify(rewritten)  # valid on its own...
    pinned = KeyRegistry.verify(ENTRIES[:3]).head
    with pytest.raises(VerificationError, match="pinned"):
        KeyRegistry.verify(rewritten, pinned=pinned)  # ...but not what the client pinned


def test_pinned_head_rejects_history_rewritten_by_the_key_holders(entries: list[dict[str, Any]]) -> None:
    pinned = KeyRegistry.verify(entries).head
    again: list[dict[str, Any]] = []
    again.append(hub_entry(again, HUB, at=T0))
    again.append(agency_entry(again, METRO_1, agency="metro-pd", name="Metro Police", at=T0))
    again.append(agency_entry(again, COUNTY, agency="county-so", name="County Sheriff", at=T0 + DAY))
    again.append(rotation_entry(again, METRO_1, METRO_2, agency="metro-pd", at=ROTATED))
    again.append(revocation_entry(again, METRO_2, agency="metro-pd", device_id="dev-9", after_seq=400, at=REVOKED))
    KeyRegistry.verify(again)
    with pytest.raises(VerificationError, match="pinned"):
        KeyRegistry.verify(again, pinned=pinned)


@pytest.mark.parametrize("size", [0, 2, 4])
def test_pinned_head_rejects_a_shorter_registry(size: int) -> None:
    pinned = KeyRegistry.verify(ENTRIES).head
    with pytest.raises(VerificationError, match="rolled back"):
        KeyRegistry.verify(ENTRIES[:size], pinned=pinned)


def test_pinned_head_of_a_different_size_and_hash_fails() -> None:
    with pytest.raises(VerificationError):
        KeyRegistry.verify(ENTRIES, pinned=RegistryHead(3, entry_hash(ENTRIES[3])))


# -- revocations ------------------------------------------------------------------------------------
def test_revocation_is_recorded_with_after_seq() -> None:
    reg = KeyRegistry.verify(ENTRIES)
    assert reg.revocation("dev-9") == Revocation("metro-pd", "dev-9", 41, REVOKED, "laptop stolen")
    assert reg.revocation("dev-7") is None


def test_revocation_signed_by_a_retired_key_fails(entries: list[dict[str, Any]]) -> None:
    entries.append(revocation_entry(entries, METRO_1, agency="metro-pd", device_id="dev-3", after_seq=0, at=REVOKED))
    _fails_at(entries, 5, match="signature")


def test_revocation_signed_by_another_agency_fails(entries: list[dict[str, Any]]) -> None:
    entries.append(revocation_entry(entries, COUNTY, agency="metro-pd", device_id="dev-3", after_seq=0, at=REVOKED))
    _fails_at(entries, 5, match="signature")


def test_device_revoked_twice_fails(entries: list[dict[str, Any]]) -> None:
    entries.append(revocation_entry(entries, METRO_2, agency="metro-pd", device_id="dev-9", after_seq=3, at=REVOKED))
    _fails_at(entries, 5, match="revoked twice")


@pytest.mark.parametrize("after_seq", [-1, "41", 4.5, None])
def test_revocation_needs_a_whole_after_seq(entries: list[dict[str, Any]], after_seq: Any) -> None:
    entries.append(
        revocation_entry(entries, METRO_2, agency="metro-pd", device_id="dev-3", after_seq=after_seq, at=REVOKED)
    )
    _fails_at(entries, 5)


# -- agencies and the hub ------------------------------------------------------------------------------
def test_second_registration_of_an_agency_fails(entries: list[dict[str, Any]]) -> None:
    entries.append(agency_entry(entries, STRANGER, agency="metro-pd", name="Metro Police", at=REVOKED))
    _fails_at(entries, 5, match="registered twice")


def test_agency_entry_needs_proof_of_possession(entries: list[dict[str, Any]]) -> None:
    entry = agency_entry(entries, STRANGER, agency="state-police", name="State Police", at=REVOKED)
    entry["key"] = SigningKey(seed(0xEF)).verify_key.to_text()
    entries.append(entry)
    _fails_at(entries, 5, match="signature")


def test_hub_key_rotation(entries: list[dict[str, Any]]) -> None:
    later = REVOKED + DAY
    entries.append(hub_entry(entries, HUB2, at=later, previous=HUB))
    reg = KeyRegistry.verify(entries)
    assert reg.hub_key == HUB2.verify_key
    assert reg.hub_key_at(later - SECOND) == HUB.verify_key
    assert reg.hub_key_at(later) == HUB2.verify_key
    with pytest.raises(VerificationError):
        reg.hub_key_at(T0 - SECOND)


def test_hub_key_rotation_needs_the_previous_hub_key(entries: list[dict[str, Any]]) -> None:
    without = [*entries, hub_entry(entries, HUB2, at=REVOKED)]
    _fails_at(without, 5)
    wrong = [*entries, hub_entry(entries, HUB2, at=REVOKED, previous=STRANGER)]
    _fails_at(wrong, 5, match="previous_signature")
