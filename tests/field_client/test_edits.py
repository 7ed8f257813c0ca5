"""Local edits (field_client/edits.py): validate, sign, merge and queue in one transaction."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from crypto import change_hash
from field_client import edits, state
from field_client.errors import EditRefused, RecordNotFound
from sync import Hlc

from .conftest import MakeLaptop
from .helpers import VEHICLE, Laptop

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the hub's database is irrelevant

RESERVATION = {"starts_at": "2030-11-23T08:00:00Z", "ends_at": "2030-11-23T12:00:00Z", "purpose": "parade"}


def footprint(lt: Laptop) -> dict[str, Any]:
    """Everything an edit may write: tables and the feed/clock meta values."""
    rep = lt.replica
    return {
        "tables": {t: rep.rows(f"SELECT * FROM {t}") for t in ("records", "changes", "outbox", "conflicts")},
        "meta": {k: rep.get(k) for k in ("seq", "prev", "clock")},
    }


def outbox(lt: Laptop) -> list[dict[str, Any]]:
    return lt.replica.rows("SELECT seq, change_id, record_id, wire, status FROM outbox ORDER BY seq")


# -- the feed ----------------------------------------------------------------------------------------


def test_create_update_delete_form_a_gap_free_signed_feed(laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    created = edits.create(lee.device, "resources", dict(VEHICLE))
    assert created["status"] == "available"  # the default
    assert (created["agency"], created["collection"], created["deleted"]) == ("SPD", "resources", False)
    updated = edits.update(lee.device, created["id"], {"status": "deployed", "quantity": 2})
    assert (updated["status"], updated["quantity"], updated["name"]) == ("deployed", 2, "Unit 12")
    edits.delete(lee.device, created["id"])

    rows = outbox(lee)
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert {r["status"] for r in rows} == {"pending"}
    assert {r["record_id"] for r in rows} == {created["id"]}
    wires = [json.loads(r["wire"]) for r in rows]
    assert [w["seq"] for w in wires] == [1, 2, 3]
    assert wires[0]["prev"] is None
    assert wires[1]["prev"] == change_hash(wires[0])
    assert wires[2]["prev"] == change_hash(wires[1])
    assert [w["id"] for w in wires] == [r["change_id"] for r in rows]
    assert {w["device"] for w in wires} == {lee.device.device_id}
    assert [w["deleted"] for w in wires] == [False, False, True]
    assert set(wires[1]["fields"]) == {"status", "quantity"}  # only what changed travels
    hlcs = [Hlc.parse(w["hlc"]) for w in wires]
    assert hlcs == sorted(hlcs) and len(set(hlcs)) == 3
    assert lee.replica.get("seq") == 3
    assert lee.replica.get("prev") == change_hash(wires[2])
    assert lee.replica.get("clock") == wires[2]["hlc"]
    kept = lee.replica.rows("SELECT change_id, seq, origin, hash FROM changes ORDER BY seq")
    assert [(k["change_id"], k["seq"], k["origin"]) for k in kept] == [(w["id"], w["seq"], "local") for w in wires]
    assert [k["hash"] for k in kept] == [change_hash(w) for w in wires]
    # deleted: gone from the list, still held as a tombstone
    assert state.list_records(lee.replica, "resources") == []
    assert [r["id"] for r in state.list_records(lee.replica, "resources", include_deleted=True)] == [created["id"]]


def test_the_feed_continues_across_reopening(laptop: MakeLaptop) -> None:
    lee = laptop()
    first = edits.create(lee.device, "resources", dict(VEHICLE))
    lee.reopen()
    edits.create(lee.device, "contacts", {"name": "Lt. Park", "role": "liaison"})
    wires = [json.loads(r["wire"]) for r in outbox(lee)]
    assert [w["seq"] for w in wires] == [1, 2]
    assert wires[1]["prev"] == change_hash(wires[0])
    assert wires[0]["record_id"] == first["id"]
    assert Hlc.parse(wires[1]["hlc"]) > Hlc.parse(wires[0]["hlc"])


def test_update_carries_what_the_author_saw(laptop: MakeLaptop) -> None:
    lee = laptop()
    created = edits.create(lee.device, "resources", dict(VEHICLE))
    edits.update(lee.device, created["id"], {"name": "Unit 13"})
    first, second = (json.loads(r["wire"]) for r in outbox(lee))
    assert second["base"]["name"] == first["hlc"]


# -- refusals: nothing written ---------------------------------------------------------------


INVALID_CREATES: dict[str, tuple[str, dict[str, Any], str]] = {
    "quantity-text": ("resources", {"kind": "vehicle", "name": "Unit 1", "quantity": "3"}, "quantity"),
    "unknown-field": ("resources", {"kind": "vehicle", "name": "Unit 1", "colour": "red"}, "colour"),
    "empty-name": ("resources", {"kind": "vehicle", "name": ""}, "name"),
    "bad-kind": ("resources", {"kind": "car", "name": "Unit 1"}, "kind"),
    "bad-status": ("resources", {"kind": "vehicle", "name": "Unit 1", "status": "broken"}, "status"),
    "no-kind": ("resources", {"name": "Unit 1"}, "kind"),
    "bad-email": ("contacts", {"name": "Lt. Park", "role": "liaison", "email": "not an address"}, "email"),
    "bad-role": ("contacts", {"name": "Lt. Park", "role": "mayor"}, "role"),
}
INVALID_UPDATES: dict[str, tuple[dict[str, Any], str]] = {
    "quantity-text": ({"quantity": "3"}, "quantity"),
    "bad-status": ({"status": "lost"}, "status"),
    "empty-name": ({"name": ""}, "name"),
    "unknown-field": ({"wheels": 4}, "wheels"),
}


def test_invalid_values_are_refused_by_field_and_nothing_is_written(laptop: MakeLaptop) -> None:
    lee = laptop()
    record = edits.create(lee.device, "resources", dict(VEHICLE))  # something already in the feed
    before = footprint(lee)
    for case, (collection, values, field) in INVALID_CREATES.items():
        with pytest.raises(EditRefused) as refused:
            edits.create(lee.device, collection, values)
        assert field in refused.value.messages, (case, refused.value.messages)
        assert footprint(lee) == before, case
    for case, (values, field) in INVALID_UPDATES.items():
        with pytest.raises(EditRefused) as refused:
            edits.update(lee.device, record["id"], values)
        assert field in refused.value.messages, (case, refused.value.messages)
        assert footprint(lee) == before, case
    assert lee.replica.get("seq") == 1


def test_empty_update_and_edits_of_deleted_records_are_refused(laptop: MakeLaptop) -> None:
    lee = laptop()
    created = edits.create(lee.device, "resources", dict(VEHICLE))
    with pytest.raises(EditRefused, match="nothing to change"):
        edits.update(lee.device, created["id"], {})
    edits.delete(lee.device, created["id"])
    before = footprint(lee)
    with pytest.raises(EditRefused, match="deleted"):
        edits.update(lee.device, created["id"], {"status": "deployed"})
    with pytest.raises(EditRefused, match="already deleted"):
        edits.delete(lee.device, created["id"])
    assert footprint(lee) == before


def test_unknown_records_are_not_found(laptop: MakeLaptop) -> None:
    lee = laptop()
    before = footprint(lee)
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(RecordNotFound) as caught:
        edits.update(lee.device, missing, {"status": "deployed"})
    assert caught.value.record_id == missing
    with pytest.raises(RecordNotFound):
        edits.delete(lee.device, missing)
    assert footprint(lee) == before


@pytest.fixture
def shared(laptop: MakeLaptop, hub: Any) -> tuple[Laptop, Laptop, dict[str, Any]]:
    """SPD's laptop with a vehicle SPD shares with CSO, and CSO's laptop that pulled it."""
    lee = laptop("SPD", "Sgt. Lee")
    kim = laptop("CSO", "Dep. Kim")
    hub.agreement("SPD", "CSO", ["resources"], write=["status"])
    vehicle = edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()
    kim.sync()
    assert kim.record(vehicle["id"]) is not None
    return lee, kim, vehicle


def test_deleting_another_agencys_record_is_refused(shared: tuple[Laptop, Laptop, dict[str, Any]]) -> None:
    _, kim, vehicle = shared
    before = footprint(kim)
    with pytest.raises(EditRefused, match="only SPD"):
        edits.delete(kim.device, vehicle["id"])
    assert footprint(kim) == before
    assert kim.record(vehicle["id"])["deleted"] is False  # type: ignore[index]


def test_booking_ones_own_resource_is_approved_at_once(laptop: MakeLaptop) -> None:
    lee = laptop()
    vehicle = edits.create(lee.device, "resources", dict(VEHICLE))
    booking = edits.create(lee.device, "reservations", {"resource_id": vehicle["id"], **RESERVATION})
    assert booking["state"] == "approved"
    assert booking["agency"] == "SPD"
    assert json.loads(outbox(lee)[-1]["wire"])["collection"] == "reservations"


def test_booking_another_agencys_resource_is_requested(shared: tuple[Laptop, Laptop, dict[str, Any]]) -> None:
    _, kim, vehicle = shared
    booking = edits.create(kim.device, "reservations", {"resource_id": vehicle["id"], **RESERVATION})
    assert booking["state"] == "requested"
    assert booking["agency"] == "CSO"  # a reservation belongs to the agency that asks
    before = footprint(kim)
    for asked in ("approved", "declined"):
        with pytest.raises(EditRefused) as refused:
            edits.create(kim.device, "reservations", {"resource_id": vehicle["id"], **RESERVATION, "state": asked})
        assert "state" in refused.value.messages
    assert footprint(kim) == before
    cancelled = edits.create(
        kim.device, "reservations", {"resource_id": vehicle["id"], **RESERVATION, "state": "cancelled"}
    )
    assert cancelled["state"] == "cancelled"


@pytest.mark.parametrize(
    "values",
    [
        {"resource_id": "00000000-0000-4000-8000-000000000000", **RESERVATION},
        {**RESERVATION},
    ],
    ids=["unknown-resource", "no-resource"],
)
def test_booking_a_resource_this_laptop_does_not_hold_is_refused(laptop: MakeLaptop, values: dict[str, Any]) -> None:
    lee = laptop()
    before = footprint(lee)
    with pytest.raises(EditRefused) as refused:
        edits.create(lee.device, "reservations", values)
    assert "resource_id" in refused.value.messages
    assert footprint(lee) == before


def test_booking_that_ends_before_it_starts_is_refused(laptop: MakeLaptop) -> None:
    lee = laptop()
    vehicle = edits.create(lee.device, "resources", dict(VEHICLE))
    before = footprint(lee)
    with pytest.raises(EditRefused):
        edits.create(
            lee.device,
            "reservations",
            {"resource_id": vehicle["id"], "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"},
        )
    assert footprint(lee) == before
    booking = edits.create(lee.device, "reservations", {"resource_id": vehicle["id"], **RESERVATION})
    before = footprint(lee)
    with pytest.raises(EditRefused) as refused:
        edits.update(lee.device, booking["id"], {"ends_at": "2030-11-23T07:00:00Z"})
    assert "ends_at" in refused.value.messages
    assert footprint(lee) == before


def test_overlapping_approved_bookings_are_recorded_as_double_bookings(laptop: MakeLaptop) -> None:
    lee = laptop()
    vehicle = edits.create(lee.device, "resources", dict(VEHICLE))
    edits.create(lee.device, "reservations", {"resource_id": vehicle["id"], **RESERVATION})
    assert lee.count("double_bookings") == 0
    edits.create(
        lee.device,
        "reservations",
        {"resource_id": vehicle["id"], "starts_at": "2030-11-23T11:00:00Z", "ends_at": "2030-11-23T13:00:00Z"},
    )
    [found] = lee.replica.rows("SELECT resource_id, overlap_start, overlap_end FROM double_bookings")
    assert found == {
        "resource_id": vehicle["id"],
        "overlap_start": "2030-11-23T11:00:00Z",
        "overlap_end": "2030-11-23T12:00:00Z",
    }


# -- crash safety ----------------------------------------------------------------------------------


class Crash(Exception):
    pass


class CrashingConnection:
    """The replica's connection, except that the first statement matching ``when`` dies."""

    def __init__(self, conn: Any, when: Callable[[str, tuple[Any, ...]], bool]) -> None:
        self._conn, self._when, self.crashed = conn, when, False

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        if not self.crashed and self._when(sql, params):
            self.crashed = True
            raise Crash(sql)
        return self._conn.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


