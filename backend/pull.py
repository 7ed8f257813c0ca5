"""Pull: what an agency may see after its cursor, with what it needs to verify it.

Rules this module owns:

- The log head (size S) is read first; every entry up to S is committed
  (backend/log.py), so the answer covers (cursor, S] with no hole.
- Visible: the agency's own records, reservations of its own resources (it
  decides them, so it sees them whole), and records of agencies whose
  agreement shares that collection with it. Fields an agreement withholds leave the hub
  as digests only (crypto.withhold); the value is in no part of the answer.
- ``next_cursor`` advances past invisible entries too; ``more`` says whether
  entries remain after it. The answer carries the certificates of the devices
  that wrote the changes, the registry size (a client refreshes its registry
  when it grew) and the hub's signed checkpoint of (S, head).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select

from crypto import withhold

from . import agreements, log
from .db import db
from .errors import Conflict
from .models import Device, LogEntry, RegistryEntry


def pull(agency: str, cursor: int, limit: int) -> dict[str, Any]:
    head = log.read_head()
    size, head_hash = head.size, head.head
    if cursor > size:
        raise Conflict(
            f"cursor {cursor} is beyond this hub's log ({size} entries): the hub was restored from an older "
            "copy or this is another hub",
            details={"size": size},
        )
    shares = agreements.shares_to(agency)
    visible = [
        LogEntry.agency == agency,
        and_(LogEntry.collection == "reservations", LogEntry.resource_agency == agency),
    ] + [
        and_(LogEntry.agency == owner, LogEntry.collection.in_(sorted(s.collections)))
        for owner, s in shares.items()
        if s.collections
    ]
    # columns, not ORM objects: a page is hundreds of rows, and only these are needed
    rows = list(
        db.session.execute(
            select(LogEntry.seq, LogEntry.agency, LogEntry.resource_agency, LogEntry.device, LogEntry.wire)
            .where(LogEntry.seq > cursor, LogEntry.seq <= size, or_(*visible))
            .order_by(LogEntry.seq)
            .limit(limit)
        )
    )
    next_cursor = rows[-1].seq if len(rows) == limit else size
    changes = []
    for row in rows:
        wire = row.wire
        share = shares.get(row.agency)
        if row.agency != agency and row.resource_agency != agency and share is not None and share.withhold:
            wire = withhold(wire, share.withhold)
        changes.append({"seq": row.seq, "change": wire})
    device_ids = {row.device for row in rows}
    certificates = (
        {d.id: d.certificate for d in db.session.scalars(select(Device).where(Device.id.in_(device_ids)))}
        if device_ids
        else {}
    )
    return {
        "changes": changes,
        "certificates": certificates,
        "next_cursor": next_cursor,
        "more": next_cursor < size,
        "registry_size": db.session.query(RegistryEntry).count(),
        "checkpoint": log.checkpoint(size, head_hash),
    }


def visible_to(agency: str, owner: str, collection: str) -> bool:
    return agreements.can_see(owner, agency, collection)
