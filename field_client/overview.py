"""The officer's read-only views of the laptop: its sync status, and its conflicts.

Rules this module owns:

- These views read the replica and write nothing: `fieldsync status`,
  `fieldsync conflicts` and the ``fieldsync ui`` pages show the same answers.
- Pending changes are those still to push (``pending`` and ``held``); a change
  the hub refused is shown with its reason and its details decoded (field ->
  messages, as ``sync --json`` reports them); a pulled change the laptop
  refused is shown from ``refused``.
- Whether a conflict or a double booking is settled is read only from
  hub-signed changes this laptop verified and holds (``resolved_by``: the staff
  member who decided), never from an unsigned answer: a decision settles every
  conflict of that record field written before it. The counts in
  :func:`status` are of open ones only.
"""

from __future__ import annotations

import json
from typing import Any

from sync import HUB_DEVICE
from sync.changes import resolution_of

from . import outbox
from .device import Device
from .errors import ClientError


def status(device: Device) -> dict[str, Any]:
    replica, kept = device.replica, device.sync_state
    found = conflicts(device)  # open ones only: those command staff settled are not counted
    return {
        "device_id": device.device_id,
        "agency": device.agency,
        "officer": device.officer,
        "hub": device.hub_url,
        "pending": outbox.count_pending(replica),
        "last_sync_at": kept.last_sync_at,
        "last_sync_error": kept.last_sync_error,
        "last_try_at": kept.last_try_at,
        "cursor": kept.cursor,
        "conflicts": sum(1 for c in found["conflicts"] if c["resolved_by"] is None),
        "double_bookings": sum(1 for b in found["double_bookings"] if b["resolved_by"] is None),
        "rejected": outbox.rejected(replica),  # details decoded, as `sync --json` reports them
        "refused": outbox.refused(replica),
        "hub_alarm": kept.hub_alarm,
        "hub_resets": kept.hub_resets,
        "restored": kept.restored,
        "feed_burned": kept.feed_burned,
        "feed_closed": feed_closed(device),
        "set_aside": outbox.set_aside(replica),
    }


def feed_closed(device: Device) -> str | None:
    """Why this laptop may not sign a new change now, or None."""
    try:
        device.check_can_sign()
    except ClientError as exc:
        return str(exc)
    return None


def _resolutions(replica: Any) -> tuple[dict[tuple[str, str], list[tuple[str, str]]], dict[str, str]]:
    """What command staff decided, from the hub-signed changes this laptop verified and holds:
    (record, field) -> [(hlc, staff member)] for conflicts; double booking id -> staff member."""
    fields: dict[tuple[str, str], list[tuple[str, str]]] = {}
    bookings: dict[str, str] = {}
    for row in replica.rows("SELECT wire FROM changes WHERE device = ?", (HUB_DEVICE,)):
        wire = json.loads(row["wire"])
        resolution = resolution_of(wire) or {}
        if resolution.get("kind") == "conflict":
            parts = str(resolution.get("resolves", "")).split("/")
            if len(parts) == 4:
                fields.setdefault((wire["record_id"], parts[1]), []).append((wire["hlc"], resolution["by"]))
        elif resolution.get("kind") == "double_booking":
            bookings[str(resolution.get("resolves"))] = resolution["by"]
    return fields, bookings


def conflicts(device: Device) -> dict[str, Any]:
    """Every conflict and double booking on this laptop, both sides shown, each with
    ``resolved_by``: the staff member whose hub-signed decision settled it (None while open).
    A decision settles every conflict of that record field written before it."""
    replica = device.replica
    settled_fields, settled_bookings = _resolutions(replica)
    rows = replica.rows(
        "SELECT id, record_id, collection, field, winner, loser, detected_at FROM conflicts ORDER BY id"
    )
    for row in rows:
        row["winner"], row["loser"] = json.loads(row["winner"]), json.loads(row["loser"])
        newest = max(row["winner"]["hlc"], row["loser"]["hlc"])
        later = [by for hlc, by in settled_fields.get((row["record_id"], row["field"]), []) if hlc > newest]
        row["resolved_by"] = later[0] if later else None
    bookings = replica.rows(
        "SELECT id, resource_id, first, second, overlap_start, overlap_end, detected_at"
        " FROM double_bookings ORDER BY id"
    )
    for booking in bookings:
        booking["resolved_by"] = settled_bookings.get(booking["id"])
    return {"conflicts": rows, "double_bookings": bookings}
