"""POST /api/v1/sync/push (backend/push.py, backend/agreements.py) over real HTTP, on both databases."""

from __future__ import annotations

import time
import uuid
from typing import Any

from backend.models import (
    ConflictRow,
    Device,
    DoubleBookingRow,
    Equivocation,
    FeedLink,
    HeldChange,
    LogEntry,
    LogHead,
    Record,
)
from crypto import change_hash, sign_change
from field_client.errors import HubRefused

from .helpers import RESOURCE, Hub, Officer, audit_entries, error_body, follow, raw, rows, sign_as

PUSH = "/api/v1/sync/push"


def statuses(results: list[dict[str, Any]]) -> list[str]:
    return [r["status"] for r in results]


def rejections(hub: Hub) -> dict[str, dict[str, Any]]:
    """change id -> details of its 'change.rejected' audit entry."""
    entries = audit_entries(hub.app, "change.rejected")
    assert all(e.outcome == "rejected" for e in entries)
    return {e.object: e.details for e in entries}


def log_ids(hub: Hub) -> list[str]:
    return [e.change_id for e in rows(hub.app, LogEntry, order_by=LogEntry.seq)]


def record(hub: Hub, record_id: str) -> Record:
    (row,) = rows(hub.app, Record, Record.record_id == record_id)
    return row


def two_agencies(hub: Hub, live: str, **agreement: Any) -> tuple[Officer, Officer]:
    """SPD shares its resources with CSO (as ``agreement`` says); one officer in each."""
    hub.agency("SPD")
    hub.agency("CSO")
    hub.agreement("SPD", "CSO", ["resources"], **agreement)
    return Officer(live, hub.token("SPD", "Sgt. Lee")), Officer(live, hub.token("CSO", "Dep. Kim"))


# -- feeds: accepted, duplicate, held, equivocation ---------------------------------------


