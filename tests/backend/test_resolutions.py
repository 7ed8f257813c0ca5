"""Conflict and double-booking resolutions (backend/resolutions.py): hub-signed changes that
reach exactly the laptops that may see the record, verified there against the pinned registry.

Real parts throughout: the hub on SQLite and PostgreSQL, field laptops with SQLCipher replicas
syncing through the field client's agent over the in-process transport seam.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from backend import keystore, log, provenance, resolutions
from backend.db import db
from backend.errors import Conflict, NotFound, Unprocessable
from backend.models import ConflictRow, DoubleBookingRow, LogEntry
from crypto import SigningKey, VerifiedChange, change_hash
from field_client import edits, overview
from field_client.bundle import verify_bundle
from sync import HUB_DEVICE, Change, Clock, make_change
from tests.backend.helpers import Hub, audit_entries, rows
from tests.field_client.conftest import MakeLaptop, laptop  # noqa: F401
from tests.field_client.helpers import VEHICLE, Laptop


def conflict_on_status(hub: Hub, laptop: MakeLaptop) -> tuple[Laptop, Laptop, dict[str, Any], ConflictRow]:  # noqa: F811
    """Two SPD laptops set one vehicle's status offline: the hub records a conflict."""
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    unit = edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()
    ray.sync()
    edits.update(lee.device, unit["id"], {"status": "deployed"})
    edits.update(ray.device, unit["id"], {"status": "maintenance"})
    lee.sync()
    ray.sync()
    lee.sync()
    (row,) = rows(hub.app, ConflictRow)
    assert row.status == "open" and row.field == "status"
    return lee, ray, unit, row


def resolve(hub: Hub, conflict_id: str, choice: str, by: str = "Lt. Dana Cruz") -> ConflictRow:
    with hub.app.app_context():
        row = resolutions.resolve(conflict_id, choice, by=by)
        db.session.refresh(row)
        db.session.expunge(row)
        return row


def hub_log(hub: Hub) -> list[LogEntry]:
    return rows(hub.app, LogEntry, order_by=LogEntry.seq)


def test_a_resolution_is_a_hub_signed_change_that_every_laptop_verifies_and_applies(
    hub: Hub,
    laptop: MakeLaptop,  # noqa: F811
) -> None:
    lee, ray, unit, conflict = conflict_on_status(hub, laptop)
    loser = conflict.loser["value"]
    assert lee.record(unit["id"])["status"] == ray.record(unit["id"])["status"] == conflict.winner["value"]

    resolved = resolve(hub, conflict.id, "loser")
    assert resolved.status == "resolved" and resolved.resolved_by == "Lt. Dana Cruz"
    assert resolved.resolved_at is not None

    entry = hub_log(hub)[-1]
    assert entry.device == HUB_DEVICE and entry.change_id == resolved.resolution_change_id
    wire = entry.wire
    assert wire["resolution"] == {"kind": "conflict", "resolves": conflict.id, "by": "Lt. Dana Cruz"}
    assert wire["fields"]["status"]["value"] == loser
    assert wire["hlc"] > max(conflict.winner["hlc"], conflict.loser["hlc"])
    assert wire["base"]["status"] == conflict.winner["hlc"]  # it saw the winner: it supersedes it
    assert (wire["seq"], wire["prev"]) == (1, None)
    assert lee.sync().applied == 1 and ray.sync().applied == 1
    for lt in (lee, ray):
        assert lt.record(unit["id"])["status"] == loser
        assert lt.count("refused") == 0
        assert lt.count("changes", f"device = '{HUB_DEVICE}'") == 1
    with hub.app.app_context():
        from backend.models import Record

        assert db.session.get(Record, unit["id"]).values["status"] == loser

    (audited,) = audit_entries(hub.app, "conflict.resolve")
    assert audited.actor == "Lt. Dana Cruz" and audited.object == conflict.id
    # the laptops list the conflict as settled, by whom, and no longer count it open
    for lt in (lee, ray):
        (seen,) = overview.conflicts(lt.device)["conflicts"]
        assert seen["id"] == conflict.id and seen["resolved_by"] == "Lt. Dana Cruz"
        assert overview.status(lt.device)["conflicts"] == 0
    # and the provenance bundle, verified offline, names the staff member for the field
    with hub.app.app_context():
        report = verify_bundle(provenance.bundle(unit["id"], reader=None))
    assert report.ok, report.problems
    status = next(f for f in report.fields if f["field"] == "status")
    assert (status["value"], status["written_by"]) == (loser, "Lt. Dana Cruz (hub resolution)")
    assert audited.details["change_id"] == entry.change_id and audited.details["value"] == loser


