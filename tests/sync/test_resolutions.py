"""sync.resolutions: a hub-signed decision may only re-state a value an officer signed.

Pure: changes are built as the engine sees them after verification (the signature
is crypto's and provenance's business, tested there), merged with sync.merge.
"""

from __future__ import annotations

from typing import Any

import pytest

from crypto import VerifiedChange
from sync import DELETED, HUB_DEVICE, Change, ChangeRejected, MergeState, RecordState, check_resolution

from .helpers import fixed_id, hlc_text

RECORD = fixed_id(1)
SALT = "A" * 22


def change(device: str, n: int, values: dict[str, Any], *, deleted: bool = False, **extra: Any) -> Change:
    wire = {
        "id": fixed_id(100 + n, 1), "collection": extra.pop("collection", "resources"), "record_id": RECORD,
        "agency": "SPD", "device": device, "seq": n, "prev": None, "hlc": hlc_text(1_000 + n, 0, device),
        "base": {}, "fields": {k: {"salt": SALT, "value": v} for k, v in values.items()}, "deleted": deleted, **extra,
    }  # fmt: skip
    return Change.from_verified(VerifiedChange(wire, f"hash{n}"))


def conflicted() -> tuple[RecordState, Change, Change]:
    state = MergeState()
    first = change("dev-a", 1, {"kind": "vehicle", "name": "Unit 12", "status": "available"})
    left = change("dev-a", 2, {"status": "deployed"})
    right = change("dev-b", 3, {"status": "maintenance"})
    state.apply_all([first, left, right])
    return state.records[RECORD], left, right


def hub(n: int, values: dict[str, Any], resolves: str, *, kind: str = "conflict", **kw: Any) -> Change:
    return change(HUB_DEVICE, n, values, resolution={"kind": kind, "resolves": resolves, "by": "Lt. Cruz"}, **kw)


def refused(record: RecordState | None, hub_change: Change, words: str) -> None:
    with pytest.raises(ChangeRejected) as info:
        check_resolution(record, hub_change)
    assert words in info.value.reason


def test_either_side_may_be_chosen() -> None:
    record, left, right = conflicted()
    conflict = f"{RECORD}/status/{left.id}/{right.id}"
    check_resolution(record, hub(9, {"status": "deployed"}, conflict))
    check_resolution(record, hub(9, {"status": "maintenance"}, conflict))


def test_a_value_no_officer_wrote_is_refused() -> None:
    record, left, right = conflicted()
    refused(record, hub(9, {"status": "out_of_service"}, f"{RECORD}/status/{left.id}/{right.id}"), "neither side")
    refused(record, hub(9, {"status": "available"}, f"{RECORD}/status/{left.id}/{right.id}"), "neither side")


def test_only_the_named_field_of_the_named_record() -> None:
    record, left, right = conflicted()
    conflict = f"{RECORD}/status/{left.id}/{right.id}"
    refused(record, hub(9, {"status": "deployed", "name": "Mine"}, conflict), "may write 'status' only")
    refused(record, hub(9, {"name": "Unit 12"}, conflict), "may write 'status' only")
    refused(record, hub(9, {"status": "deployed"}, f"{fixed_id(2)}/status/{left.id}/{right.id}"), "this record")
    refused(record, hub(9, {"status": "deployed"}, "garbage"), "this record")
    refused(record, hub(9, {"status": "deployed"}, f"{RECORD}/status/{left.id}/{fixed_id(7)}"), "does not hold")
    refused(None, hub(9, {"status": "deployed"}, conflict), "no such record")
    refused(record, hub(9, {"status": "deployed"}, conflict, kind="decree"), "unknown kind")


def test_a_deletion_conflict_is_settled_by_the_deleted_flag_alone() -> None:
    state = MergeState()
    first = change("dev-a", 1, {"kind": "vehicle", "name": "Unit 12"})
    gone = change("dev-a", 2, {}, deleted=True)
    edit = change("dev-b", 3, {"name": "Unit 12B"})
    state.apply_all([first, gone, edit])
    record = state.records[RECORD]
    conflict = f"{RECORD}/{DELETED}/{gone.id}/{edit.id}"
    check_resolution(record, hub(9, {}, conflict, deleted=True))
    check_resolution(record, hub(9, {}, conflict))
    refused(record, hub(9, {"name": "x"}, conflict), "without writing fields")


def test_a_double_booking_is_settled_only_by_declining_a_reservation() -> None:
    check_resolution(None, hub(9, {"state": "declined"}, "res/a/b", kind="double_booking", collection="reservations"))
    for values in ({"state": "approved"}, {"state": "declined", "purpose": "x"}, {}):
        refused(None, hub(9, values, "res/a/b", kind="double_booking", collection="reservations"), "declining")
    refused(None, hub(9, {"state": "declined"}, "res/a/b", kind="double_booking"), "declining")


def test_a_hub_change_without_a_resolution_is_refused() -> None:
    refused(None, change(HUB_DEVICE, 9, {"status": "deployed"}), "names no resolution")


def withheld_change(device: str, n: int, name: str) -> Change:
    """A change as a replica holds it when an agreement withholds ``name``: a digest, no value."""
    wire = {
        "id": fixed_id(100 + n, 1), "collection": "resources", "record_id": RECORD, "agency": "SPD",
        "device": device, "seq": n, "prev": None, "hlc": hlc_text(1_000 + n, 0, device), "base": {},
        "fields": {name: {"salt": SALT, "digest": "D" * 43}}, "deleted": False,
    }  # fmt: skip
    return Change.from_verified(VerifiedChange(wire, f"hash{n}"))


def half_withheld() -> tuple[RecordState, Change, Change]:
    state = MergeState()
    first = change("dev-a", 1, {"kind": "vehicle", "name": "Unit 12", "status": "available"})
    seen = change("dev-a", 2, {"status": "deployed"})
    hidden = withheld_change("dev-b", 3, "status")
    state.apply_all([first, seen, hidden])
    return state.records[RECORD], seen, hidden


def test_with_one_side_withheld_the_value_must_be_the_visible_sides() -> None:
    record, seen, hidden = half_withheld()
    assert [v.withheld for v in record.history["status"] if v.change_id in (seen.id, hidden.id)] == [False, True]
    for conflict in (f"{RECORD}/status/{seen.id}/{hidden.id}", f"{RECORD}/status/{hidden.id}/{seen.id}"):
        check_resolution(record, hub(9, {"status": "deployed"}, conflict))  # the visible side's value
        refused(record, hub(9, {"status": "out_of_service"}, conflict), "neither side")


def test_with_both_sides_withheld_there_is_nothing_to_compare() -> None:
    state = MergeState()
    first = change("dev-a", 1, {"kind": "vehicle", "name": "Unit 12", "status": "available"})
    left, right = withheld_change("dev-a", 2, "status"), withheld_change("dev-b", 3, "status")
    state.apply_all([first, left, right])
    check_resolution(state.records[RECORD], hub(9, {"status": "anything"}, f"{RECORD}/status/{left.id}/{right.id}"))
