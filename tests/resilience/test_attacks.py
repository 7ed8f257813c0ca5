"""The adversary's view of the hub: each attack over real HTTP on loopback, on SQLite and PostgreSQL.

tests/backend/ checks each rule of the hub at unit level. Here every test is one
attack, made the way a thief holding one laptop's key, a partner agency's
officer or someone on the network would make it, request by request, and each
asserts four things:

(a) the exact refusal (status and reason);
(b) nothing written: records, the change log and its head, feeds, devices and
    tokens as before (:func:`tests.resilience.adversary.witness`); where the
    attacker's own authentic change is refused by an agreement, its own feed
    moves past the refused link by design (docs/protocol.md) and the test says so;
(c) the audit entry: actor (device or anonymous), agency, object and reason;
(d) the audit chain still verifies afterwards.

The hub runs in-process behind werkzeug's threaded server (the ``live`` fixture
of tests/backend/conftest.py). This file holds the attacks on changes (forged,
re-signed, replayed under another record, writes no agreement grants); beside
it: test_attacks_requests.py (replayed, mis-signed, oversize requests, a
revoked laptop), test_attacks_reading.py (what no agreement shares),
test_attacks_enrollment.py (tokens) and test_attacks_audit.py (a tampered
audit log, with the real ``fieldsync-hub audit verify``). The checks they
share are in tests/resilience/adversary.py.
"""

# ruff: noqa: F811 - the hub fixtures of tests/backend/conftest.py are imported, then named as arguments
from __future__ import annotations

import uuid

from crypto import sign_change
from tests.backend.conftest import app, database_url, hub, live  # noqa: F401 - fixtures
from tests.backend.helpers import RESOURCE, Hub, raw, sign_as

from .adversary import (
    PUSH,
    SECRET_NOTE,
    SECRET_PHONE,
    accepted,
    assert_chain_intact,
    new_audit,
    only_feed_moved,
    partners,
    push,
    refused_changes,
    unchanged_but_audit,
    witness,
)

# -- 1. forged changes -----------------------------------------------------------------------


def test_a_forged_change_is_refused_and_audited(hub: Hub, live: str) -> None:
    lee, _, _ = partners(hub, live)
    car = lee.create()
    assert accepted(push(live, lee, car))
    before = witness(hub.app)
    bad_signature = sign_as(lee, values={"status": "deployed"}, record_id=car["record_id"])
    signature = bad_signature["signature"]
    bad_signature["signature"] = ("A" if signature[0] != "A" else "B") + signature[1:]
    changed_value = sign_as(lee, values={"status": "available"}, record_id=car["record_id"])
    changed_value["fields"]["status"]["value"] = "out_of_service"  # after signing: the salted digest no longer matches
    results = push(live, lee, bad_signature, changed_value)
    assert [(r["id"], r["status"]) for r in results] == [
        (bad_signature["id"], "rejected"),
        (changed_value["id"], "rejected"),
    ]
    assert all(r["reason"] == "signature does not match the signed content" for r in results), results
    unchanged_but_audit(before, witness(hub.app))
    entries = refused_changes(hub.app, before, lee, [bad_signature, changed_value])
    assert all(e.details["reason"] == "signature does not match the signed content" for e in entries)
    assert_chain_intact(hub.app)
    # the refusals did not move lee's feed: the honest next change is the next link
    assert accepted(push(live, lee, lee.change("resources", {"status": "deployed"}, record_id=car["record_id"])))


def test_a_laptop_cannot_pass_its_change_off_as_a_hub_resolution(hub: Hub, live: str) -> None:
    """Staff decisions are hub-signed changes naming who chose: a laptop may not forge one, under
    its own device id or the hub's."""
    lee, _, _ = partners(hub, live)
    car = lee.create()
    assert accepted(push(live, lee, car))
    before = witness(hub.app)
    claim = {"kind": "conflict", "resolves": f"{car['record_id']}/status/x/y", "by": "Lt. Dana Cruz"}
    as_resolution = sign_change(
        {**sign_as(lee, values={"status": "deployed"}, record_id=car["record_id"]), "resolution": claim}, lee.key
    )
    as_hub = sign_change(
        {**sign_as(lee, values={"status": "deployed"}, record_id=car["record_id"]), "device": "hub"}, lee.key
    )
    results = push(live, lee, as_resolution, as_hub)
    assert [(r["status"], r["reason"]) for r in results] == [
        ("rejected", "only the hub signs resolutions"),
        ("rejected", "a device may push only its own changes"),
    ]
    unchanged_but_audit(before, witness(hub.app))
    entries = refused_changes(hub.app, before, lee, [as_resolution, as_hub])
    assert [e.details["reason"] for e in entries] == [r["reason"] for r in results]
    assert_chain_intact(hub.app)


