"""Loading and storing merged record state (sync.merge.RecordState) as JSON rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crypto.clock import now
from sync import RecordState, Version

from .db import db
from .models import Record


def to_json(state: RecordState) -> dict[str, Any]:
    return {name: [list(v) for v in versions] for name, versions in state.history.items()}


def from_row(row: Record) -> RecordState:
    history = {name: tuple(Version(*v) for v in versions) for name, versions in row.state.items()}
    return RecordState(row.collection, row.record_id, row.agency, history)


def load(record_id: str, *, lock: bool = False) -> tuple[Record | None, RecordState | None]:
    query = select(Record).where(Record.record_id == record_id)
    row = db.session.scalar(query.with_for_update() if lock else query)
    return row, (from_row(row) if row is not None else None)


def summary(collection: str, values: dict[str, Any]) -> tuple[str, str, str]:
    """(title, status, search text) of a record's current values: the indexed copies
    the web view filters, sorts and pages on (a reservation's title is its purpose,
    its status its state)."""
    title = values.get("name") if collection != "reservations" else values.get("purpose")
    status = values.get("state") if collection == "reservations" else values.get("status")
    words = [str(v) for v in values.values() if isinstance(v, str | int | float) and not isinstance(v, bool)]
    for v in values.values():
        if isinstance(v, dict):
            words += [str(x) for x in v.values() if isinstance(x, str)]
    return (
        str(title or "")[:200],
        str(status or "")[:32],
        " ".join(words).casefold(),
    )


def store(row: Record | None, state: RecordState) -> Record:
    values = state.values()
    if row is None:
        row = Record(record_id=state.record_id, collection=state.collection, agency=state.agency)
        db.session.add(row)
    row.state = to_json(state)
    row.values = values
    if state.collection == "reservations":
        row.resource_id = values.get("resource_id")
    row.deleted = state.deleted
    row.updated_hlc = state.changed_at or ""
    row.updated_at = now()
    row.title, row.status, row.search = summary(state.collection, values)
    return row
