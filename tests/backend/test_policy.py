"""Who may write what (backend/policy.py, sync/reservations.py), through POST /api/v1/sync/push on both
databases, and the policy's own decisions over data passed in."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from backend.agreements import Share
from backend.models import ConflictRow, DoubleBookingRow, Record
from backend.policy import Refused, check_record_write
from sync import Change

from .helpers import RESOURCE, Hub, Officer, booking_of, log_ids, record, rejections, rows, statuses, two_agencies

# -- a record's write rule, decided over data passed in ------------------------------------


def change(**kw: Any) -> Change:
    """A change of SPD's resource (only what the policy reads is meaningful)."""
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "collection": "resources",
        "record_id": str(uuid.uuid4()),
        "agency": "SPD",
        "device": "laptop",
        "seq": 1,
        "prev": None,
        "hlc": "0000000000000001-000000-laptop",
        "base": {},
        "values": {"status": "deployed"},
        "withheld": {},
        "deleted": False,
        "hash": "h",
        "wire": {},
    }
    return Change(**{**fields, **kw})


GRANT = Share(frozenset({"resources"}), frozenset({"notes"}), frozenset({"status"}))


def refused(writer: str, wrote: Change, *, exists: bool = True, granted: Share | None = GRANT) -> Refused:
    with pytest.raises(Refused) as caught:
        check_record_write(writer, wrote, exists=exists, share=lambda owner, reader: granted)
    return caught.value


def test_an_agency_writes_its_own_records_without_asking_for_an_agreement() -> None:
    def nobody(owner: str, writer: str) -> Share | None:
        raise AssertionError("an agreement was looked up for an agency's own record")

    for wrote in (change(), change(deleted=True, values={}), change(values={"name": "Unit 9"})):
        check_record_write("SPD", wrote, exists=False, share=nobody)


def test_a_partner_writes_only_granted_fields_of_an_existing_record_of_a_shared_collection() -> None:
    asked: list[tuple[str, str]] = []
    check_record_write("CSO", change(), exists=True, share=lambda owner, writer: asked.append((owner, writer)) or GRANT)
    assert asked == [("SPD", "CSO")]
    assert refused("CSO", change(deleted=True, values={})).reason == "only SPD may delete its resources"
    assert refused("CSO", change(), exists=False).reason == "agency CSO cannot create resources for agency SPD"
    assert refused("CSO", change(), granted=None).reason == "no agreement lets CSO write SPD's resources"
    assert refused("CSO", change(collection="contacts")).reason == "no agreement lets CSO write SPD's contacts"
    denied = refused("CSO", change(values={"status": "deployed", "name": "Ours"}, withheld={"notes": "digest"}))
    assert (denied.reason, denied.details) == (
        "the agreement from SPD does not let CSO write name, notes",
        {"name": ["Not writable under the agreement."], "notes": ["Not writable under the agreement."]},
    )


# -- agreements ----------------------------------------------------------------------


def test_another_agency_writes_only_the_granted_fields_of_a_shared_record(hub: Hub, live: str) -> None:
    lee, kim = two_agencies(hub, live, write=["status"])
    hub.agency("FBI")
    ray = Officer(live, hub.token("FBI", "Agent Ray"))
    wire = lee.create()
    contact = lee.create("contacts", {"name": "Lt. Diaz", "role": "liaison"})
    assert statuses(lee.push(wire, contact)) == ["accepted", "accepted"]
    kim.pull()
    rid = wire["record_id"]
    ok = kim.change("resources", {"status": "deployed"}, record_id=rid)
    rename = kim.change("resources", {"name": "Ours now", "status": "maintenance"}, record_id=rid)
    delete = kim.change("resources", {}, record_id=rid, deleted=True)
    create = kim.create(agency="SPD")
    contact_edit = kim.change("contacts", {"name": "Someone"}, record_id=contact["record_id"], agency="SPD")
    results = kim.push(ok, rename, delete, create, contact_edit)
    assert statuses(results) == ["accepted", "rejected", "rejected", "rejected", "rejected"]
    assert set(results[1]["details"]) == {"name"} and "name" in results[1]["reason"]
    assert "delete" in results[2]["reason"]
    assert "create" in results[3]["reason"]
    assert "agreement" in results[4]["reason"]
    # an agency with no agreement cannot write even the field CSO may
    (stranger,) = ray.push(ray.change("resources", {"status": "out_of_service"}, record_id=rid, agency="SPD"))
    assert stranger["status"] == "rejected" and "agreement" in stranger["reason"]
    row = record(hub, rid)
    assert row.values == {**RESOURCE, "status": "deployed"} and not row.deleted and row.agency == "SPD"
    assert [r.record_id for r in rows(hub.app, Record)].count(create["record_id"]) == 0
    assert log_ids(hub) == [wire["id"], contact["id"], ok["id"]]
    audited = rejections(hub)
    assert set(audited) == {rename["id"], delete["id"], create["id"], contact_edit["id"], stranger["id"]}
    assert set(audited[rename["id"]]["fields"]) == {"name"}