def test_accepted_then_the_same_change_again_is_a_duplicate(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    wire = lee.create()
    assert lee.push(wire) == [{"id": wire["id"], "status": "accepted"}]
    assert log_ids(hub) == [wire["id"]]
    row = record(hub, wire["record_id"])
    assert (row.collection, row.agency, row.values, row.deleted) == ("resources", "SPD", RESOURCE, False)
    (device,) = rows(hub.app, Device)
    assert (device.feed_seq, device.feed_hash) == (1, change_hash(wire))
    (head,) = rows(hub.app, LogHead)
    # again, alone and in a batch with the next link
    assert lee.push(wire) == [{"id": wire["id"], "status": "duplicate"}]
    nxt = lee.change("resources", {"status": "deployed"}, record_id=wire["record_id"])
    assert statuses(lee.push(wire, nxt, nxt)) == ["duplicate", "accepted", "duplicate"]
    assert log_ids(hub) == [wire["id"], nxt["id"]]
    assert [link.seq for link in rows(hub.app, FeedLink)] == [1, 2]
    assert record(hub, wire["record_id"]).values == {**RESOURCE, "status": "deployed"}
    assert lee.push(wire, nxt) == [{"id": wire["id"], "status": "duplicate"}, {"id": nxt["id"], "status": "duplicate"}]
    (after,) = rows(hub.app, LogHead)
    assert after.size == head.size + 1 == 2
    assert rejections(hub) == {}


def test_a_change_after_a_gap_is_held_until_the_gap_fills(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("SPD", "Dep. Kim"))
    w1, w2, w3 = lee.create(), lee.create(), lee.create()
    w4 = lee.create(values={"kind": "vehicle"})  # refused once placed: a new record needs its name
    results = lee.push(w4, w3, w2)
    assert statuses(results) == ["held"] * 3
    assert all("waiting for seq 1" in r["reason"] for r in results)
    assert lee.push(w2) == [{"id": w2["id"], "status": "held", "reason": results[2]["reason"]}]  # again: no harm
    assert sorted(h.seq for h in rows(hub.app, HeldChange)) == [2, 3, 4]
    assert log_ids(hub) == [] and kim.pull() == []
    # the gap fills: the held links follow in order, the refused one is refused (and audited)
    assert lee.push(w1) == [{"id": w1["id"], "status": "accepted"}]
    assert log_ids(hub) == [w1["id"], w2["id"], w3["id"]]
    assert rows(hub.app, HeldChange) == []
    links = rows(hub.app, FeedLink, order_by=FeedLink.seq)
    assert [(link.seq, link.status) for link in links] == [(1, "accepted"), (2, "accepted"), (3, "accepted"),
                                                          (4, "rejected")]  # fmt: skip
    assert set(rejections(hub)) == {w4["id"]}
    assert [c.id for c in kim.pull()] == [w1["id"], w2["id"], w3["id"]]
    assert set(kim.state.records) == {w1["record_id"], w2["record_id"], w3["record_id"]}
    assert statuses(lee.push(w2, w3, w4)) == ["duplicate"] * 3
    (device,) = rows(hub.app, Device, Device.id == lee.device_id)
    assert (device.feed_seq, device.feed_hash) == (4, change_hash(w4))


def test_two_changes_signed_at_one_seq_quarantine_the_device(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("SPD", "Dep. Kim"))
    first = sign_as(lee, values={**RESOURCE, "name": "Unit 12"})
    clone = sign_as(lee, values={**RESOURCE, "name": "Unit 99"})  # same seq 1, prev None: a restored image
    assert (first["seq"], first["prev"]) == (clone["seq"], clone["prev"]) and first["id"] != clone["id"]
    assert statuses(lee.push(first)) == ["accepted"]
    (result,) = lee.push(clone)
    assert result["status"] == "rejected" and result["id"] == clone["id"]
    assert "equivocation" in result["reason"]
    (proof,) = rows(hub.app, Equivocation)
    assert (proof.device, proof.seq) == (lee.device_id, 1)
    assert proof.held == first and proof.offered == clone
    (device,) = rows(hub.app, Device, Device.id == lee.device_id)
    assert device.status == "quarantined" and "equivocation" in device.status_reason
    (alert,) = audit_entries(hub.app, "device.quarantined")
    assert (alert.object, alert.agency, alert.outcome) == (lee.device_id, "SPD", "quarantined")
    assert "equivocation" in rejections(hub)[clone["id"]]["reason"]
    # nothing of the clone was merged; the device is refused at once
    assert log_ids(hub) == [first["id"]]
    assert record(hub, first["record_id"]).values["name"] == "Unit 12"
    follow(lee, first)
    for attempt in (lambda: lee.push(lee.create()), lambda: lee.client.pull(0)):
        try:
            attempt()
        except HubRefused as exc:
            assert (exc.status, exc.code) == (403, "forbidden") and "quarantined" in exc.message
        else:
            raise AssertionError("a quarantined device was served")
    assert [c.id for c in kim.pull()] == [first["id"]]
    # the same at a seq still held back (ahead of a gap), from another laptop
    tom = Officer(live, hub.token("SPD", "Ofc. Tom"))
    tom.create()  # seq 1, never sent
    second, other = sign_as(tom, values={**RESOURCE, "name": "A"}), sign_as(tom, values={**RESOURCE, "name": "B"})
    assert statuses(tom.push(second)) == ["held"]
    (result,) = tom.push(other)
    assert result["status"] == "rejected" and "equivocation" in result["reason"]
    proof = rows(hub.app, Equivocation, Equivocation.device == tom.device_id)
    assert [(e.seq, e.held, e.offered) for e in proof] == [(2, second, other)]
    assert rows(hub.app, Device, Device.id == tom.device_id)[0].status == "quarantined"
    assert log_ids(hub) == [first["id"]]


# -- changes that are not the device's authentic word ----------------------------------


def test_invalid_changes_are_rejected_with_field_details_and_nothing_is_stored(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    # authentic links of the feed with invalid values: refused with field details, and the
    # feed moves past them (an honest laptop must not be stuck behind its own bad change)
    invalid = []
    for values in ({**RESOURCE, "quantity": "3"}, {**RESOURCE, "colour": "blue"}, {**RESOURCE, "status": "lost"}):
        wire = sign_as(lee, values=values)
        follow(lee, wire)
        invalid.append(wire)
    text_quantity, unknown_field, bad_status = invalid
    results = lee.push(*invalid)
    assert statuses(results) == ["rejected"] * 3
    assert [r["id"] for r in results] == [text_quantity["id"], unknown_field["id"], bad_status["id"]]
    assert all(r["reason"] == "invalid change" for r in results)
    assert set(results[0]["details"]["fields"]) == {"quantity"}
    assert set(results[1]["details"]["fields"]) == {"colour"}
    assert set(results[2]["details"]["fields"]) == {"status"}
    assert rows(hub.app, LogEntry) == [] and rows(hub.app, Record) == []
    links = rows(hub.app, FeedLink, order_by=FeedLink.seq)
    assert [(link.seq, link.status) for link in links] == [(1, "rejected"), (2, "rejected"), (3, "rejected")]
    audited = rejections(hub)
    assert set(audited) == {text_quantity["id"], unknown_field["id"], bad_status["id"]}
    assert set(audited[text_quantity["id"]]["fields"]["fields"]) == {"quantity"}
    # malformed envelopes that do not verify are not the device's word: rejected per change,
    # and they move nothing
    good = sign_as(lee)
    no_seq = {k: v for k, v in good.items() if k != "seq"}
    bad_id = {**good, "id": "not-a-uuid"}
    text_seq = {**good, "seq": "1"}
    results = lee.push(no_seq, bad_id, text_seq, {})
    assert statuses(results) == ["rejected"] * 4
    assert [r["id"] for r in results] == [good["id"], "not-a-uuid", good["id"], None]
    assert "seq" in results[0]["reason"] and "seq" in results[2]["reason"]
    assert "signature" in results[1]["reason"]
    assert rows(hub.app, LogEntry) == [] and len(rows(hub.app, FeedLink)) == 3
    assert len(audit_entries(hub.app, "change.rejected")) == 7
    # a batch item that is not an object at all fails the request's own schema
    body = error_body(raw(live, "POST", PUSH, {"changes": [good, "not a change"]}, officer=lee), 422)
    assert set(body["details"]) == {"changes"}
    # the feed is at seq 3: a valid change is the next link
    assert statuses(lee.push(lee.create())) == ["accepted"]
    assert [link.seq for link in rows(hub.app, FeedLink, order_by=FeedLink.seq)] == [1, 2, 3, 4]


def test_forged_foreign_and_future_changes_are_rejected(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("SPD", "Dep. Kim"))
    forged = sign_as(lee, values={**RESOURCE, "status": "available"})
    forged["fields"]["status"]["value"] = "deployed"  # flipped after signing
    renamed = sign_as(lee)
    renamed["fields"]["description"] = renamed["fields"].pop("name")  # a field renamed after signing
    kims = sign_as(kim)  # kim's own change, pushed by lee
    impostor = sign_change({**sign_as(kim), "device": lee.device_id}, kim.key)  # names lee, signed by kim
    results = lee.push(forged, renamed, kims, impostor)
    assert statuses(results) == ["rejected"] * 4
    assert "signature" in results[0]["reason"] and "signature" in results[1]["reason"]
    assert "own changes" in results[2]["reason"]
    assert "signature" in results[3]["reason"]
    assert rows(hub.app, LogEntry) == [] and rows(hub.app, Record) == [] and rows(hub.app, FeedLink) == []
    assert set(rejections(hub)) == {forged["id"], renamed["id"], kims["id"], impostor["id"]}
    # a clock far ahead of the hub's: refused, and the reason says why
    now_ms = time.time_ns() // 1_000_000
    years = sign_as(lee, hlc=f"{now_ms + 5 * 365 * 86_400_000:016d}-000000-{lee.device_id}")
    two_days = sign_as(lee, hlc=f"{now_ms + 2 * 86_400_000:016d}-000000-{lee.device_id}")
    results = lee.push(years, two_days)
    assert statuses(results) == ["rejected", "rejected"]
    for result in results:
        assert "clock" in result["reason"], result
    audited = rejections(hub)
    assert all("clock" in audited[w["id"]]["reason"] for w in (years, two_days))
    assert rows(hub.app, LogEntry) == [] and rows(hub.app, FeedLink) == []
    # lee's feed did not move, kim's change is still kim's to push
    assert statuses(lee.push(lee.create())) == ["accepted"]
    assert statuses(kim.push(kims)) == ["accepted"]


# -- authentic changes that are refused: the feed moves on -----------------------------


def test_a_refused_link_in_a_batch_does_not_stop_the_next_one(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    w1 = lee.create()
    w2 = lee.create(values={"kind": "vehicle", "quantity": 2})  # a new record without its name
    w3 = lee.create()
    results = lee.push(w1, w2, w3)
    assert statuses(results) == ["accepted", "rejected", "accepted"]
    assert "required" in results[1]["reason"] and set(results[1]["details"]) == {"name"}
    assert log_ids(hub) == [w1["id"], w3["id"]]
    assert [r.record_id for r in rows(hub.app, Record)].count(w2["record_id"]) == 0
    links = rows(hub.app, FeedLink, order_by=FeedLink.seq)
    assert [(link.seq, link.status) for link in links] == [(1, "accepted"), (2, "rejected"), (3, "accepted")]
    assert set(rejections(hub)[w2["id"]]["fields"]) == {"name"}
    # sending the refused link again repeats its verdict as a duplicate, and audits nothing new
    (again,) = lee.push(w2)
    assert again["status"] == "duplicate" and again["reason"] == results[1]["reason"]
    assert len(audit_entries(hub.app, "change.rejected")) == 1
    # a change id used again (for another record) is a refused link too, not a server error
    reused = sign_as(lee, change_id=w1["id"])
    follow(lee, reused)
    later = lee.create()
    response = raw(live, "POST", PUSH, {"changes": [reused, later]}, officer=lee)
    assert response.status_code == 200, response.text[:300]
    results = response.json()["results"]
    assert statuses(results) == ["rejected", "accepted"] and "already used" in results[0]["reason"]
    assert log_ids(hub) == [w1["id"], w3["id"], later["id"]]
    assert len(audit_entries(hub.app, "change.rejected")) == 2


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


def _booking(resource_id: str, start: str, end: str, state: str) -> dict[str, Any]:
    return {"resource_id": resource_id, "starts_at": start, "ends_at": end, "purpose": "exercise", "state": state}


def test_reservation_rules(hub: Hub, live: str) -> None:
    lee, kim = two_agencies(hub, live)
    hub.agreement("CSO", "SPD", ["reservations"])  # so SPD sees what it is asked to approve
    car = lee.create()
    assert statuses(lee.push(car)) == ["accepted"]
    rid = car["record_id"]
    # SPD books its own car: approved at once
    own = lee.create("reservations", _booking(rid, "2030-01-01T08:00:00Z", "2030-01-01T10:00:00Z", "approved"))
    assert statuses(lee.push(own)) == ["accepted"]
    # CSO cannot approve its own booking of SPD's car; it may request it
    kim.pull()
    grab = kim.create("reservations", _booking(rid, "2030-01-02T08:00:00Z", "2030-01-02T10:00:00Z", "approved"))
    ask = kim.create("reservations", _booking(rid, "2030-01-03T08:00:00Z", "2030-01-03T10:00:00Z", "requested"))
    nowhere = kim.create("reservations", _booking(str(uuid.uuid4()), "2030-01-03T08:00:00Z", "2030-01-03T10:00:00Z",
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


# -- what merging queues for command staff ------------------------------------------


def test_concurrent_edits_and_overlapping_bookings_are_queued_for_review(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("SPD", "Dep. Kim"))
    car = lee.create()
    assert statuses(lee.push(car)) == ["accepted"]
    kim.pull()
    rid = car["record_id"]
    # both edit status offline, from the same base: a conflict, accepted and queued
    mine = lee.change("resources", {"status": "deployed"}, record_id=rid)
    theirs = kim.change("resources", {"status": "maintenance", "notes": "brakes"}, record_id=rid)
    assert statuses(lee.push(mine)) == ["accepted"]
    assert statuses(kim.push(theirs)) == ["accepted"]
    (conflict,) = rows(hub.app, ConflictRow)
    assert (conflict.record_id, conflict.field, conflict.agency, conflict.status) == (rid, "status", "SPD", "open")
    versions = {conflict.winner["change_id"]: conflict.winner, conflict.loser["change_id"]: conflict.loser}
    assert versions[mine["id"]]["value"] == "deployed" and versions[mine["id"]]["device"] == lee.device_id
    assert versions[theirs["id"]]["value"] == "maintenance" and versions[theirs["id"]]["device"] == kim.device_id
    winner = max((mine, theirs), key=lambda w: (w["hlc"], w["device"]))  # the later clock wins
    assert conflict.winner["change_id"] == winner["id"]
    row = record(hub, rid)
    assert row.values["status"] == conflict.winner["value"]
    assert {v[2] for v in row.state["status"]} == {car["id"], mine["id"], theirs["id"]}  # both kept
    # an edit that saw both is no conflict
    lee.pull()
    assert statuses(lee.push(lee.change("resources", {"status": "available"}, record_id=rid))) == ["accepted"]
    assert len(rows(hub.app, ConflictRow)) == 1
    # each books the car offline: one booking touches lee's first, kim's overlaps it
    first = lee.create("reservations", _booking(rid, "2030-05-01T08:00:00Z", "2030-05-01T12:00:00Z", "approved"))
    touching = lee.create("reservations", _booking(rid, "2030-05-01T12:00:00Z", "2030-05-01T13:00:00Z", "approved"))
    overlap = kim.create("reservations", _booking(rid, "2030-05-01T10:00:00Z", "2030-05-01T11:00:00Z", "approved"))
    assert statuses(lee.push(first, touching)) == ["accepted", "accepted"]
    assert rows(hub.app, DoubleBookingRow) == []
    assert statuses(kim.push(overlap)) == ["accepted"]
    (booking,) = rows(hub.app, DoubleBookingRow)
    assert booking.resource_id == rid and booking.status == "open"
    assert {booking.first, booking.second} == {first["record_id"], overlap["record_id"]}
    assert (booking.overlap_start, booking.overlap_end) == ("2030-05-01T10:00:00Z", "2030-05-01T11:00:00Z")


def test_an_update_with_an_invalid_value_is_refused_and_changes_nothing(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    created = lee.create()
    assert statuses(lee.push(created)) == ["accepted"]
    bad = lee.change("resources", {"status": "lost", "quantity": -1}, record_id=created["record_id"])
    [result] = lee.push(bad)
    assert result["status"] == "rejected" and result["reason"] == "invalid change"
    assert set(result["details"]["fields"]) == {"status", "quantity"}
    [record] = rows(hub.app, Record)
    assert record.values["status"] == "available" and record.values["quantity"] == 1
    assert log_ids(hub) == [created["id"]]
    # the refused link still moved the feed: the laptop's next change is accepted
    assert statuses(lee.push(lee.change("resources", {"status": "deployed"}, record_id=created["record_id"]))) == [
        "accepted"
    ]


def test_one_batch_is_applied_as_its_changes_one_by_one(hub: Hub, live: str) -> None:
    """A batch is merged in memory and written at the end (backend/push.py, _Batch): a record
    created, edited, booked and edited again within one push, a refused link between, and a
    change id used twice in the batch end exactly as if pushed one at a time."""
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    car = lee.create()
    rid = car["record_id"]
    deploy = lee.change("resources", {"status": "deployed"}, record_id=rid)
    broken = lee.create(values={"kind": "vehicle"})  # no name: refused, the feed moves on
    book = lee.create("reservations", _booking(rid, "2030-01-01T08:00:00Z", "2030-01-01T10:00:00Z", "approved"))
    note = lee.change("resources", {"notes": "back at noon", "quantity": 3}, record_id=rid)
    reused = sign_as(lee, change_id=deploy["id"], record_id=rid, values={"status": "maintenance"})
    follow(lee, reused)
    last = lee.change("resources", {"status": "available"}, record_id=rid)
    results = lee.push(car, deploy, broken, book, note, reused, last)
    assert statuses(results) == ["accepted", "accepted", "rejected", "accepted", "accepted", "rejected", "accepted"]
    assert "already used" in results[5]["reason"]
    assert log_ids(hub) == [car["id"], deploy["id"], book["id"], note["id"], last["id"]]
    entries = rows(hub.app, LogEntry, order_by=LogEntry.seq)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert [e.resource_agency for e in entries] == [None, None, "SPD", None, None]
    assert (entries[-1].chain, len(entries)) == (rows(hub.app, LogHead)[0].head, rows(hub.app, LogHead)[0].size)
    row = record(hub, rid)
    assert (row.values["status"], row.values["notes"], row.values["quantity"]) == ("available", "back at noon", 3)
    # every version kept: car (4 fields + _deleted), deploy (2), note (3), last (2)
    assert sum(len(versions) for versions in row.state.values()) == 5 + 2 + 3 + 2
    assert record(hub, book["record_id"]).values["state"] == "approved"
    links = rows(hub.app, FeedLink, order_by=FeedLink.seq)
    verdicts = ["accepted", "accepted", "rejected", "accepted", "accepted", "rejected", "accepted"]
    assert [link.status for link in links] == verdicts
    assert set(rejections(hub)) == {broken["id"], reused["id"]}
    # the same batch again: every verdict repeated as a duplicate, nothing written
    again = lee.push(car, deploy, broken, book, note, reused, last)
    assert statuses(again) == ["duplicate"] * 7
    assert [r.get("reason") is not None for r in again] == [False, False, True, False, False, True, False]
    assert len(rows(hub.app, LogEntry)) == 5
