"""Merged records on the laptop: the same sync.merge engine as the hub, stored in the replica.

Rules this module owns:

- Every change the laptop holds (its own and pulled ones) is kept in
  ``changes``; a record's state is the merge of its changes, stored with all
  versions (sync.merge.RecordState) so the next change merges exactly as on
  the hub.
- :func:`apply_change` merges one verified change into its record and stores
  the conflicts and double bookings the engine reports; it is called inside
  the caller's transaction.
- :func:`rebuild` recomputes a record from its stored changes minus those the
  hub refused, so a refused local edit disappears from the laptop as it never
  reached anyone else.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from crypto import VerifiedChange
from sync import Change, RecordState, Version, apply, find_double_bookings

from .replica import Replica


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load(replica: Replica, record_id: str) -> RecordState | None:
    row = replica.conn.execute(
        "SELECT collection, agency, state FROM records WHERE record_id = ?", (record_id,)
    ).fetchone()
    if row is None:
        return None
    history = {name: tuple(Version(*v) for v in versions) for name, versions in json.loads(row[2]).items()}
    return RecordState(row[0], record_id, row[1], history)


def store(replica: Replica, state: RecordState) -> None:
    replica.conn.execute(
        """INSERT INTO records(record_id, collection, agency, state, "values", withheld, deleted, updated_hlc)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(record_id) DO UPDATE SET state = excluded.state, "values" = excluded."values",
             withheld = excluded.withheld, deleted = excluded.deleted, updated_hlc = excluded.updated_hlc""",
        (
            state.record_id,
            state.collection,
            state.agency,
            json.dumps({name: [list(v) for v in vs] for name, vs in state.history.items()}),
            json.dumps(state.values()),
            json.dumps(state.withheld()),
            int(state.deleted),
            state.changed_at or "",
        ),
    )


def keep_change(replica: Replica, change: Change, origin: str) -> None:
    replica.conn.execute(
        "INSERT OR IGNORE INTO changes(change_id, record_id, hash, device, seq, wire, origin, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (change.id, change.record_id, change.hash, change.device, change.seq, json.dumps(change.wire), origin, stamp()),
    )


def apply_change(replica: Replica, change: Change) -> str:
    """Merge a verified change into its record; returns "applied" or "duplicate"."""
    outcome = apply(load(replica, change.record_id), change)
    if outcome.status == "duplicate":
        return "duplicate"
    store(replica, outcome.record)
    for conflict in outcome.conflicts:
        replica.conn.execute(
            "INSERT OR IGNORE INTO conflicts(id, record_id, collection, field, winner, loser, detected_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                conflict.id,
                conflict.record_id,
                conflict.collection,
                conflict.field,
                json.dumps(conflict.winner._asdict()),
                json.dumps(conflict.loser._asdict()),
                stamp(),
            ),
        )
    if change.collection == "reservations":
        check_bookings(replica, outcome.record.values().get("resource_id"))
    return "applied"


def check_bookings(replica: Replica, resource_id: Any) -> None:
    if not resource_id:
        return
    rows = replica.conn.execute(
        """SELECT record_id, "values", deleted FROM records WHERE collection = 'reservations'
           AND json_extract("values", '$.resource_id') = ?""",
        (resource_id,),
    ).fetchall()
    bookings = [{"id": rid, "deleted": bool(deleted), **json.loads(values)} for rid, values, deleted in rows]
    for found in find_double_bookings(bookings):
        replica.conn.execute(
            "INSERT OR IGNORE INTO double_bookings(id, resource_id, first, second, overlap_start, overlap_end,"
            " detected_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (found.id, found.resource_id, found.first, found.second, found.overlap_start, found.overlap_end, stamp()),
        )


def rebuild(replica: Replica, record_id: str, refused_ids: set[str]) -> None:
    """Recompute a record from its kept changes, leaving out refused ones."""
    rows = replica.conn.execute(
        "SELECT change_id, hash, wire FROM changes WHERE record_id = ? ORDER BY received_at", (record_id,)
    ).fetchall()
    replica.conn.execute("DELETE FROM records WHERE record_id = ?", (record_id,))
    replica.conn.execute("DELETE FROM conflicts WHERE record_id = ?", (record_id,))
    for change_id in refused_ids:
        replica.conn.execute("DELETE FROM changes WHERE change_id = ?", (change_id,))
    for change_id, change_hash, wire in rows:
        if change_id in refused_ids:
            continue
        apply_change(replica, Change.from_verified(VerifiedChange(json.loads(wire), change_hash)))


def record_view(row: dict[str, Any]) -> dict[str, Any]:
    """What `list --json` prints for one record."""
    return {
        "id": row["record_id"],
        "collection": row["collection"],
        "agency": row["agency"],
        **json.loads(row["values"]),
        **({"withheld": sorted(json.loads(row["withheld"]))} if row.get("withheld") not in (None, "{}") else {}),
        "deleted": bool(row["deleted"]),
        "updated_hlc": row["updated_hlc"],
    }


_SELECT = 'SELECT record_id, collection, agency, "values", withheld, deleted, updated_hlc FROM records'


def list_records(replica: Replica, collection: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
    query = _SELECT + " WHERE collection = ?"
    if not include_deleted:
        query += " AND deleted = 0"
    return [record_view(r) for r in replica.rows(query + " ORDER BY updated_hlc", (collection,))]


def get_record(replica: Replica, record_id: str) -> dict[str, Any] | None:
    rows = replica.rows(_SELECT + " WHERE record_id = ?", (record_id,))
    return record_view(rows[0]) if rows else None
