"""What a hub-signed resolution may say: checked by every replica before it merges one.

Rules this module owns:

- A hub change (``device == "hub"``) is a decision of command staff, never a
  new value: it names what it resolves (``resolution = {kind, resolves, by}``)
  and may only re-state a value an officer signed. So even a compromised hub,
  which holds the hub key, cannot put a value no officer wrote into a record.
- ``kind = "conflict"``: ``resolves`` is the conflict id
  ``record/field/loser change/winner change``; the change is for that record,
  writes only that field (nothing for ``_deleted``), and its value is the value
  one of the two named changes wrote to that field. The chosen value is
  compared with every side this replica can see: where one side is held only
  as a digest (withheld by an agreement), it must be the other, visible side's
  value. The check is skipped only where nothing can be compared: the hub
  change's own value is withheld here, or both sides are (the value is then
  invisible here anyway).
- ``kind = "double_booking"``: the change is for a reservation and writes
  exactly ``state = "declined"``.
- Anything else is refused with :class:`ChangeRejected`, like any change the
  engine will not apply.
"""

from __future__ import annotations

from typing import Any

from .changes import DELETED, Change
from .conflicts import Version
from .errors import ChangeRejected
from .merge import RecordState


def _refuse(change: Change, why: str) -> ChangeRejected:
    return ChangeRejected(f"hub resolution refused: {why}", change_id=change.id)


def check_resolution(record: RecordState | None, change: Change) -> None:
    """Raise ChangeRejected unless ``change`` (a verified hub change) only re-states an officer's value."""
    resolution: Any = change.wire.get("resolution")
    if not isinstance(resolution, dict):
        raise _refuse(change, "it names no resolution")
    written = set(change.values) | set(change.withheld)
    if resolution.get("kind") == "double_booking":
        if change.collection != "reservations" or change.deleted or written != {"state"}:
            raise _refuse(change, "a double booking is settled only by declining a reservation")
        if change.values.get("state", "declined") != "declined":
            raise _refuse(change, "a double booking is settled only by declining a reservation")
        return
    if resolution.get("kind") != "conflict":
        raise _refuse(change, f"unknown kind {resolution.get('kind')!r}")
    parts = str(resolution.get("resolves", "")).split("/")
    if len(parts) != 4 or parts[0] != change.record_id:
        raise _refuse(change, "it does not name a conflict of this record")
    name, sides = parts[1], (parts[2], parts[3])
    if record is None:
        raise _refuse(change, "this replica holds no such record")
    if name == DELETED:
        if written:
            raise _refuse(change, "a deletion conflict is settled without writing fields")
        chosen: Any = change.deleted
    else:
        if written != {name} or change.deleted:
            raise _refuse(change, f"it may write {name!r} only")
        if name in change.withheld:
            return  # withheld here: nothing to compare, and nothing shown
        chosen = change.values[name]
    versions: dict[str, Version] = {v.change_id: v for v in record.history.get(name, ())}
    named = [versions.get(side) for side in sides]
    if any(v is None for v in named):
        raise _refuse(change, "this replica does not hold the two sides it names")
    visible = [v for v in named if v is not None and not v.withheld]
    if not visible:
        return  # both sides withheld here: nothing to compare, and nothing shown
    if not any(type(v.value) is type(chosen) and v.value == chosen for v in visible):
        raise _refuse(change, f"its value for {name!r} is neither side's")
