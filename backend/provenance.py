"""Provenance bundles: a record's changes, certificates and the registry, for offline checking.

A bundle holds everything ``fieldsync verify BUNDLE.json`` needs and nothing
the reader's agency may not see: fields withheld by an agreement are digests.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crypto import withhold

from . import agreements, audit, keystore, log
from .db import db
from .errors import NotFound
from .models import Device, LogEntry, Record


def bundle(record_id: str, *, reader: str | None, actor: str | None = None) -> dict[str, Any]:
    """``reader`` None means the hub's own staff, who see everything. A refusal is audited as
    ``provenance.read`` for ``actor`` with its real reason; the reader gets the same 404 whether
    the record does not exist or is not shared with it."""
    row = db.session.get(Record, record_id)
    decides = reader is not None and row is not None and _owns_booked_resource(row, reader)
    if row is None or (
        reader is not None and not decides and not agreements.can_see(row.agency, reader, row.collection)
    ):
        if actor is not None:
            reason = "no such record" if row is None else f"not shared with {reader}"
            audit.refused("provenance.read", actor=actor, agency=reader, object=record_id, reason=reason)
        raise NotFound(f"no record {record_id}")
    hidden = agreements.withheld_from(row.agency, reader) if reader is not None and not decides else frozenset()
    entries = list(db.session.scalars(select(LogEntry).where(LogEntry.record_id == record_id).order_by(LogEntry.seq)))
    changes = [withhold(e.wire, hidden) if hidden else e.wire for e in entries]
    devices = {e.device for e in entries}
    certificates = {d.id: d.certificate for d in db.session.scalars(select(Device).where(Device.id.in_(devices)))}
    head = log.read_head()
    return {
        "record": {
            "record_id": row.record_id,
            "collection": row.collection,
            "agency": row.agency,
            "deleted": row.deleted,
            "values": {k: v for k, v in row.values.items() if k not in hidden},
        },
        "changes": changes,
        "certificates": certificates,
        "registry": keystore.registry_entries(),
        "checkpoint": log.checkpoint(head.size, head.head),
    }


def _owns_booked_resource(row: Record, reader: str) -> bool:
    """A reservation of a resource of the reader's agency: the reader decides it."""
    if row.collection != "reservations" or not row.resource_id:
        return False
    resource = db.session.get(Record, row.resource_id)
    return resource is not None and resource.agency == reader
