"""The merge laws, as hypothesis properties (cr-sqlite's correctness checklist):

- replicas that exchanged the same changes, in any order, with any repeats and
  any partitions along the way, show the same records and the same conflicts,
  and lose no accepted change;
- apply is idempotent, commutative and associative;
- an older value never replaces a newer one: each field holds the value of the
  greatest (hlc, device) version written to it;
- ties break the same way everywhere;
- conflicts are exactly the pairs the rule in sync/conflicts.py names, each
  reported once.

Two sources of change sets: programs of officers editing offline on real,
signed feeds (``programs``), and hand-built changes crowded onto a few clock
values so that ties and odd bases are common (``raw_change_sets``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from crypto import canonical
from sync import DELETED, Change, MergeState, apply

from .helpers import (
    HOUR_MS,
    Agency,
    Device,
    Fingerprint,
    Network,
    copy_state,
    deliver,
    fixed_id,
    hlc_text,
    merged,
    replay,
)

MULTI_REPLICA = settings(max_examples=100, deadline=None)
#: the laws over both sources (half of them signed programs, ~20 ms each to play)
ALGEBRA = settings(max_examples=100, deadline=None)
CHEAP = settings(max_examples=200, deadline=None)

# -- officers' programs ---------------------------------------------------
FIELD_VALUES = {
    "status": st.sampled_from(["available", "deployed", "maintenance", "out_of_service"]),
    "name": st.sampled_from(["Unit 1", "Unit 2", "Unit 3"]),
    "quantity": st.integers(0, 3),
    "notes": st.sampled_from([None, "north", "south"]),
}
edits = st.lists(st.sampled_from(sorted(FIELD_VALUES)), min_size=1, max_size=3, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: FIELD_VALUES[name] for name in names})
)
MAX_DEVICES = 4
#: one shape for every step: (what, which laptop, which record or peer, values, wait ms)
operations = st.tuples(
    st.sampled_from(["edit"] * 5 + ["delete", "create", "send", "send", "wait"]),
    st.integers(0, MAX_DEVICES - 1),
    st.integers(0, 7),
    edits,
    st.integers(-5_000, 60_000),  # the wall clock may step back
)


def programs(max_ops: int = 40) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "devices": st.integers(3, MAX_DEVICES),
            "skews": st.lists(st.sampled_from([0, 0, 250, -250, HOUR_MS, -HOUR_MS]), min_size=4, max_size=4),
            "tick_ms": st.sampled_from([0, 1, 1000]),  # 0: every device's wall clock stands still
            "shared": st.integers(1, 3),  # vehicles every laptop holds before going offline
            "ops": st.lists(operations, min_size=10, max_size=max_ops),
        }
    )


def run(program: dict[str, Any]) -> list[Device]:
    """Play a program: officers of SPD (devices 0-2) and FPD (device 3) start
    from a few shared vehicles, then create, edit and delete offline, and now
    and then one laptop hands everything it holds to another. Record and device
    ids are fixed so that a run repeats exactly."""
    network = Network(tick_ms=program["tick_ms"])
    spd, fpd = Agency.create("SPD", network=network), Agency.create("FPD", network=network)
    devices = [
        (spd if i < 3 else fpd).device(f"officer {i}", skew_ms=program["skews"][i], device_id=fixed_id(i, 1))
        for i in range(program["devices"])
    ]
    records: list[str] = []

    def create(device: Device, values: dict[str, Any]) -> None:
        rid = fixed_id(len(records), 2)
        device.create("resources", {"kind": "vehicle", "name": "Unit", **values}, record_id=rid)
        records.append(rid)

    for _ in range(program["shared"]):
        create(devices[0], {})
    deliver(devices[0], *devices[1:])

    for kind, which, pick, values, wait_ms in program["ops"]:
        device = devices[which % len(devices)]
        if kind == "wait":
            network.wall.advance(wait_ms)
        elif kind == "create":
            create(device, values)
        elif kind == "send":
            target = devices[pick % len(devices)]
            if target is not device:
                deliver(device, target)
        else:
            known = [r for r in records if r in device.state.records]
            rid = known[pick % len(known)]
            if kind == "edit":
                device.edit(rid, values)
            else:
                device.delete(rid)
    return devices


def repeats_of(changes: Sequence[Change], max_size: int = 6) -> st.SearchStrategy[list[Change]]:
    """Some of ``changes`` again (a flaky link re-sends)."""
    return st.lists(st.sampled_from(changes), max_size=max_size) if changes else st.just([])


def made(devices: Sequence[Device]) -> list[Change]:
    return [c for d in devices for c in d.made]


program_change_sets = programs(25).map(lambda p: made(run(p)))

# -- hand-built changes, crowded onto few clocks --------------------------
RAW_DEVICES = ("d1", "d2", "d3")
RAW_CLOCKS = [hlc_text(ms, counter, node) for ms in (1, 2, 3) for counter in (0, 1) for node in RAW_DEVICES]
RAW_VALUES = st.sampled_from([None, 0, 1, 1.0, True, "a", "b", {"x": 1}, {"x": 1.0}])


@st.composite
def raw_change_sets(draw: st.DrawFn) -> list[Change]:
    """Unsigned changes with forced ties: one clock text from several devices,
    one (clock, device) for several change ids, bases that saw anything or nothing."""
    out = []
    for i in range(draw(st.integers(1, 12))):
        deleted = draw(st.integers(0, 4)) == 0
        names = [] if deleted else draw(st.lists(st.sampled_from(["status", "notes"]), unique=True, max_size=2))
        values, withheld = {}, {}
        for name in names:
            if draw(st.integers(0, 5)) == 0:
                withheld[name] = f"digest-{i}-{name}"
            else:
                values[name] = draw(RAW_VALUES)
        base = {n: draw(st.none() | st.sampled_from(RAW_CLOCKS)) for n in (*values, *withheld, DELETED)}
        out.append(
            Change(
                id=f"c{i:02d}",
                collection="resources",
                record_id=draw(st.sampled_from(["r1", "r2"])),
                agency="SPD",
                device=draw(st.sampled_from(RAW_DEVICES)),
                seq=i + 1,
                prev=None,
                hlc=draw(st.sampled_from(RAW_CLOCKS)),
                base=base,
                values=values,
                withheld=withheld,
                deleted=deleted,
                hash=f"h{i}",
                wire={},
            )
        )
    return out


change_sets = st.one_of(program_change_sets, raw_change_sets())


# -- oracles, written from the rules, not from the engine -----------------
def versions(changes: Sequence[Change]) -> dict[tuple[str, str], list[tuple[tuple[str, str, str], Change]]]:
    """(record, field) -> every (sort key, change) that wrote it."""
    out: dict[tuple[str, str], list[tuple[tuple[str, str, str], Change]]] = defaultdict(list)
    for change in {c.id: c for c in changes}.values():
        for name in (*change.values, *change.withheld, DELETED):
            out[change.record_id, name].append(((change.hlc, change.device, change.id), change))
    return out


def expected_conflicts(changes: Sequence[Change]) -> set[tuple[str, str, str, str]]:
    """(record, field, loser id, winner id) for every pair the documented rule names:
    two devices, different values, the later one's base older than the earlier one."""
    found = set()
    for (rid, name), written in versions(changes).items():
        ordered = [change for _, change in sorted(written, key=lambda kc: kc[0])]
        for earlier, later in combinations(ordered, 2):
            if earlier.device == later.device:
                continue
            base = later.base.get(name)
            if base is not None and base >= earlier.hlc:
                continue
            if name == DELETED:
                a, b = earlier.deleted, later.deleted
            elif name in earlier.withheld or name in later.withheld:
                continue
            else:
                a, b = earlier.values[name], later.values[name]
            if canonical(a) != canonical(b):
                found.add((rid, name, earlier.id, later.id))
    return found


