"""The merge engine: per-field last-writer-wins, tombstones, duplicates, refusals, history."""

from __future__ import annotations

import copy

import pytest

from crypto import field_digest, withhold
from sync import DELETED, ChangeRejected, MergeState, RecordState, SyncError, apply, make_change

from .helpers import HOUR_MS, T0_MS, Agency, Device, deliver, fixed_id, hlc_text, replay, sync_all, sync_pair

UNIT = {"kind": "vehicle", "name": "Unit 12", "status": "available", "quantity": 1}


@pytest.fixture
def spd() -> Agency:
    return Agency.create("SPD")


@pytest.fixture
def officers(spd: Agency) -> tuple[Device, Device, Device]:
    return spd.device("alice"), spd.device("bob"), spd.device("carol")


def shared_unit(*devices: Device) -> str:
    """The first device creates Unit 12 and every other device receives it."""
    created = devices[0].create("resources", UNIT)
    for other in devices[1:]:
        deliver(devices[0], other)
    return created.record_id


# -- last writer wins, per field ----------------------------------------
def test_a_sequential_edit_replaces_the_value(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    bob.edit(rid, {"status": "deployed"})
    sync_pair(alice, bob)
    assert alice.values(rid) == bob.values(rid) == {**UNIT, "status": "deployed"}


def test_concurrent_edits_of_different_fields_both_survive(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    alice.edit(rid, {"status": "deployed"})
    bob.edit(rid, {"quantity": 2, "notes": "spare tyre"})
    sync_pair(alice, bob)
    expected = {**UNIT, "status": "deployed", "quantity": 2, "notes": "spare tyre"}
    assert alice.values(rid) == bob.values(rid) == expected
    assert alice.conflicts == bob.conflicts == {}


def test_per_field_the_greatest_hlc_wins(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, carol = officers
    rid = shared_unit(alice, bob, carol)
    a = alice.edit(rid, {"status": "deployed", "notes": "from alice"})
    b = bob.edit(rid, {"status": "maintenance"})  # later, concurrent
    assert a.hlc < b.hlc
    sync_all(alice, bob, carol)
    for replica in officers:
        assert replica.values(rid)["status"] == "maintenance"
        assert replica.values(rid)["notes"] == "from alice"
        assert replica.record(rid).winner("status").change_id == b.id


@pytest.mark.parametrize("concurrent", [True, False])
def test_a_late_arriving_older_change_never_replaces_a_newer_value(
    officers: tuple[Device, Device, Device], concurrent: bool
) -> None:
    alice, bob, carol = officers
    rid = shared_unit(alice, bob, carol)
    older = alice.edit(rid, {"status": "deployed"})
    if not concurrent:
        deliver(alice, bob)
    newer = bob.edit(rid, {"status": "maintenance"})
    carol.receive([newer])
    outcome = carol.receive([older])[0]
    assert outcome.status == "applied"
    assert carol.values(rid)["status"] == "maintenance"
    assert carol.record(rid).winner("status").change_id == newer.id


def test_a_slow_laptop_that_saw_the_newest_value_still_writes_after_it(spd: Agency) -> None:
    alice, slow = spd.device("alice"), spd.device("bob", skew_ms=-HOUR_MS)
    rid = shared_unit(alice, slow)
    a = alice.edit(rid, {"status": "deployed"})
    deliver(alice, slow)
    b = slow.edit(rid, {"status": "available"})
    assert b.hlc > a.hlc, "observing alice's clock pulled the slow laptop's clock forward"
    sync_pair(alice, slow)
    assert alice.values(rid)["status"] == slow.values(rid)["status"] == "available"
    assert alice.conflicts == {}


def test_equal_clocks_are_broken_by_device_the_same_way_everywhere(spd: Agency) -> None:
    """Fixed ids, so the example never passes by luck: alice's device id is the greater, her change
    id and her value the smaller; the greater device wins in every order of arrival."""
    alice, bob = spd.device("alice", device_id=fixed_id(2, 1)), spd.device("bob", device_id=fixed_id(1, 1))
    rid = shared_unit(alice, bob)
    same = hlc_text(T0_MS + HOUR_MS, 0, "same-node")  # forged: two devices, one clock text
    a = alice.edit(rid, {"notes": "alice"}, hlc=same, change_id=fixed_id(1, 3))
    b = bob.edit(rid, {"notes": "bob"}, hlc=same, change_id=fixed_id(2, 3))
    assert a.device > b.device and a.id < b.id and a.values["notes"] < b.values["notes"]
    create = alice.made[0]
    for order in ([create, a, b], [create, b, a], [b, create, a]):
        state = replay(order)
        assert state.records[rid].values()["notes"] == "alice"
        assert state.records[rid].winner("notes").change_id == a.id


def test_equal_clock_and_device_are_broken_by_change_id(spd: Agency) -> None:
    """Fixed ids: the first change signed has the greater id and the smaller value, and wins."""
    alice = spd.device("alice")
    rid = shared_unit(alice)
    same = hlc_text(T0_MS + HOUR_MS, 0, alice.id)
    one = alice.sign("resources", rid, {"notes": "one"}, hlc=same, seen={}, change_id=fixed_id(2, 3))
    two = alice.sign("resources", rid, {"notes": "two"}, hlc=same, seen={}, change_id=fixed_id(1, 3))
    assert one.id > two.id and one.seq < two.seq and one.values["notes"] < two.values["notes"]
    create = alice.made[0]
    for order in ([create, one, two], [create, two, one], [two, one, create]):
        state = replay(order)
        assert state.records[rid].values()["notes"] == "one"
        assert state.records[rid].winner("notes").change_id == one.id


# -- duplicates ----------------------------------------------------------
def test_a_duplicate_is_a_no_op(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    edit = alice.edit(rid, {"status": "deployed"})
    deliver(alice, bob)
    record, history, conflicts = bob.record(rid), list(bob.state.history), dict(bob.conflicts)
    outcome = bob.state.apply(edit)
    assert outcome.status == "duplicate"
    assert outcome.conflicts == ()
    assert outcome.record == record
    assert bob.record(rid) == record
    assert bob.state.history == history
    assert bob.conflicts == conflicts


def test_a_duplicate_of_a_losing_change_is_still_a_duplicate(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    loser = alice.edit(rid, {"status": "deployed"})
    bob.edit(rid, {"status": "maintenance"})
    sync_pair(alice, bob)
    assert bob.record(rid).winner("status").change_id != loser.id
    assert apply(bob.record(rid), loser).status == "duplicate"


# -- refusals ------------------------------------------------------------
def test_a_change_naming_another_owning_agency_is_refused(spd: Agency) -> None:
    alice = spd.device("alice")
    rid = shared_unit(alice)
    fpd = Agency.create("FPD", network=spd.network).device("frank")
    stray = fpd.sign("resources", rid, {"status": "deployed"})  # FPD never saw the record
    assert stray.agency == "FPD"
    before = (alice.record(rid), list(alice.state.history))
    with pytest.raises(ChangeRejected) as info:
        alice.state.apply(stray)
    assert info.value.change_id == stray.id
    assert "SPD" in info.value.reason and "FPD" in info.value.reason
    assert isinstance(info.value, SyncError)
    assert (alice.record(rid), alice.state.history) == before


def test_another_agency_may_write_the_owners_record_in_the_owners_name(spd: Agency) -> None:
    # a granted write (an agreement): the change names the record's owner
    alice = spd.device("alice")
    rid = shared_unit(alice)
    fpd = Agency.create("FPD", network=spd.network).device("frank")
    deliver(alice, fpd)
    borrowed = fpd.edit(rid, {"status": "deployed"})
    assert borrowed.agency == "SPD"
    alice.receive([borrowed])
    assert alice.values(rid)["status"] == "deployed"
    assert alice.record(rid).agency == "SPD"


def test_a_change_for_another_collection_is_refused(spd: Agency) -> None:
    alice = spd.device("alice")
    rid = shared_unit(alice)
    wrong = alice.sign("contacts", rid, {"name": "Dana"})
    with pytest.raises(ChangeRejected, match="not a contacts record") as info:
        apply(alice.record(rid), wrong)
    assert info.value.change_id == wrong.id


def test_the_first_change_of_a_record_sets_its_owner_and_collection(spd: Agency) -> None:
    alice = spd.device("alice")
    created = alice.create("contacts", {"name": "Dana", "role": "liaison"})
    outcome = apply(None, created)
    assert outcome.status == "applied"
    assert (outcome.record.collection, outcome.record.record_id, outcome.record.agency) == (
        "contacts",
        created.record_id,
        "SPD",
    )


# -- tombstones ----------------------------------------------------------
def test_a_delete_is_a_tombstone_that_keeps_the_record(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    tomb = alice.delete(rid)
    deliver(alice, bob)
    assert tomb.deleted and tomb.values == {}
    row = bob.view()[rid]
    assert row["deleted"] is True
    assert bob.record(rid).deleted
    assert bob.conflicts == {}, "a delete that saw everything is not a conflict"


def test_a_delete_carries_no_values(spd: Agency) -> None:
    alice = spd.device()
    with pytest.raises(ValueError, match="no values"):
        make_change(
            alice.key,
            collection="resources",
            record_id="0b0c3e51-3e3a-4d43-9d8c-6d2b8f1a2c11",
            agency="SPD",
            device=alice.id,
            seq=1,
            prev=None,
            hlc=hlc_text(T0_MS, 0, alice.id),
            values={"status": "deployed"},
            seen={},
            deleted=True,
        )


def test_every_change_writes_deleted_and_its_base(officers: tuple[Device, Device, Device]) -> None:
    alice, _, _ = officers
    rid = shared_unit(alice)
    create = alice.made[0]
    edit = alice.edit(rid, {"status": "deployed"})
    tomb = alice.delete(rid)
    assert create.written()[-1] == DELETED and create.base[DELETED] is None
    assert edit.base == {"status": create.hlc, DELETED: create.hlc}
    assert tomb.base == {DELETED: edit.hlc}
    assert [v.value for v in alice.record(rid).history[DELETED]] == [False, False, True]


def test_delete_then_a_concurrent_later_edit_conflicts_and_the_edit_wins(
    officers: tuple[Device, Device, Device],
) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    tomb = alice.delete(rid)
    edit = bob.edit(rid, {"status": "deployed"})  # bob had not seen the delete
    assert tomb.hlc < edit.hlc
    sync_pair(alice, bob)
    for replica in (alice, bob):
        assert not replica.record(rid).deleted
        assert replica.values(rid)["status"] == "deployed"
        (conflict,) = replica.conflicts.values()
        assert conflict.field == DELETED
        assert (conflict.winner.change_id, conflict.loser.change_id) == (edit.id, tomb.id)
        assert (conflict.winner.value, conflict.loser.value) == (False, True)
    assert alice.conflicts == bob.conflicts


def test_edit_then_a_concurrent_later_delete_conflicts_and_the_delete_wins(
    officers: tuple[Device, Device, Device],
) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    edit = bob.edit(rid, {"status": "deployed"})
    tomb = alice.delete(rid)  # alice had not seen the edit
    sync_pair(alice, bob)
    for replica in (alice, bob):
        assert replica.record(rid).deleted
        (conflict,) = replica.conflicts.values()
        assert conflict.field == DELETED
        assert (conflict.winner.change_id, conflict.loser.change_id) == (tomb.id, edit.id)


def test_an_edit_that_saw_the_delete_revives_the_record_without_a_conflict(
    officers: tuple[Device, Device, Device],
) -> None:
    # protocol.md: the later of the two wins; base carries _deleted, so this is not concurrent
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    tomb = alice.delete(rid)
    deliver(alice, bob)
    assert bob.record(rid).deleted
    revive = bob.edit(rid, {"status": "available"})
    assert revive.base[DELETED] == tomb.hlc
    sync_pair(alice, bob)
    for replica in (alice, bob):
        assert not replica.record(rid).deleted
        assert replica.conflicts == {}


def test_a_delete_that_saw_the_edit_is_not_a_conflict(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    bob.edit(rid, {"status": "deployed"})
    deliver(bob, alice)
    alice.delete(rid)
    sync_pair(alice, bob)
    assert alice.record(rid).deleted and bob.record(rid).deleted
    assert alice.conflicts == bob.conflicts == {}


def test_two_concurrent_deletes_do_not_conflict(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    alice.delete(rid)
    bob.delete(rid)
    sync_pair(alice, bob)
    assert alice.record(rid).deleted and bob.record(rid).deleted
    assert alice.conflicts == {}


# -- history -------------------------------------------------------------
def test_every_applied_change_stays_in_history_in_clock_order(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, carol = officers
    rid = shared_unit(alice, bob, carol)
    made = [alice.made[0]]
    made.append(alice.edit(rid, {"status": "deployed"}))
    made.append(bob.edit(rid, {"status": "maintenance"}))  # concurrent: loses or wins, stays
    made.append(carol.delete(rid))
    made.append(bob.edit(rid, {"notes": "back"}))
    for order in (made, made[::-1], made[2:] + made[:2]):
        record = replay(order).records[rid]
        assert record.change_ids() == [c.id for c in sorted(made, key=lambda c: (c.hlc, c.device, c.id))]
        assert [v.change_id for v in record.history["status"]] == [made[0].id, made[1].id, made[2].id]
    assert record.changed_at == max(c.hlc for c in made)


def test_losing_versions_are_kept_with_their_provenance(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    a = alice.edit(rid, {"status": "deployed"})
    bob.edit(rid, {"status": "maintenance"})
    sync_pair(alice, bob)
    kept = {v.change_id: v for v in bob.record(rid).history["status"]}
    assert kept[a.id].value == "deployed"
    assert kept[a.id].device == alice.id
    assert kept[a.id].hlc == a.hlc
    assert a in bob.state.history


def test_seen_is_the_base_of_the_next_local_edit(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    a = alice.edit(rid, {"status": "deployed"})
    deliver(alice, bob)
    seen = bob.record(rid).seen()
    assert seen["status"] == a.hlc and seen[DELETED] == a.hlc and seen["name"] == alice.made[0].hlc
    b = bob.edit(rid, {"status": "available", "notes": "new"})
    assert b.base == {"status": a.hlc, "notes": None, DELETED: a.hlc}


# -- purity --------------------------------------------------------------
def test_apply_does_not_mutate_its_inputs(officers: tuple[Device, Device, Device]) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    alice.edit(rid, {"status": "deployed"})
    incoming = bob.sign("resources", rid, {"status": "maintenance", "quantity": 3})
    record = alice.record(rid)
    record_before = {name: tuple(vs) for name, vs in record.history.items()}
    change_before = copy.deepcopy(incoming)
    outcome = apply(record, incoming)
    assert outcome.status == "applied" and outcome.conflicts
    assert outcome.record is not record
    assert {name: tuple(vs) for name, vs in record.history.items()} == record_before
    assert incoming == change_before
    assert incoming.wire == change_before.wire
    assert alice.record(rid) is record
    assert outcome.record.winner("status").change_id == incoming.id


def test_a_record_state_is_frozen() -> None:
    record = RecordState("resources", "r", "SPD")
    with pytest.raises(AttributeError):
        record.agency = "FPD"  # type: ignore[misc]


# -- withheld values -----------------------------------------------------
def test_a_withheld_value_is_shown_as_its_digest_until_a_disclosed_one_wins(
    officers: tuple[Device, Device, Device],
) -> None:
    alice, bob, _ = officers
    rid = shared_unit(alice, bob)
    secret = alice.edit(rid, {"notes": "informant at 5th and Main", "status": "deployed"})
    reduced = bob.network.verify(withhold(dict(secret.wire), {"notes"}))
    bob.receive([reduced])
    entry = secret.wire["fields"]["notes"]
    assert "notes" not in bob.values(rid)
    assert bob.values(rid)["status"] == "deployed"
    assert bob.record(rid).withheld() == {"notes": field_digest(entry["salt"], entry["value"])}
    later = alice.edit(rid, {"notes": "moved"})
    bob.receive([later])
    assert bob.values(rid)["notes"] == "moved"
    assert bob.record(rid).withheld() == {}


def test_merge_state_applies_and_views(officers: tuple[Device, Device, Device]) -> None:
    alice, _, _ = officers
    rid = shared_unit(alice)
    alice.edit(rid, {"quantity": 4})
    state = MergeState()
    state.apply_all(alice.made)
    assert state.view() == {rid: {"collection": "resources", "agency": "SPD", "deleted": False, **UNIT, "quantity": 4}}
    assert [c.id for c in state.history] == [c.id for c in alice.made]
