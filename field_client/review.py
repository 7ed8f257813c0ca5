"""What an officer needs to read about their own edits: read-only views over the replica.

Rules this module owns:

- A conflict *concerns* this laptop when one of its two versions was written
  by this device; a double booking, when this device wrote a change to
  either reservation. Nothing here writes: conflicts are decided by the merge
  rule (the later edit wins everywhere) and by command staff at the hub.
- "What the hub decided" is read from the record as it now stands: the
  version that won by the merge rule, or a later one (a resolution that
  command staff signed with the hub key arrives as a change of device
  ``hub``); for a double booking, the reservations' states now. Who decided
  is the signed ``resolution.by`` of that hub change (``resolved_by``, from
  :func:`overview.conflicts`, which read it from verified hub changes only).
- An item is *open* until it is settled: a conflict until a hub-signed
  resolution of its field arrived; a double booking until staff resolved it
  or it no longer has two approved, live reservations. Only open items count
  in the ui's Conflicts badge, as in ``fieldsync status``.
"""

from __future__ import annotations

import json
from typing import Any

from sync.provenance import HUB_DEVICE

from . import outbox, overview, state
from .device import Device
from .replica import Replica


def _written_by(replica: Replica, device_id: str) -> set[str]:
    rows = replica.conn.execute("SELECT DISTINCT record_id FROM changes WHERE device = ?", (device_id,))
    return {row[0] for row in rows}


def _decision(replica: Replica, conflict: dict[str, Any], me: str) -> dict[str, Any]:
    winner = conflict["winner"]
    record = state.load(replica, conflict["record_id"])
    versions = record.history.get(conflict["field"], ()) if record else ()
    now = versions[-1] if versions else None
    if now is not None and now.device == HUB_DEVICE:
        kind = "resolved"  # command staff chose a value at the hub
    elif now is not None and now.change_id != winner["change_id"]:
        kind = "changed"  # edited again since
    else:
        kind = "later_wins"
    return {
        "kind": kind,
        "value": now.value if now is not None else winner["value"],
        "withheld": bool(now is not None and now.withheld),
        "mine_kept": winner["device"] == me and kind == "later_wins",
        "by": conflict.get("resolved_by"),
    }


def concerning(device: Device) -> dict[str, Any]:
    """Conflicts and double bookings that involve this device's edits, each with what was decided."""
    replica, me = device.replica, device.device_id
    found = overview.conflicts(device)
    conflicts = []
    for c in found["conflicts"]:
        if me not in (c["winner"]["device"], c["loser"]["device"]):
            continue
        record = state.get_record(replica, c["record_id"]) or {}
        conflicts.append(
            {
                **c,
                "record": record,
                "mine": c["winner"] if c["winner"]["device"] == me else c["loser"],
                "theirs": c["loser"] if c["winner"]["device"] == me else c["winner"],
                "decision": _decision(replica, c, me),
                "open": c.get("resolved_by") is None,
            }
        )
    mine = _written_by(replica, me)
    bookings = []
    for b in found["double_bookings"]:
        if b["first"] not in mine and b["second"] not in mine:
            continue
        first, second = state.get_record(replica, b["first"]), state.get_record(replica, b["second"])
        both = [r for r in (first, second) if r]
        live = [r for r in both if not r["deleted"] and r.get("state") == "approved"]
        bookings.append(
            {
                **b,
                "resource": state.get_record(replica, b["resource_id"]) or {},
                "reservations": both,
                "mine": {b["first"], b["second"]} & mine,
                "open": len(live) == 2 and b.get("resolved_by") is None,
                "kept": live,
                "declined": [r for r in both if r.get("state") == "declined"],
            }
        )
    return {
        "conflicts": conflicts,
        "double_bookings": bookings,
        "others": len(found["conflicts"]) - len(conflicts) + len(found["double_bookings"]) - len(bookings),
    }


def rejected(replica: Replica, limit: int | None = None) -> list[dict[str, Any]]:
    """Local edits the hub refused, newest first, with the reason and field details."""
    out = []
    for row in outbox.latest_rejected(replica, limit):
        wire = json.loads(row.pop("wire"))
        out.append(
            {
                **row,
                "collection": wire.get("collection"),
                "fields": {name: entry.get("value") for name, entry in wire.get("fields", {}).items()},
                "deleted": bool(wire.get("deleted")),
                "record": state.get_record(replica, row["record_id"]),
            }
        )
    return out