# -- 2. changes re-signed by another agency's device -----------------------------------------


def test_a_change_re_signed_by_another_agencys_device_is_refused(hub: Hub, live: str) -> None:
    lee, kim, _ = partners(hub, live)
    car = lee.create()
    assert accepted(push(live, lee, car))
    kim.pull()
    rid = car["record_id"]
    before = witness(hub.app)
    # SPD's edit, re-signed with the CSO laptop's key: as SPD's device (it names lee) ...
    lees_edit = sign_as(lee, values={"status": "out_of_service"}, record_id=rid)
    as_lee = sign_change(lees_edit, kim.key)
    # ... and as CSO's own device, keeping SPD's agency and record (a write the read-only agreement does not grant)
    as_kim = kim.change("resources", {"status": "out_of_service"}, record_id=rid, agency="SPD")
    # ... and claiming CSO's agency for SPD's record (a CSO write to "its own" record)
    claimed = kim.change("resources", {"status": "out_of_service", "name": "Ours"}, record_id=rid, agency="CSO")
    results = push(live, kim, as_lee, as_kim, claimed)
    assert [r["status"] for r in results] == ["rejected"] * 3
    assert results[0]["reason"] == "a device may push only its own changes"
    assert results[1]["reason"] == "the agreement from SPD does not let CSO write status"
    assert results[1]["details"] == {"status": ["Not writable under the agreement."]}
    assert results[2]["reason"] == "record belongs to agency SPD, change names CSO"
    # pushed from SPD's own laptop, the re-signed change fails SPD's certificate
    (from_lee,) = push(live, lee, as_lee)
    assert (from_lee["status"], from_lee["reason"]) == ("rejected", "signature does not match the signed content")
    after = witness(hub.app)
    only_feed_moved(before, after, {kim.device_id: 2})  # kim's two authentic (own-feed) changes
    entries = new_audit(hub.app, before)
    assert [(e.action, e.actor, e.agency, e.object) for e in entries] == [
        ("change.rejected", f"device:{kim.device_id}", "CSO", w["id"]) for w in (as_lee, as_kim, claimed)
    ] + [("change.rejected", f"device:{lee.device_id}", "SPD", as_lee["id"])]
    assert [e.details["reason"] for e in entries] == [r["reason"] for r in results] + [from_lee["reason"]]
    assert [e.details["owner"] for e in entries] == ["SPD", "SPD", "CSO", "SPD"]
    assert entries[1].details["fields"] == {"status": ["Not writable under the agreement."]}
    assert all(e.details["record"] == rid for e in entries)
    assert_chain_intact(hub.app)


def test_a_change_claiming_another_agency_in_its_header_is_refused(hub: Hub, live: str) -> None:
    """A CSO laptop creating a record in SPD's name, and sending SPD's code in a request header."""
    _, kim, _ = partners(hub, live, write=["status"])
    before = witness(hub.app)
    created = kim.create(agency="SPD")
    response = raw(live, "POST", PUSH, {"changes": [created]}, officer=kim, headers={"X-Fieldsync-Agency": "SPD"})
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert (result["status"], result["reason"]) == ("rejected", "agency CSO cannot create resources for agency SPD")
    only_feed_moved(before, witness(hub.app), {kim.device_id: 1})
    (entry,) = refused_changes(hub.app, before, kim, [created])
    assert entry.details["reason"] == result["reason"] and entry.details["owner"] == "SPD"
    assert_chain_intact(hub.app)


# -- 4. a change replayed under another record id --------------------------------------------


