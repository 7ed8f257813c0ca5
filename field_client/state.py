"""Merged records on the laptop: the same sync.merge engine as the hub, stored in the replica.

Rules this module owns:

- Every change the laptop holds (its own and pulled ones) is kept in
  ``changes``; a record's state is the merge of its changes, stored with all
  versions (sync.merge.RecordState) so the next change merges exactly as on
  the hub.
- :func:`apply_change` merges one verified change into its record and stores
  the conflicts and double bookings the engine reports; it is called inside
  the caller's transaction.
- :class:`PageWriter` does what :func:`keep_change` and :func:`apply_change`
  do, for the pages of pulled changes one transaction commits: each page's
  records not already held are read with one query, merged in memory, and at
  :meth:`PageWriter.flush` (just before the commit) the changes, records and
  conflicts are written with one executemany each, so a record edited on
  several pages of one commit is serialised and written once (reservations,
  whose double-booking check reads other records, go through
  :func:`apply_change` after the pending rows are written). Same result, far
  fewer statements. A writer lives and dies with its transaction: what it
  holds is thrown away, never flushed, when the transaction rolls back.
- :func:`rebuild` recomputes a record from its stored changes minus those the
  hub refused, so a refused local edit disappears from the laptop as it never
  reached anyone else.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from crypto import VerifiedChange
from crypto.clock import stamp
from sync import Change, RecordState, Version, apply, find_double_bookings

from .replica import Replica


def load(replica: Replica, record_id: str) -> RecordState | None:
    row = replica.conn.execute(
        "SELECT collection, agency, state FROM records WHERE record_id = ?", (record_id,)
    ).fetchone()
    return _from_json(row[0], record_id, row[1], row[2]) if row is not None else None


def _from_json(collection: str, record_id: str, agency: str, text: str) -> RecordState:
    history = {name: tuple(Version(*v) for v in versions) for name, versions in orjson.loads(text).items()}
    return RecordState(collection, record_id, agency, history)


_STORE = """INSERT INTO records(record_id, collection, agency, state, "values", withheld, deleted, updated_hlc)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(record_id) DO UPDATE SET state = excluded.state, "values" = excluded."values",
             withheld = excluded.withheld, deleted = excluded.deleted, updated_hlc = excluded.updated_hlc"""
_KEEP = (
    "INSERT OR IGNORE INTO changes(change_id, record_id, hash, device, seq, wire, origin, received_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_CONFLICT = (
    "INSERT OR IGNORE INTO conflicts(id, record_id, collection, field, winner, loser, detected_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _text(value: Any) -> str:
    """JSON text of a value for the replica's TEXT columns (orjson: a record's state is written
    at every change that touches it, so this is on the pull's hot path)."""
    return orjson.dumps(value).decode()


def _store_row(state: RecordState) -> tuple[Any, ...]:
    return (
        state.record_id,
        state.collection,
        state.agency,
        _text({name: [list(v) for v in vs] for name, vs in state.history.items()}),
        _text(state.values()),
        _text(state.withheld()),
        int(state.deleted),
        state.changed_at or "",
    )


def _keep_row(change: Change, origin: str, at: str) -> tuple[Any, ...]:
    return (change.id, change.record_id, change.hash, change.device, change.seq, _text(change.wire), origin, at)


def _conflict_rows(conflicts: Any, at: str) -> list[tuple[Any, ...]]:
    return [
        (
            c.id,
            c.record_id,
            c.collection,
            c.field,
            json.dumps(c.winner._asdict()),
            json.dumps(c.loser._asdict()),
            at,
        )
        for c in conflicts
    ]


def store(replica: Replica, state: RecordState) -> None:
    replica.conn.execute(_STORE, _store_row(state))


def keep_change(replica: Replica, change: Change, origin: str) -> None:
    replica.conn.execute(_KEEP, _keep_row(change, origin, stamp()))


def apply_change(replica: Replica, change: Change) -> str:
    """Merge a verified change into its record; returns "applied" or "duplicate"."""
    outcome = apply(load(replica, change.record_id), change)
    if outcome.status == "duplicate":
        return "duplicate"
    store(replica, outcome.record)
    replica.conn.executemany(_CONFLICT, _conflict_rows(outcome.conflicts, stamp()))
    if change.collection == "reservations":
        check_bookings(replica, outcome.record.values().get("resource_id"))
    return "applied"


class PageWriter:
    """keep_change + apply_change for pages of changes, with a handful of statements.

    Inside the caller's transaction: :meth:`page` with the record ids of each page,
    then :meth:`keep` and :meth:`apply` per change in order; :meth:`flush` before the
    transaction commits. :meth:`apply` raises ChangeRejected as apply_change does,
    writing nothing for that change."""

    def __init__(self, replica: Replica, record_ids: set[str] | None = None) -> None:
        self.replica = replica
        self.at = stamp()
        self.states: dict[str, RecordState | None] = {}
        self.kept: list[tuple[Any, ...]] = []
        self.dirty: dict[str, RecordState] = {}
        self.conflicts: list[tuple[Any, ...]] = []
        if record_ids:
            self.page(record_ids)

    def page(self, record_ids: set[str]) -> None:
        """A new page: its changes are stamped now, and its records not held yet are read."""
        self.at = stamp()
        ids = [record_id for record_id in record_ids if record_id not in self.states]
        self.states.update(dict.fromkeys(ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.replica.conn.execute(
                "SELECT record_id, collection, agency, state FROM records"
                f" WHERE record_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            for record_id, collection, agency, text in rows:
                self.states[record_id] = _from_json(collection, record_id, agency, text)

    def keep(self, change: Change, origin: str) -> None:
        self.kept.append(_keep_row(change, origin, self.at))

    def apply(self, change: Change) -> str:
        if change.collection == "reservations":
            self.flush()
            result = apply_change(self.replica, change)
            self.states[change.record_id] = load(self.replica, change.record_id)
            return result
        outcome = apply(self.states.get(change.record_id), change)
        if outcome.status == "duplicate":
            return "duplicate"
        self.states[change.record_id] = self.dirty[change.record_id] = outcome.record
        self.conflicts += _conflict_rows(outcome.conflicts, self.at)
        return "applied"

    def flush(self) -> None:
        conn = self.replica.conn
        if self.kept:
            conn.executemany(_KEEP, self.kept)
        if self.dirty:
            conn.executemany(_STORE, [_store_row(state) for state in self.dirty.values()])
        if self.conflicts:
            conn.executemany(_CONFLICT, self.conflicts)
        self.kept, self.dirty, self.conflicts = [], {}, []


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