def assert_latest_values(state: MergeState, changes: Sequence[Change]) -> None:
    """Each field shows the value of its greatest (hlc, device) version, and nothing else."""
    expected: dict[str, dict[str, Any]] = defaultdict(dict)
    hidden: dict[str, dict[str, str]] = defaultdict(dict)
    deleted: dict[str, bool] = {}
    for (rid, name), written in versions(changes).items():
        _, top = max(written, key=lambda kc: kc[0])
        if name == DELETED:
            deleted[rid] = top.deleted
        elif name in top.withheld:
            hidden[rid][name] = top.withheld[name]
        else:
            expected[rid][name] = top.values[name]
    assert set(state.records) == set(deleted)
    for rid, record in state.records.items():
        assert record.values() == expected[rid]
        assert [canonical(v) for v in record.values().values()] == [
            canonical(expected[rid][n]) for n in record.values()
        ], "same JSON, not just equal in Python (1 == True)"
        assert record.withheld() == hidden[rid]
        assert record.deleted is deleted[rid]


def conflict_keys(state: MergeState) -> set[tuple[str, str, str, str]]:
    return {(c.record_id, c.field, c.loser.change_id, c.winner.change_id) for c in state.conflicts.values()}


# -- replicas --------------------------------------------------------------
@MULTI_REPLICA
@given(program=programs(), data=st.data())
def test_replicas_that_exchanged_everything_agree(program: dict[str, Any], data: st.DataObject) -> None:
    devices = run(program)
    everything = made(devices)
    ids = {c.id for c in everything}
    for device in devices:  # the rest of the changes, in any order, some of them twice
        held_before = device.change_ids
        repeats = data.draw(repeats_of(everything), label="repeats")
        outcomes = device.receive(data.draw(st.permutations([*everything, *repeats]), label="arrivals"))
        assert sum(o.status == "applied" for o in outcomes) == len(ids - held_before)

    reference = devices[0]
    for device in devices:
        assert device.view() == reference.view()
        assert set(device.conflicts) == set(reference.conflicts)
        assert device.state.records == reference.state.records
        assert device.conflicts == reference.conflicts
        history = [c.id for c in device.state.history]
        assert len(history) == len(set(history)), "a change is applied once"
        assert set(history) == ids, "no accepted change is lost"
        in_records = [cid for r in device.state.records.values() for cid in r.change_ids()]
        assert sorted(in_records) == sorted(ids)
    assert conflict_keys(reference.state) == expected_conflicts(everything)
    assert_latest_values(reference.state, everything)
    event(f"changes: {len(everything) // 10 * 10}+")
    event(f"conflicts: {min(len(reference.conflicts), 5)}{'+' if len(reference.conflicts) >= 5 else ''}")
    event(f"deleted records: {sum(r.deleted for r in reference.state.records.values()) > 0}")


