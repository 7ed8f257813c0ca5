"""What command staff review: field conflicts (pairs) and double bookings."""

from __future__ import annotations

from itertools import combinations, permutations
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import withhold
from sync import DELETED, DoubleBooking, Version, find_double_bookings
from sync.conflicts import in_conflict, same_value

from .helpers import Agency, Device, deliver, new_id, replay, reservation_rows, sync_all, sync_pair

UNIT = {"kind": "vehicle", "name": "Unit 12", "status": "available"}


@pytest.fixture
def officers() -> tuple[Device, Device, Device]:
    spd = Agency.create("SPD")
    return spd.device("alice"), spd.device("bob"), spd.device("carol")


def shared_unit(*devices: Device) -> str:
    created = devices[0].create("resources", UNIT)
    for other in devices[1:]:
        deliver(devices[0], other)
    return created.record_id


def pairs(conflicts: dict[str, Any]) -> set[tuple[str, str, str]]:
    """Each conflict as (field, loser change id, winner change id)."""
    return {(c.field, c.loser.change_id, c.winner.change_id) for c in conflicts.values()}


# -- field conflicts -----------------------------------------------------
def test_concurrent_edits_with_different_values_are_one_conflict(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    a = alice.edit(rid, {"status": "deployed"})
    b = bob.edit(rid, {"status": "maintenance"})
    sync_pair(alice, bob)
    assert alice.conflicts == bob.conflicts
    (conflict,) = alice.conflicts.values()
    assert (conflict.collection, conflict.record_id, conflict.field) == ("resources", rid, "status")
    assert (conflict.winner.change_id, conflict.winner.value, conflict.winner.device) == (b.id, "maintenance", bob.id)
    assert (conflict.loser.change_id, conflict.loser.value, conflict.loser.device) == (a.id, "deployed", alice.id)
    assert (conflict.winner.hlc, conflict.loser.hlc) == (b.hlc, a.hlc)
    assert conflict.id == f"{rid}/status/{a.id}/{b.id}"
    assert alice.values(rid)["status"] == "maintenance", "the later one still wins"


def test_the_conflict_is_reported_by_the_outcome_that_completes_the_pair(
    officers: tuple[Device, Device, Device],
) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    a = alice.edit(rid, {"status": "deployed"})
    b = bob.edit(rid, {"status": "maintenance"})
    (outcome,) = alice.receive([b])
    assert [(c.loser.change_id, c.winner.change_id) for c in outcome.conflicts] == [(a.id, b.id)]
    (outcome,) = bob.receive([a])  # the older one arriving second finds the same pair
    assert [(c.loser.change_id, c.winner.change_id) for c in outcome.conflicts] == [(a.id, b.id)]


def test_concurrent_edits_with_the_same_value_are_not_a_conflict(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    alice.edit(rid, {"status": "deployed", "quantity": 2})
    bob.edit(rid, {"status": "deployed", "quantity": 2})
    sync_pair(alice, bob)
    assert alice.conflicts == bob.conflicts == {}


def test_nested_values_are_compared_as_json(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    alice.edit(rid, {"location": {"text": "Depot", "lat": 1, "lon": 2.5}})
    bob.edit(rid, {"location": {"lon": 2.5, "lat": 1.0, "text": "Depot"}})  # same JSON, other spelling
    a = alice.edit(rid, {"notes": None})
    b = bob.edit(rid, {"notes": "null"})
    sync_pair(alice, bob)
    assert pairs(alice.conflicts) == {("notes", a.id, b.id)}


@pytest.mark.parametrize(
    ("x", "y", "same"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (False, 0, False),
        ("1", 1, False),
        (None, None, True),
        (None, "", False),
        ({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1.0}, True),
        ([1, 2], [2, 1], False),
    ],
)
def test_values_are_the_same_exactly_when_their_json_is(x: Any, y: Any, same: bool) -> None:
    earlier = Version("0000000000000001-000000-a", "a", "c1", None, x)
    later = Version("0000000000000002-000000-b", "b", "c2", None, y)
    assert same_value(earlier, later) is same
    assert in_conflict(earlier, later) is (not same)
    hidden = later._replace(value=None, digest="d" * 43)
    assert same_value(earlier, hidden) is None
    assert in_conflict(earlier, hidden) is False


def test_an_edit_that_saw_the_other_is_not_a_conflict(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    alice.edit(rid, {"status": "deployed"})
    deliver(alice, bob)
    bob.edit(rid, {"status": "maintenance"})
    sync_pair(alice, bob)
    assert alice.conflicts == bob.conflicts == {}


def test_one_device_overwriting_itself_is_not_a_conflict(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    first = alice.edit(rid, {"status": "deployed"})
    # even with a stale base, a device cannot be in conflict with itself
    alice.edit(rid, {"status": "maintenance"}, seen={"status": first.base["status"]})
    sync_pair(alice, bob)
    assert alice.conflicts == bob.conflicts == {}


def test_three_concurrent_writers_make_every_pair(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, carol = officers
    rid = shared_unit(alice, bob, carol)
    a = alice.edit(rid, {"status": "deployed"})
    b = bob.edit(rid, {"status": "maintenance"})
    c = carol.edit(rid, {"status": "out_of_service"})
    expected = {("status", a.id, b.id), ("status", a.id, c.id), ("status", b.id, c.id)}
    for order in permutations([a, b, c]):
        state = replay([alice.made[0], *order])
        assert pairs(state.conflicts) == expected
        assert state.records[rid].values()["status"] == "out_of_service"


def test_three_writers_two_agreeing_make_only_the_disagreeing_pairs(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, carol = officers
    rid = shared_unit(alice, bob, carol)
    a = alice.edit(rid, {"status": "deployed"})
    b = bob.edit(rid, {"status": "maintenance"})
    c = carol.edit(rid, {"status": "deployed"})
    sync_all(alice, bob, carol)
    assert pairs(alice.conflicts) == {("status", a.id, b.id), ("status", b.id, c.id)}
    assert alice.conflicts == bob.conflicts == carol.conflicts


def test_a_writer_who_saw_one_of_two_conflicts_only_with_the_unseen_one(
    officers: tuple[Device, Device, Device],
) -> None:
    alice, bob, carol = officers
    rid = shared_unit(alice, bob, carol)
    a = alice.edit(rid, {"status": "deployed"})
    b = bob.edit(rid, {"status": "maintenance"})
    deliver(alice, carol)  # carol saw alice's edit, not bob's
    c = carol.edit(rid, {"status": "out_of_service"})
    sync_all(alice, bob, carol)
    assert pairs(carol.conflicts) == {("status", a.id, b.id), ("status", b.id, c.id)}
    assert alice.conflicts == bob.conflicts == carol.conflicts


def test_a_hub_resolution_that_saw_both_sides_settles_the_field(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    alice.edit(rid, {"status": "deployed"})
    bob.edit(rid, {"status": "maintenance"})
    sync_pair(alice, bob)
    before = dict(alice.conflicts)
    resolution = alice.network.hub_wire(
        collection="resources",
        record_id=rid,
        agency="SPD",
        values={"status": "deployed"},
        seen=alice.record(rid).seen(),
    )
    change = alice.network.verify(resolution)
    sync_pair(alice, bob)
    alice.receive([change])
    bob.receive([change])
    assert alice.conflicts == bob.conflicts == before, "the resolution adds no conflict"
    assert alice.values(rid)["status"] == bob.values(rid)["status"] == "deployed"


@pytest.mark.parametrize("withheld_side", ["earlier", "later", "both"])
def test_a_withheld_value_is_not_reported_as_a_conflict(
    officers: tuple[Device, Device, Device], withheld_side: str
) -> None:
    alice, bob, carol = officers
    rid = shared_unit(alice, bob, carol)
    a = alice.edit(rid, {"notes": "informant at 5th and Main"})
    b = bob.edit(rid, {"notes": "informant moved"})
    network = alice.network
    hide = {"earlier": {a.id}, "later": {b.id}, "both": {a.id, b.id}}[withheld_side]
    sent = [network.verify(withhold(dict(c.wire), {"notes"})) if c.id in hide else c for c in (a, b)]
    assert all(("notes" in c.withheld) == (c.id in hide) for c in sent)
    carol.receive(sent)
    assert carol.conflicts == {}
    # control: the hub, which sees both values, does report it
    hub_view = replay([alice.made[0], a, b])
    assert pairs(hub_view.conflicts) == {("notes", a.id, b.id)}


def test_conflicts_do_not_depend_on_arrival_order(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, carol = officers
    rid = shared_unit(alice, bob, carol)
    changes = [alice.made[0]]
    changes.append(alice.edit(rid, {"status": "deployed", "notes": "a"}))
    changes.append(bob.edit(rid, {"status": "maintenance"}))
    changes.append(carol.delete(rid))
    changes.append(bob.edit(rid, {"notes": "b"}))
    reference = replay(changes).conflicts
    assert len(reference) >= 3
    for order in permutations(changes):
        assert replay(order).conflicts == reference


# -- double bookings -----------------------------------------------------
def booking(rid: str, resource: str, start: str, end: str, state: str = "approved", deleted: bool = False) -> dict:
    day = "2026-11-22T"
    return {
        "id": rid,
        "resource_id": resource,
        "starts_at": f"{day}{start}:00Z",
        "ends_at": f"{day}{end}:00Z",
        "state": state,
        "deleted": deleted,
    }


def test_two_overlapping_approved_reservations_are_one_double_booking() -> None:
    found = find_double_bookings([booking("r2", "car", "09:00", "12:00"), booking("r1", "car", "08:00", "10:00")])
    assert found == [DoubleBooking("car", "r1", "r2", "2026-11-22T09:00:00Z", "2026-11-22T10:00:00Z")]
    assert found[0].id == "car/r1/r2"


def test_a_reservation_inside_another_overlaps_for_its_whole_length() -> None:
    found = find_double_bookings([booking("a", "car", "08:00", "18:00"), booking("b", "car", "10:00", "11:00")])
    assert [(f.overlap_start, f.overlap_end) for f in found] == [("2026-11-22T10:00:00Z", "2026-11-22T11:00:00Z")]


@pytest.mark.parametrize(
    "other",
    [
        booking("b", "car", "10:00", "12:00"),  # touching ends do not overlap
        booking("b", "van", "09:00", "12:00"),  # another resource
        booking("b", "car", "09:00", "12:00", state="requested"),
        booking("b", "car", "09:00", "12:00", state="declined"),
        booking("b", "car", "09:00", "12:00", state="cancelled"),
        booking("b", "car", "09:00", "12:00", deleted=True),
        {"id": "b", "resource_id": "car", "state": "approved", "deleted": False},  # times withheld
    ],
)
def test_no_double_booking(other: dict) -> None:
    assert find_double_bookings([booking("a", "car", "08:00", "10:00"), other]) == []


def test_three_overlapping_reservations_are_three_pairs() -> None:
    found = find_double_bookings(
        [
            booking("c", "car", "11:00", "13:00"),
            booking("a", "car", "08:00", "12:00"),
            booking("b", "car", "09:00", "14:00"),
            booking("d", "car", "13:00", "15:00"),  # touches c, overlaps b
        ]
    )
    assert {(f.first, f.second, f.overlap_start[11:16], f.overlap_end[11:16]) for f in found} == {
        ("a", "b", "09:00", "12:00"),
        ("a", "c", "11:00", "12:00"),
        ("b", "c", "11:00", "13:00"),
        ("b", "d", "13:00", "14:00"),
    }
    assert found == sorted(found)


spans = st.lists(
    st.tuples(
        st.sampled_from(["car", "van"]),
        st.integers(0, 20),
        st.integers(1, 6),
        st.sampled_from(["approved", "approved", "requested"]),
        st.booleans(),
    ),
    max_size=10,
)


@settings(max_examples=200, deadline=None)
@given(spans)
def test_double_bookings_match_a_brute_force_check(items: list[tuple[str, int, int, str, bool]]) -> None:
    rows = [
        booking(f"r{i:02d}", res, f"{start:02d}:00", f"{start + length:02d}:00", state, deleted)
        for i, (res, start, length, state, deleted) in enumerate(items)
    ]
    expected = set()
    live = [r for r in rows if r["state"] == "approved" and not r["deleted"]]
    for x, y in combinations(live, 2):
        if x["resource_id"] == y["resource_id"] and x["starts_at"] < y["ends_at"] and y["starts_at"] < x["ends_at"]:
            first, second = sorted((x["id"], y["id"]))
            window = (max(x["starts_at"], y["starts_at"]), min(x["ends_at"], y["ends_at"]))
            expected.add((x["resource_id"], first, second, *window))
    found = find_double_bookings(rows)
    assert len(found) == len(expected), "each pair once"
    assert {(f.resource_id, f.first, f.second, f.overlap_start, f.overlap_end) for f in found} == expected


def test_two_offline_officers_double_book_a_vehicle() -> None:
    spd = Agency.create("SPD")
    alice, bob = spd.device("alice"), spd.device("bob")
    car = new_id()
    parade = alice.create(
        "reservations",
        {
            "resource_id": car,
            "starts_at": "2026-11-22T08:00:00Z",
            "ends_at": "2026-11-22T12:00:00Z",
            "state": "approved",
        },
    )
    escort = bob.create(
        "reservations",
        {
            "resource_id": car,
            "starts_at": "2026-11-22T11:00:00Z",
            "ends_at": "2026-11-22T14:00:00Z",
            "state": "requested",
        },
    )
    assert find_double_bookings(reservation_rows(alice.state)) == []
    bob.edit(escort.record_id, {"state": "approved"})
    sync_pair(alice, bob)
    first, second = sorted((parade.record_id, escort.record_id))
    expected = [DoubleBooking(car, first, second, "2026-11-22T11:00:00Z", "2026-11-22T12:00:00Z")]
    assert find_double_bookings(reservation_rows(alice.state)) == expected
    assert find_double_bookings(reservation_rows(bob.state)) == expected
    alice.edit(parade.record_id, {"state": "cancelled"})
    sync_pair(alice, bob)
    assert find_double_bookings(reservation_rows(bob.state)) == []


def test_deleted_field_conflict_is_a_pair_like_any_other(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    tomb = alice.delete(rid)
    edit = bob.edit(rid, {"notes": "still here"})
    sync_pair(alice, bob)
    assert pairs(alice.conflicts) == {(DELETED, tomb.id, edit.id)}