def test_the_hub_feed_chains_its_resolutions(hub: Hub, laptop: MakeLaptop) -> None:  # noqa: F811
    lee, ray, unit, first = conflict_on_status(hub, laptop)
    resolve(hub, first.id, "winner")
    lee.sync()
    ray.sync()
    edits.update(lee.device, unit["id"], {"name": "Unit 12A"})
    edits.update(ray.device, unit["id"], {"name": "Unit 12B"})
    lee.sync()
    ray.sync()
    (second,) = [c for c in rows(hub.app, ConflictRow) if c.status == "open"]
    resolve(hub, second.id, second.loser["change_id"])  # a side can be named by its change id
    hub_changes = [e.wire for e in hub_log(hub) if e.device == HUB_DEVICE]
    assert [w["seq"] for w in hub_changes] == [1, 2]
    assert hub_changes[1]["prev"] == change_hash(hub_changes[0])
    lee.sync()
    assert lee.record(unit["id"])["name"] == second.loser["value"]


def test_resolving_twice_is_409_and_an_unknown_conflict_404_and_neither_writes(
    hub: Hub,
    laptop: MakeLaptop,  # noqa: F811
) -> None:
    _, _, _, conflict = conflict_on_status(hub, laptop)
    resolve(hub, conflict.id, "winner", by="Lt. Cruz")
    size = len(hub_log(hub))
    with pytest.raises(Conflict) as info:
        resolve(hub, conflict.id, "loser", by="Cmdr. Other")
    assert info.value.status == 409 and "Lt. Cruz" in info.value.message
    with pytest.raises(NotFound) as missing:
        resolve(hub, "no/such/conflict/here", "winner")
    assert missing.value.status == 404
    assert len(hub_log(hub)) == size
    assert [e.actor for e in audit_entries(hub.app, "conflict.resolve")] == ["Lt. Cruz"]


def test_a_bad_choice_is_refused_and_writes_nothing(hub: Hub, laptop: MakeLaptop) -> None:  # noqa: F811
    _, _, _, conflict = conflict_on_status(hub, laptop)
    size = len(hub_log(hub))
    with pytest.raises(Unprocessable) as info:
        resolve(hub, conflict.id, "both")
    assert info.value.status == 422 and "choice" in info.value.details
    assert len(hub_log(hub)) == size
    assert rows(hub.app, ConflictRow)[0].status == "open"
    assert audit_entries(hub.app, "conflict.resolve") == []


def test_a_resolution_reaches_exactly_who_may_see_the_record(hub: Hub, laptop: MakeLaptop) -> None:  # noqa: F811
    lee, _ray, unit, conflict = conflict_on_status(hub, laptop)
    kim = laptop("CSO", "Dep. Kim")  # sees SPD's resources, status only as a digest
    hub.agreement("SPD", "CSO", ["resources"], withhold=["status"])
    ann = laptop("FPD", "Ofc. Ann")  # no agreement: sees nothing of SPD
    kim.sync()
    ann.sync()
    resolve(hub, conflict.id, "loser")
    assert kim.sync().applied == 1
    assert ann.sync().pulled == 0
    assert ann.count("changes") == 0 and ann.record(unit["id"]) is None
    assert kim.count("refused") == 0
    seen = kim.record(unit["id"])
    assert "status" not in seen and seen["withheld"] == ["status"]  # the resolution still verified
    assert lee.sync().applied == 1


def test_a_forged_hub_change_is_refused_by_the_laptop(hub: Hub, laptop: MakeLaptop) -> None:  # noqa: F811
    """A compromised hub appends a 'hub' change signed by another key: laptops refuse it."""
    lee = laptop("SPD", "Sgt. Lee")
    unit = edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()
    with hub.app.app_context():
        signers = {"agency": keystore.agency_key("SPD"), "stranger": SigningKey.generate()}
        head = log.lock_head()
        for name, key in signers.items():
            wire = make_change(
                key, collection="resources", record_id=unit["id"], agency="SPD", device=HUB_DEVICE,
                seq=1, prev=None, hlc=str(Clock(HUB_DEVICE).now()), values={"status": "out_of_service"},
                seen={}, resolution={"kind": "conflict", "resolves": "x", "by": f"forged by {name}"},
            )  # fmt: skip
            log.append(head, Change.from_verified(VerifiedChange(wire, change_hash(wire))))
        db.session.commit()
    report = lee.sync()
    assert len(report.refused) == 2 and report.applied == 0
    assert all("signature" in r["reason"] for r in report.refused), report.refused
    assert lee.record(unit["id"])["status"] == "available"
    assert lee.count("refused") == 2


def booked_twice(hub: Hub, laptop: MakeLaptop) -> tuple[Laptop, Laptop, DoubleBookingRow]:  # noqa: F811
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    van = edits.create(lee.device, "resources", {**VEHICLE, "name": "Van 3"})
    lee.sync()
    ray.sync()
    span = {"resource_id": van["id"], "purpose": "x"}
    edits.create(
        lee.device, "reservations", {**span, "starts_at": "2026-12-01T08:00:00Z", "ends_at": "2026-12-01T12:00:00Z"}
    )
    edits.create(
        ray.device, "reservations", {**span, "starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T14:00:00Z"}
    )
    lee.sync()
    ray.sync()
    lee.sync()
    (booking,) = rows(hub.app, DoubleBookingRow)
    assert booking.status == "open"
    return lee, ray, booking