CRASH_POINTS: dict[str, Callable[[str, tuple[Any, ...]], bool]] = {
    "keep-change": lambda sql, p: "INTO changes" in sql,
    "store-record": lambda sql, p: "INTO records" in sql,
    "outbox": lambda sql, p: "INTO outbox" in sql,
    "meta-seq": lambda sql, p: "INTO meta" in sql and p[:1] == ("seq",),
    "meta-clock": lambda sql, p: "INTO meta" in sql and p[:1] == ("clock",),  # the very last write
}


@pytest.mark.parametrize("edit", ["create", "update", "delete"])
def test_a_crash_inside_an_edit_leaves_no_partial_write(laptop: MakeLaptop, edit: str) -> None:
    lee = laptop()
    record = edits.create(lee.device, "resources", dict(VEHICLE))
    before = footprint(lee)
    real = lee.replica.conn
    for point, when in CRASH_POINTS.items():
        crashing = CrashingConnection(real, when)
        lee.replica.conn = crashing  # type: ignore[assignment]
        try:
            with pytest.raises(Crash):
                if edit == "create":
                    edits.create(lee.device, "resources", {"kind": "equipment", "name": "Radio"})
                elif edit == "update":
                    edits.update(lee.device, record["id"], {"status": "deployed"})
                else:
                    edits.delete(lee.device, record["id"])
        finally:
            lee.replica.conn = real
        assert crashing.crashed, point
        assert not real.in_transaction, point
        assert footprint(lee) == before, point
    lee.reopen()  # what a restarted laptop sees
    assert footprint(lee) == before
    edits.update(lee.device, record["id"], {"status": "maintenance"})  # the next edit takes the next seq
    wires = [json.loads(r["wire"]) for r in outbox(lee)]
    assert [w["seq"] for w in wires] == [1, 2]
    assert wires[1]["prev"] == change_hash(wires[0])


def test_a_crash_in_the_local_merge_leaves_no_partial_write(
    laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    lee = laptop()
    edits.create(lee.device, "resources", dict(VEHICLE))
    before = footprint(lee)

    def crash(*args: Any, **kwargs: Any) -> str:
        raise Crash("power lost during the merge")

    monkeypatch.setattr(state, "apply_change", crash)  # the one patch of project code: inject a crash
    with pytest.raises(Crash):
        edits.create(lee.device, "resources", {"kind": "equipment", "name": "Radio"})
    monkeypatch.undo()
    assert footprint(lee) == before
    assert lee.replica.get("seq") == 1
    assert not re.search("Radio", json.dumps(lee.replica.rows("SELECT wire FROM changes")))
