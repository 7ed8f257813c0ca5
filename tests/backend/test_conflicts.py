"""What merging queues for command staff (backend/conflicts.py): field conflicts and double bookings,
through POST /api/v1/sync/push on both databases."""

from __future__ import annotations

from backend.models import ConflictRow, DoubleBookingRow

from .helpers import Hub, Officer, booking_of, record, rows, statuses

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
    first = lee.create("reservations", booking_of(rid, "2030-05-01T08:00:00Z", "2030-05-01T12:00:00Z", "approved"))
    touching = lee.create("reservations", booking_of(rid, "2030-05-01T12:00:00Z", "2030-05-01T13:00:00Z", "approved"))
    overlap = kim.create("reservations", booking_of(rid, "2030-05-01T10:00:00Z", "2030-05-01T11:00:00Z", "approved"))
    assert statuses(lee.push(first, touching)) == ["accepted", "accepted"]
    assert rows(hub.app, DoubleBookingRow) == []
    assert statuses(kim.push(overlap)) == ["accepted"]
    (booking,) = rows(hub.app, DoubleBookingRow)
    assert booking.resource_id == rid and booking.status == "open"
    assert {booking.first, booking.second} == {first["record_id"], overlap["record_id"]}
    assert (booking.overlap_start, booking.overlap_end) == ("2030-05-01T10:00:00Z", "2030-05-01T11:00:00Z")
