"""Verifying a change's chain: change -> device certificate -> agency key -> registry."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from crypto import KeyRegistry, SigningKey, change_hash, sign_change
from sync import HUB_DEVICE, ProvenanceError, SyncError, Verifier, make_change

from .helpers import HOUR_MS, START, T0_MS, Agency, Device, hlc_text, ms_of, new_id

UNIT = {"kind": "vehicle", "name": "Unit 12"}


@pytest.fixture
def spd() -> Agency:
    return Agency.create("SPD")


@pytest.fixture
def fpd(spd: Agency) -> Agency:
    return Agency.create("FPD", network=spd.network)


def refused(verifier: Verifier, wire: Any, cert: Any) -> ProvenanceError:
    with pytest.raises(ProvenanceError) as info:
        verifier.verify(wire, cert)
    assert isinstance(info.value, SyncError)
    return info.value


def unit_wire(device: Device, **overrides: Any) -> dict[str, Any]:
    return device.wire("resources", new_id(), UNIT, seen={}, **overrides)


# -- the happy path ------------------------------------------------------
def test_a_good_change_verifies_into_the_engine_value(spd: Agency) -> None:
    alice = spd.device("alice")
    wire = unit_wire(alice)
    change = spd.network.verifier.verify(wire, alice.cert)
    assert (change.id, change.record_id, change.agency, change.device) == (
        wire["id"],
        wire["record_id"],
        "SPD",
        alice.id,
    )
    assert (change.seq, change.prev, change.hlc, change.deleted) == (1, None, wire["hlc"], False)
    assert dict(change.values) == UNIT
    assert change.withheld == {}
    assert change.hash == change_hash(wire)
    assert change.wire is wire


@pytest.mark.parametrize(
    "tamper",
    [
        lambda w: w["fields"]["name"].__setitem__("value", "Unit 13"),
        lambda w: w["fields"]["name"].__setitem__("salt", "B" * 22),
        lambda w: w.__setitem__("record_id", new_id()),
        lambda w: w.__setitem__("hlc", f"{int(w['hlc'][:16]) + 1:016d}{w['hlc'][16:]}"),
        lambda w: w.__setitem__("seq", 2),
        lambda w: w.__setitem__("deleted", True),
        lambda w: w["base"].__setitem__("name", hlc_text(T0_MS)),
    ],
    ids=["value", "salt", "record_id", "hlc", "seq", "deleted", "base"],
)
def test_any_edit_after_signing_is_refused(spd: Agency, tamper: Any) -> None:
    alice = spd.device("alice")
    wire = copy.deepcopy(unit_wire(alice))
    tamper(wire)
    error = refused(spd.network.verifier, wire, alice.cert)
    assert error.change_id == wire["id"]
    assert "signature" in error.reason


# -- whose certificate ---------------------------------------------------
def test_a_change_presented_with_a_certificate_of_another_agency_is_refused(spd: Agency, fpd: Agency) -> None:
    alice, frank = spd.device("alice"), fpd.device("frank")
    wire = unit_wire(frank)
    error = refused(spd.network.verifier, wire, alice.cert)
    assert "another device" in error.reason


def test_a_device_of_one_agency_cannot_sign_as_a_device_of_another(spd: Agency, fpd: Agency) -> None:
    alice, frank = spd.device("alice"), fpd.device("frank")
    forged = make_change(
        frank.key,  # FPD's laptop signs...
        collection="resources",
        record_id=new_id(),
        agency="SPD",
        device=alice.id,  # ...in the name of SPD's laptop
        seq=1,
        prev=None,
        hlc=hlc_text(T0_MS, 0, alice.id),
        values=UNIT,
        seen={},
    )
    error = refused(spd.network.verifier, forged, alice.cert)
    assert "signature does not match" in error.reason


def test_a_certificate_issued_by_another_agencys_key_is_refused(spd: Agency, fpd: Agency) -> None:
    # FPD's key signs a certificate that claims the laptop belongs to SPD
    mallory = spd.device("mallory", issuer=fpd.key)
    error = refused(spd.network.verifier, unit_wire(mallory), mallory.cert)
    assert "not signed by any key of agency 'SPD'" in error.reason


def test_a_certificate_signed_by_a_key_outside_the_registry_is_refused(spd: Agency) -> None:
    rogue = spd.device("rogue", issuer=SigningKey.generate())
    refused(spd.network.verifier, unit_wire(rogue), rogue.cert)


def test_a_certificate_of_another_device_is_refused(spd: Agency) -> None:
    alice, bob = spd.device("alice"), spd.device("bob")
    error = refused(spd.network.verifier, unit_wire(alice), bob.cert)
    assert "certificate is for another device" in error.reason


def test_a_change_without_a_certificate_is_refused(spd: Agency) -> None:
    alice = spd.device("alice")
    error = refused(spd.network.verifier, unit_wire(alice), None)
    assert "no device certificate" in error.reason


@pytest.mark.parametrize("wire", [None, [], "change", {"id": "x"}, {"id": "x", "hlc": 5}])
def test_a_malformed_change_is_refused(spd: Agency, wire: Any) -> None:
    alice = spd.device("alice")
    error = refused(spd.network.verifier, wire, alice.cert)
    assert "malformed" in error.reason
    assert error.change_id == (wire.get("id") if isinstance(wire, dict) else None)


# -- revocation ----------------------------------------------------------
def test_revocation_cuts_the_feed_at_a_seq(spd: Agency) -> None:
    alice, bob = spd.device("alice"), spd.device("bob")
    rid = alice.create("resources", UNIT).record_id
    kept = [alice.made[0], alice.edit(rid, {"status": "deployed"})]
    after = [alice.wire("resources", rid, {"status": "maintenance"}), alice.wire("resources", rid, {"notes": "x"})]
    spd.revoke(alice, after_seq=2, reason="laptop reported stolen")
    verifier = spd.network.verifier
    for change in kept:
        assert verifier.verify(dict(change.wire), alice.cert).id == change.id
    for wire in after:
        error = refused(verifier, wire, alice.cert)
        assert error.change_id == wire["id"]
        assert "revoked after seq 2" in error.reason
        assert "laptop reported stolen" in error.reason
        assert "revoked" in str(error)
    assert verifier.verify(unit_wire(bob), bob.cert).device == bob.id, "other laptops are unaffected"


def test_revocation_ignores_the_time_the_device_claims(spd: Agency) -> None:
    alice = spd.device("alice")
    unit_wire(alice)
    spd.network.wall.advance(6 * HOUR_MS)
    spd.revoke(alice, after_seq=1)
    backdated = unit_wire(alice, hlc=hlc_text(T0_MS - HOUR_MS, 0, alice.id))  # "made before the revocation"
    assert backdated["seq"] == 2
    assert "revoked after seq 1" in refused(spd.network.verifier, backdated, alice.cert).reason


def test_revocation_at_seq_zero_refuses_everything(spd: Agency) -> None:
    alice = spd.device("alice")
    spd.revoke(alice, after_seq=0)
    refused(spd.network.verifier, unit_wire(alice), alice.cert)


def test_a_revoked_feed_cannot_be_extended_by_spelling_seq_as_a_float(spd: Agency) -> None:
    # RFC 8785 encodes 3.0 and 3 alike, so the signature alone cannot tell them apart;
    # the Verifier's revocation check only looks at int seqs, so this must be refused
    # on type (crypto's exact header types), not let through as "not an int"
    alice = spd.device("alice")
    rid = alice.create("resources", UNIT).record_id
    late = alice.wire("resources", rid, {"status": "deployed"})
    spd.revoke(alice, after_seq=1)
    verifier = spd.network.verifier
    refused(verifier, late, alice.cert)
    respelled = {**late, "seq": float(late["seq"])}
    refused(verifier, respelled, alice.cert)


def test_an_agency_cannot_revoke_another_agencys_laptop(spd: Agency, fpd: Agency) -> None:
    alice = spd.device("alice")
    unit_wire(alice)
    later = unit_wire(alice)
    fpd.revoke(alice, after_seq=1)  # FPD's key signs a revocation naming SPD's laptop
    assert spd.network.verifier.verify(later, alice.cert).seq == 2
    spd.revoke(alice, after_seq=1)
    assert "revoked after seq 1" in refused(spd.network.verifier, later, alice.cert).reason


def test_a_verifier_built_after_a_revocation_sees_it(spd: Agency) -> None:
    alice = spd.device("alice")
    wire = unit_wire(alice)
    unit_wire(alice)
    second = alice.wire("resources", new_id(), UNIT, seen={})
    before = spd.network.verifier
    before.verify(wire, alice.cert)
    spd.revoke(alice, after_seq=1)
    after = spd.network.verifier
    assert after is not before
    refused(after, second, alice.cert)


# -- when the change was made -------------------------------------------
@pytest.fixture
def short_lived(spd: Agency) -> Device:
    """A laptop certified only for the second day (START + 1 d .. START + 2 d)."""
    return spd.device("temp", not_before=START + timedelta(days=1), not_after=START + timedelta(days=2))


def at(moment_ms: int, device: Device) -> str:
    return hlc_text(moment_ms, 0, device.id)


def test_a_change_made_inside_the_certificate_window_verifies(spd: Agency, short_lived: Device) -> None:
    inside = ms_of(START + timedelta(days=1, hours=3))
    wire = unit_wire(short_lived, hlc=at(inside, short_lived))
    assert spd.network.verifier.verify(wire, short_lived.cert).hlc == wire["hlc"]


@pytest.mark.parametrize(
    ("offset", "words"),
    [
        (timedelta(hours=8), "not valid before"),
        (timedelta(days=1, seconds=-1), "not valid before"),
        (timedelta(days=2, seconds=1), "expired"),
        (timedelta(days=40), "expired"),
    ],
)
def test_a_change_made_outside_the_certificate_window_is_refused(
    spd: Agency, short_lived: Device, offset: timedelta, words: str
) -> None:
    wire = unit_wire(short_lived, hlc=at(ms_of(START + offset), short_lived))
    error = refused(Verifier(spd.network.registry), wire, short_lived.cert)
    assert words in error.reason
    assert "certificate" in error.reason


# -- hub-signed changes --------------------------------------------------
def test_a_hub_resolution_verifies_with_the_registry_hub_key(spd: Agency) -> None:
    wire = spd.network.hub_wire(collection="resources", record_id=new_id(), agency="SPD", values={"status": "deployed"})
    change = spd.network.verifier.verify(wire, None)
    assert change.device == HUB_DEVICE
    assert change.values == {"status": "deployed"}


@pytest.mark.parametrize("signer", ["agency", "device", "stranger"])
def test_a_hub_resolution_signed_by_any_other_key_is_refused(spd: Agency, signer: str) -> None:
    alice = spd.device("alice")
    key = {"agency": spd.key, "device": alice.key, "stranger": SigningKey.generate()}[signer]
    wire = spd.network.hub_wire(
        collection="resources", record_id=new_id(), agency="SPD", values={"status": "deployed"}, key=key
    )
    refused(spd.network.verifier, wire, alice.cert)  # a certificate does not help either
    refused(spd.network.verifier, wire, None)


def test_a_hub_resolution_dated_before_the_hub_key_existed_is_refused(spd: Agency) -> None:
    wire = spd.network.hub_wire(
        collection="resources",
        record_id=new_id(),
        agency="SPD",
        values={"status": "deployed"},
        hlc=hlc_text(ms_of(START) - 1000, 0, HUB_DEVICE),
    )
    assert "no hub key" in refused(spd.network.verifier, wire, None).reason


# -- the certificate cache ----------------------------------------------
def test_many_changes_of_one_laptop_cost_one_certificate_check(spd: Agency, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = spd.device("alice")
    wires = [unit_wire(alice) for _ in range(100)]
    calls: list[str] = []
    real = KeyRegistry.verify_certificate

    def counting(self: KeyRegistry, cert: Any, *, at: Any = None) -> Any:
        calls.append(cert["device_id"])
        return real(self, cert, at=at)

    monkeypatch.setattr(KeyRegistry, "verify_certificate", counting)
    verifier = Verifier(spd.network.registry)
    changes = [verifier.verify(w, alice.cert) for w in wires]
    assert [c.seq for c in changes] == list(range(1, 101))
    assert calls == [alice.id]


def test_the_cache_does_not_let_an_invalid_change_through(spd: Agency, short_lived: Device) -> None:
    bob = spd.device("bob")
    verifier = Verifier(spd.network.registry)
    inside = unit_wire(short_lived, hlc=at(ms_of(START + timedelta(days=1, hours=1)), short_lived))
    verifier.verify(inside, short_lived.cert)  # now cached
    too_late = unit_wire(short_lived, hlc=at(ms_of(START + timedelta(days=3)), short_lived))
    too_early = unit_wire(short_lived, hlc=at(ms_of(START + timedelta(hours=1)), short_lived))
    assert "not valid when the change was made" in refused(verifier, too_late, short_lived.cert).reason
    assert "not valid when the change was made" in refused(verifier, too_early, short_lived.cert).reason
    bobs = unit_wire(bob, hlc=at(ms_of(START + timedelta(days=1, hours=2)), bob))
    assert "another device" in refused(verifier, bobs, short_lived.cert).reason
    tampered = copy.deepcopy(unit_wire(short_lived, hlc=at(ms_of(START + timedelta(days=1, hours=2)), short_lived)))
    tampered["fields"]["name"]["value"] = "Unit 99"
    assert "signature" in refused(verifier, tampered, short_lived.cert).reason
    assert verifier.verify(unit_wire(bob), bob.cert).device == bob.id


def test_a_refused_certificate_is_not_cached(spd: Agency, short_lived: Device) -> None:
    verifier = Verifier(spd.network.registry)
    early = unit_wire(short_lived, hlc=at(ms_of(START + timedelta(hours=1)), short_lived))
    refused(verifier, early, short_lived.cert)
    inside = unit_wire(short_lived, hlc=at(ms_of(START + timedelta(days=1, hours=1)), short_lived))
    assert verifier.verify(inside, short_lived.cert).id == inside["id"]
    refused(verifier, early, short_lived.cert)


@pytest.mark.parametrize(
    ("name", "value"),
    [("officer", "someone else"), ("not_after", "2099-01-01T00:00:00Z"), ("agency", "FPD")],
)
def test_an_altered_certificate_is_refused_before_any_caching(spd: Agency, name: str, value: str) -> None:
    alice = spd.device("alice")
    altered = {**alice.cert, name: value}
    refused(Verifier(spd.network.registry), unit_wire(alice), altered)


@pytest.mark.parametrize(
    ("name", "value"),
    [("officer", "someone else"), ("not_after", "2099-01-01T00:00:00Z"), ("agency", "FPD")],
)
def test_an_altered_certificate_is_refused_after_the_genuine_one_was_cached(spd: Agency, name: str, value: str) -> None:
    alice = spd.device("alice")
    verifier = Verifier(spd.network.registry)
    verifier.verify(unit_wire(alice), alice.cert)
    altered = {**alice.cert, name: value}
    refused(verifier, unit_wire(alice), altered)


def test_a_hub_change_without_its_resolution_is_refused(spd: Agency) -> None:
    wire = spd.network.hub_wire(collection="resources", record_id=new_id(), agency="SPD", values={"status": "deployed"})
    unsigned = {k: v for k, v in wire.items() if k not in ("resolution", "signature")}
    stripped = sign_change(unsigned, spd.network.hub_key)  # validly signed by the hub key, but names no one
    assert "must name the resolution" in refused(spd.network.verifier, stripped, None).reason


def test_the_staff_member_named_in_a_resolution_is_signed(spd: Agency) -> None:
    wire = spd.network.hub_wire(collection="resources", record_id=new_id(), agency="SPD", values={"status": "deployed"})
    assert spd.network.verifier.verify(wire, None).wire["resolution"]["by"] == "Lt. Staff"
    forged = {**wire, "resolution": {**wire["resolution"], "by": "Cmdr. Someone Else"}}
    refused(spd.network.verifier, forged, None)
    for bad in ({"by": "x"}, {**wire["resolution"], "extra": "x"}, {**wire["resolution"], "by": ""}, "Lt. Staff"):
        refused(spd.network.verifier, {**wire, "resolution": bad}, None)


def test_a_device_cannot_sign_a_resolution(spd: Agency) -> None:
    alice = spd.device("alice")
    wire = unit_wire(alice)
    claimed = sign_change({**wire, "resolution": {"kind": "conflict", "resolves": "x", "by": "Lt. Staff"}}, alice.key)
    assert "only the hub" in refused(spd.network.verifier, claimed, alice.cert).reason
