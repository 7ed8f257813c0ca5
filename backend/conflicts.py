"""The review queues' storage: field conflicts and double bookings for command staff.

Rules this module owns:

- What sync.conflicts finds (two concurrent values of one field; two
  approved, live bookings of one resource that overlap) is queued as an ``open`` row for
  command staff, once: a row is keyed by the finding's id, which names what it
  is about, so finding it again (another push, a resolution) adds nothing.
- A conflict row is owned by the record's agency; a double booking is found
  among every booking the hub holds for the resource, after the new one is
  stored.
- Rows are added to the caller's transaction: a change that is refused after
  this (its savepoint rolled back) queues nothing.

Staff see and settle these queues in backend/web/conflicts.py; the decision is
signed by backend/resolutions.py.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from crypto.clock import now
from sync import Change, Conflict, find_double_bookings

from .db import db
from .models import ConflictRow, DoubleBookingRow, Record


def store_conflicts(change: Change, conflicts: Iterable[Conflict]) -> None:
    """Queue newly found field conflicts for command staff (push and backend.resolutions)."""
    for conflict in conflicts:
        if db.session.get(ConflictRow, conflict.id) is None:
            db.session.add(
                ConflictRow(
                    id=conflict.id,
                    record_id=conflict.record_id,
                    collection=conflict.collection,
                    agency=change.agency,
                    field=conflict.field,
                    winner=conflict.winner._asdict(),
                    loser=conflict.loser._asdict(),
                    status="open",
                    detected_at=now(),
                )
            )


def store_double_bookings(row: Record) -> None:
    """Queue any double booking the stored reservation ``row`` makes with the resource's other bookings."""
    resource_id = row.values.get("resource_id")
    if not resource_id:
        return
    siblings = db.session.scalars(
        select(Record).where(Record.collection == "reservations", Record.resource_id == resource_id)
    )
    bookings = [{"id": r.record_id, "deleted": r.deleted, **r.values} for r in siblings]
    for found in find_double_bookings(bookings):
        if db.session.get(DoubleBookingRow, found.id) is None:
            db.session.add(
                DoubleBookingRow(
                    id=found.id,
                    resource_id=found.resource_id,
                    first=found.first,
                    second=found.second,
                    overlap_start=found.overlap_start,
                    overlap_end=found.overlap_end,
                    status="open",
                    detected_at=now(),
                )
            )