# -- reservations ----------------------------------------------------------------------


def test_reservation_rules(hub: Hub, live: str) -> None:
    lee, kim = two_agencies(hub, live)
    hub.agreement("CSO", "SPD", ["reservations"])  # so SPD sees what it is asked to approve
    car = lee.create()
    assert statuses(lee.push(car)) == ["accepted"]
    rid = car["record_id"]
    # SPD books its own car: approved at once
    own = lee.create("reservations", booking_of(rid, "2030-01-01T08:00:00Z", "2030-01-01T10:00:00Z", "approved"))
    assert statuses(lee.push(own)) == ["accepted"]
    # CSO cannot approve its own booking of SPD's car; it may request it
    kim.pull()
    grab = kim.create("reservations", booking_of(rid, "2030-01-02T08:00:00Z", "2030-01-02T10:00:00Z", "approved"))
    ask = kim.create("reservations", booking_of(rid, "2030-01-03T08:00:00Z", "2030-01-03T10:00:00Z", "requested"))
    nowhere = kim.create("reservations", booking_of(str(uuid.uuid4()), "2030-01-03T08:00:00Z", "2030-01-03T10:00:00Z",
                                                 "requested"))  # fmt: skip
    results = kim.push(grab, ask, nowhere)
    assert statuses(results) == ["rejected", "accepted", "rejected"]
    assert set(results[0]["details"]) == {"state"} and "SPD" in results[0]["reason"]
    assert set(results[2]["details"]) == {"resource_id"}
    # SPD, owner of the car, sets the state of CSO's reservation, and nothing else
    lee.pull()
    reservation = ask["record_id"]
    approve = lee.change("reservations", {"state": "approved"}, record_id=reservation)
    assert approve["agency"] == "CSO"
    purpose = lee.change("reservations", {"purpose": "ours"}, record_id=reservation)
    cancel = lee.change("reservations", {"state": "cancelled"}, record_id=reservation)
    remove = lee.change("reservations", {}, record_id=reservation, deleted=True)
    results = lee.push(approve, purpose, cancel, remove)
    assert statuses(results) == ["accepted", "rejected", "rejected", "rejected"]
    assert set(results[1]["details"]) == {"purpose"}
    assert set(results[2]["details"]) == {"state"}
    row = record(hub, reservation)
    assert (row.agency, row.values["state"], row.values["purpose"], row.deleted) == (
        "CSO",
        "approved",
        "exercise",
        False,
    )
    # CSO, which asked, may cancel its reservation
    kim.pull()
    assert statuses(kim.push(kim.change("reservations", {"state": "cancelled"}, record_id=reservation))) == ["accepted"]
    assert record(hub, reservation).values["state"] == "cancelled"
    audited = rejections(hub)
    assert {grab["id"], nowhere["id"], purpose["id"], cancel["id"], remove["id"]} <= set(audited)
    assert rows(hub.app, DoubleBookingRow) == [] and rows(hub.app, ConflictRow) == []