def test_a_change_replayed_under_another_record_id_is_refused(hub: Hub, live: str) -> None:
    lee, kim, _ = partners(hub, live, write=["status"])
    car = lee.create()
    truck = lee.create(values={**RESOURCE, "name": "Truck 3"})
    deploy = lee.change("resources", {"status": "deployed"}, record_id=car["record_id"])
    assert accepted(push(live, lee, car, truck, deploy))
    before = witness(hub.app)
    moved = {**deploy, "record_id": truck["record_id"]}  # the accepted change, aimed at the other record
    renamed = {**moved, "id": str(uuid.uuid4()), "seq": lee.seq + 1, "prev": lee.prev}  # ... as a new next link
    results = push(live, lee, moved, renamed)
    assert [(r["status"], r["reason"]) for r in results] == [
        ("rejected", "signature does not match the signed content")
    ] * 2
    # a partner replaying SPD's signed change from its own laptop
    (by_kim,) = push(live, kim, moved)
    assert (by_kim["status"], by_kim["reason"]) == ("rejected", "a device may push only its own changes")
    unchanged_but_audit(before, witness(hub.app))
    entries = new_audit(hub.app, before)
    assert [(e.action, e.actor, e.object, e.details["record"]) for e in entries] == [
        ("change.rejected", f"device:{lee.device_id}", moved["id"], truck["record_id"]),
        ("change.rejected", f"device:{lee.device_id}", renamed["id"], truck["record_id"]),
        ("change.rejected", f"device:{kim.device_id}", moved["id"], truck["record_id"]),
    ]
    assert [e.details["reason"] for e in entries] == [r["reason"] for r in results] + [by_kim["reason"]]
    # the accepted change sent again as it was is only a duplicate: nothing new, nothing audited
    (dup,) = push(live, lee, deploy)
    assert dup["status"] == "duplicate"
    unchanged_but_audit(before, witness(hub.app))
    assert len(new_audit(hub.app, before)) == 3
    assert_chain_intact(hub.app)
    held = witness(hub.app).records
    assert (held[truck["record_id"]][2]["status"], held[car["record_id"]][2]["status"]) == ("available", "deployed")


# -- 6. writes no agreement grants ----------------------------------------------------------------


def test_writes_to_another_agencys_record_that_no_agreement_grants_are_refused(hub: Hub, live: str) -> None:
    lee, kim, ray = partners(hub, live, withhold=["notes"])  # read-only, notes withheld
    car = lee.create(values={**RESOURCE, "notes": SECRET_NOTE})
    contact = lee.create("contacts", {"name": "Lt. Diaz", "role": "liaison", "phone": SECRET_PHONE})
    assert accepted(push(live, lee, car, contact))
    kim.pull()
    rid = car["record_id"]
    before = witness(hub.app)
    status = kim.change("resources", {"status": "deployed"}, record_id=rid)  # shared read-only
    notes = kim.change("resources", {"notes": "moved"}, record_id=rid)  # withheld from CSO
    phone = kim.change("contacts", {"phone": "555-0000"}, record_id=contact["record_id"], agency="SPD")  # not shared
    stranger = ray.change("resources", {"status": "out_of_service"}, record_id=rid, agency="SPD")  # no agreement
    results = push(live, kim, status, notes, phone) + push(live, ray, stranger)
    assert [(r["status"], r["reason"]) for r in results] == [
        ("rejected", "the agreement from SPD does not let CSO write status"),
        ("rejected", "the agreement from SPD does not let CSO write notes"),
        ("rejected", "no agreement lets CSO write SPD's contacts"),
        ("rejected", "no agreement lets FBI write SPD's resources"),
    ]
    only_feed_moved(before, witness(hub.app), {kim.device_id: 3, ray.device_id: 1})
    entries = new_audit(hub.app, before)
    assert [(e.action, e.actor, e.agency, e.object, e.details["record"]) for e in entries] == [
        ("change.rejected", f"device:{kim.device_id}", "CSO", status["id"], rid),
        ("change.rejected", f"device:{kim.device_id}", "CSO", notes["id"], rid),
        ("change.rejected", f"device:{kim.device_id}", "CSO", phone["id"], contact["record_id"]),
        ("change.rejected", f"device:{ray.device_id}", "FBI", stranger["id"], rid),
    ]
    assert [e.details["reason"] for e in entries] == [r["reason"] for r in results]
    assert [e.details.get("fields") for e in entries[:2]] == [
        {"status": ["Not writable under the agreement."]},
        {"notes": ["Not writable under the agreement."]},
    ]
    assert_chain_intact(hub.app)