# -- algebra -----------------------------------------------------------------
@ALGEBRA
@given(changes=change_sets, data=st.data())
def test_apply_is_idempotent(changes: list[Change], data: st.DataObject) -> None:
    once = replay(changes)
    repeats = data.draw(repeats_of(changes, len(changes)), label="repeats")
    twice = replay([*changes, *changes])
    interleaved = replay(data.draw(st.permutations([*changes, *repeats]), label="order"))
    assert Fingerprint.of(twice) == Fingerprint.of(once) == Fingerprint.of(interleaved)
    assert len(twice.history) == len({c.id for c in changes})
    for change in changes:
        record = once.records[change.record_id]
        outcome = apply(record, change)
        assert outcome.status == "duplicate"
        assert outcome.record == record


@ALGEBRA
@given(changes=change_sets, data=st.data())
def test_apply_is_commutative(changes: list[Change], data: st.DataObject) -> None:
    order = data.draw(st.permutations(changes), label="order")
    state, reported = MergeState(), []
    for change in order:
        reported.extend(c.id for c in state.apply(change).conflicts)
    assert Fingerprint.of(state) == Fingerprint.of(replay(changes))
    assert Fingerprint.of(state) == Fingerprint.of(replay(reversed(changes)))
    assert len(reported) == len(set(reported)), "each conflict is reported once"
    assert set(reported) == set(state.conflicts)


@ALGEBRA
@given(changes=change_sets, data=st.data())
def test_merging_replicas_is_associative(changes: list[Change], data: st.DataObject) -> None:
    groups = data.draw(st.lists(st.integers(0, 2), min_size=len(changes), max_size=len(changes)), label="groups")
    a, b, c = (replay([ch for ch, g in zip(changes, groups, strict=True) if g == k]) for k in range(3))
    left = merged(merged(a, b), c)
    right = merged(a, merged(b, c))
    other = merged(c, merged(a, b))
    everything = Fingerprint.of(replay(changes))
    assert Fingerprint.of(left) == Fingerprint.of(right) == Fingerprint.of(other) == everything
    assert Fingerprint.of(a) == Fingerprint.of(replay([ch for ch, g in zip(changes, groups, strict=True) if g == 0]))


@ALGEBRA
@given(changes=change_sets, data=st.data())
def test_merging_does_not_touch_the_replicas_merged(changes: list[Change], data: st.DataObject) -> None:
    half = data.draw(st.integers(0, len(changes)), label="split")
    a, b = replay(changes[:half]), replay(changes[half:])
    before = (Fingerprint.of(a), Fingerprint.of(b))
    copy_state(a).apply_all(b.history)
    merged(a, b)
    assert (Fingerprint.of(a), Fingerprint.of(b)) == before


# -- last writer wins, conflicts -------------------------------------------
@ALGEBRA
@given(changes=change_sets, data=st.data())
def test_an_older_value_never_replaces_a_newer_one(changes: list[Change], data: st.DataObject) -> None:
    order = data.draw(st.permutations(changes), label="order")
    state = MergeState()
    for i, change in enumerate(order):
        state.apply(change)
        assert_latest_values(state, order[: i + 1])


@ALGEBRA
@given(changes=change_sets, data=st.data())
def test_conflicts_are_exactly_the_pairs_the_rule_names(changes: list[Change], data: st.DataObject) -> None:
    state = replay(data.draw(st.permutations(changes), label="order"))
    assert conflict_keys(state) == expected_conflicts(changes)
    for conflict in state.conflicts.values():
        assert conflict.id == "/".join(
            (conflict.record_id, conflict.field, conflict.loser.change_id, conflict.winner.change_id)
        )
        assert conflict.loser.key < conflict.winner.key
        record = state.records[conflict.record_id]
        kept = record.history[conflict.field]
        assert conflict.loser in kept and conflict.winner in kept


@CHEAP
@given(changes=raw_change_sets(), data=st.data())
def test_ties_break_the_same_way_everywhere(changes: list[Change], data: st.DataObject) -> None:
    # one clock text from several devices: the device decides; one (clock, device)
    # for several changes (a device that signed twice at one clock): the change id
    here = replay(data.draw(st.permutations(changes), label="here"))
    there = replay(data.draw(st.permutations(changes), label="there"))
    for rid, record in here.records.items():
        mine = [c for c in changes if c.record_id == rid]
        for name, versions_ in record.history.items():
            best = max((c for c in mine if name in c.written()), key=lambda c: (c.hlc, c.device, c.id))
            assert versions_[-1].change_id == best.id
            assert there.records[rid].winner(name) == versions_[-1]
        assert record.changed_at == max(c.hlc for c in mine)
