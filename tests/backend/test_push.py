"""POST /api/v1/sync/push (backend/push.py, backend/pushbatch.py) over real HTTP, on both databases: feeds,
authenticity, verdicts. Who may write what: test_policy.py; what is queued for staff: test_conflicts.py."""

from __future__ import annotations

import time

from backend.models import (
    Device,
    Equivocation,
    FeedLink,
    HeldChange,
    LogEntry,
    LogHead,
    Record,
)
from backend.push import PushStatus
from crypto import change_hash, sign_change
from field_client.errors import HubRefused

from .helpers import (
    RESOURCE,
    Hub,
    Officer,
    audit_entries,
    booking_of,
    error_body,
    follow,
    log_ids,
    raw,
    record,
    rejections,
    rows,
    sign_as,
    statuses,
)

PUSH = "/api/v1/sync/push"


def test_the_verdicts_are_the_wires_strings() -> None:
    assert [status.value for status in PushStatus] == ["accepted", "duplicate", "held", "rejected"]
    assert all(status == status.value and str(status) == status.value for status in PushStatus)


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


def test_a_next_link_whose_prev_is_not_the_head_quarantines_the_device(hub: Hub, live: str) -> None:
    """Two histories that part at seq 1: the hub holds one, the device then signs seq 2 on the other."""
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("SPD", "Dep. Kim"))
    first = lee.create()
    other = sign_as(lee, values={**RESOURCE, "name": "Unit 99"}, seq=1, prev=None)  # the image's seq 1, never sent
    fork = sign_as(lee, values={**RESOURCE, "name": "Unit 77"}, seq=2, prev=change_hash(other))
    assert statuses(lee.push(first)) == ["accepted"]
    (result,) = lee.push(fork)
    assert result == {"id": fork["id"], "status": "rejected", "reason": "equivocation at seq 2: device quarantined"}
    (proof,) = rows(hub.app, Equivocation)
    assert (proof.device, proof.seq) == (lee.device_id, 2)
    assert proof.held == first and proof.offered == fork  # the link held and the change that names another
    (device,) = rows(hub.app, Device, Device.id == lee.device_id)
    assert (device.status, device.status_reason) == ("quarantined", "equivocation at seq 2")
    assert (device.feed_seq, device.feed_hash) == (1, change_hash(first))
    (alert,) = audit_entries(hub.app, "device.quarantined")
    assert (alert.object, alert.agency, alert.details["seq"]) == (lee.device_id, "SPD", 2)
    assert log_ids(hub) == [first["id"]] and [c.id for c in kim.pull()] == [first["id"]]
    assert rows(hub.app, Record, Record.record_id == fork["record_id"]) == [] and rows(hub.app, HeldChange) == []


def test_a_forked_change_held_behind_a_gap_is_equivocation_when_the_gap_fills(hub: Hub, live: str) -> None:
    """The held change's ``prev`` is checked when it is released, as it is for a change pushed."""
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("SPD", "Dep. Kim"))
    other = sign_as(lee, values={**RESOURCE, "name": "Unit 99"}, seq=1, prev=None)  # the image's seq 1, never sent
    fork = sign_as(lee, values={**RESOURCE, "name": "Unit 77"}, seq=2, prev=change_hash(other))
    first = lee.create()  # this copy's seq 1
    held = lee.push(fork)
    assert held == [{"id": fork["id"], "status": "held", "reason": "waiting for seq 1 of this device"}]
    assert [h.seq for h in rows(hub.app, HeldChange)] == [2]
    assert statuses(lee.push(first)) == ["accepted"]  # the gap fills; the held link does not follow it
    (proof,) = rows(hub.app, Equivocation)
    assert (proof.device, proof.seq) == (lee.device_id, 2)
    assert proof.held == first and proof.offered == fork
    (device,) = rows(hub.app, Device, Device.id == lee.device_id)
    assert (device.status, device.status_reason) == ("quarantined", "equivocation at seq 2")
    assert (device.feed_seq, device.feed_hash) == (1, change_hash(first))
    assert [link.seq for link in rows(hub.app, FeedLink)] == [1] and rows(hub.app, HeldChange) == []
    (alert,) = audit_entries(hub.app, "device.quarantined")
    assert (alert.object, alert.agency, alert.details["seq"]) == (lee.device_id, "SPD", 2)
    assert log_ids(hub) == [first["id"]] and [c.id for c in kim.pull()] == [first["id"]]
    assert rows(hub.app, Record, Record.record_id == fork["record_id"]) == []
    follow(lee, fork)
    try:
        lee.push(lee.create())
    except HubRefused as exc:
        assert (exc.status, exc.code) == (403, "forbidden") and "quarantined" in exc.message
    else:
        raise AssertionError("a quarantined device was served")


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
    """A batch is merged in memory and written at the end (backend/pushbatch.py, Batch): a record
    created, edited, booked and edited again within one push, a refused link between, and a
    change id used twice in the batch end exactly as if pushed one at a time."""
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    car = lee.create()
    rid = car["record_id"]
    deploy = lee.change("resources", {"status": "deployed"}, record_id=rid)
    broken = lee.create(values={"kind": "vehicle"})  # no name: refused, the feed moves on
    book = lee.create("reservations", booking_of(rid, "2030-01-01T08:00:00Z", "2030-01-01T10:00:00Z", "approved"))
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