def test_declining_one_reservation_of_a_double_booking_reaches_the_laptops(
    hub: Hub,
    laptop: MakeLaptop,  # noqa: F811
) -> None:
    lee, ray, booking = booked_twice(hub, laptop)
    assert lee.count("double_bookings") == 1
    with hub.app.app_context():
        done = resolutions.decline(booking.id, booking.second, by="Lt. Dana Cruz")
        assert (done.status, done.declined, done.resolved_by) == ("resolved", booking.second, "Lt. Dana Cruz")
    entry = hub_log(hub)[-1]
    assert entry.device == HUB_DEVICE and entry.record_id == booking.second
    assert entry.wire["resolution"] == {"kind": "double_booking", "resolves": booking.id, "by": "Lt. Dana Cruz"}
    assert entry.resource_agency == "SPD"
    for lt in (lee, ray):
        lt.sync()
        assert lt.record(booking.second)["state"] == "declined"
        assert lt.record(booking.first)["state"] == "approved"
        (seen,) = overview.conflicts(lt.device)["double_bookings"]
        assert seen["resolved_by"] == "Lt. Dana Cruz" and overview.status(lt.device)["double_bookings"] == 0
    (audited,) = audit_entries(hub.app, "double_booking.resolve")
    assert audited.details["declined"] == booking.second
    with hub.app.app_context(), pytest.raises(Conflict):
        resolutions.decline(booking.id, booking.first, by="Lt. Dana Cruz")
    with hub.app.app_context(), pytest.raises(NotFound):
        resolutions.decline("nope", booking.first, by="Lt. Dana Cruz")


def test_declining_a_reservation_outside_the_pair_is_refused(hub: Hub, laptop: MakeLaptop) -> None:  # noqa: F811
    _, _, booking = booked_twice(hub, laptop)
    size = len(hub_log(hub))
    with hub.app.app_context(), pytest.raises(Unprocessable):
        resolutions.decline(booking.id, booking.resource_id, by="Lt. Dana Cruz")
    assert len(hub_log(hub)) == size
    with hub.app.app_context():
        assert db.session.scalar(select(DoubleBookingRow.status)) == "open"


def test_a_compromised_hub_cannot_invent_a_value_even_with_its_own_key(
    hub: Hub,
    laptop: MakeLaptop,  # noqa: F811
) -> None:
    """The hub key signs resolutions, so a hub that is taken over can sign one; the laptops still
    refuse it unless its value is one an officer signed for that field (sync.resolutions)."""
    lee, _, unit, conflict = conflict_on_status(hub, laptop)
    with hub.app.app_context():
        head = log.lock_head()
        wire = make_change(
            keystore.hub_key(), collection="resources", record_id=unit["id"], agency="SPD", device=HUB_DEVICE,
            seq=1, prev=None, hlc=str(Clock(HUB_DEVICE).now()), values={"status": "out_of_service"},
            seen={"status": conflict.winner["hlc"]},
            resolution={"kind": "conflict", "resolves": conflict.id, "by": "Lt. Dana Cruz"},
        )  # fmt: skip
        log.append(head, Change.from_verified(VerifiedChange(wire, change_hash(wire))))
        db.session.commit()
    report = lee.sync()
    assert [r["reason"] for r in report.refused] == ["hub resolution refused: its value for 'status' is neither side's"]
    assert lee.record(unit["id"])["status"] == conflict.winner["value"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_staff_resolving_at_once_keep_the_hub_feed_gap_free(hub: Hub, laptop: MakeLaptop) -> None:  # noqa: F811
    """On PostgreSQL, two resolutions committed by two workers at the same moment: the log-head lock
    orders them, so the hub's feed is seq 1, 2 with prev chained, and laptops accept both."""
    import threading

    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    units = [edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {n}"}) for n in (1, 2)]
    lee.sync()
    ray.sync()
    for unit in units:
        edits.update(lee.device, unit["id"], {"status": "deployed"})
        edits.update(ray.device, unit["id"], {"status": "maintenance"})
    lee.sync()
    ray.sync()
    lee.sync()
    conflicts = rows(hub.app, ConflictRow)
    assert len(conflicts) == 2
    barrier, errors = threading.Barrier(2), []

    def work(conflict_id: str, by: str) -> None:
        try:
            with hub.app.app_context():
                barrier.wait(timeout=10)
                resolutions.resolve(conflict_id, "loser", by=by)
                db.session.remove()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c.id, f"Staff {i}")) for i, c in enumerate(conflicts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    feed = sorted((e.wire for e in hub_log(hub) if e.device == HUB_DEVICE), key=lambda w: w["seq"])
    assert [w["seq"] for w in feed] == [1, 2]
    assert feed[0]["prev"] is None and feed[1]["prev"] == change_hash(feed[0])
    assert feed[1]["hlc"] > feed[0]["hlc"]
    assert [e.seq for e in hub_log(hub)] == list(range(1, len(hub_log(hub)) + 1))
    assert lee.sync().applied == 2 and lee.count("refused") == 0
    for conflict in conflicts:
        assert lee.record(conflict.record_id)["status"] == conflict.loser["value"]
