"""Enrolled devices as administrators see them: the list, and a quarantined device's proof.

Rules this module owns:

- The device list is ordered by agency, then by enrollment; an agency filter
  narrows it. ``fieldsync-hub device list`` and the admin devices page read
  the same rows (the page re-sorts them on the column asked for).
- A device's proof is every equivocation stored for it, oldest first: at each
  seq, the change the hub held and the one it was offered, both as signed, so
  anyone can verify them offline. An unknown device is an error, not an empty
  proof.

Enrollment and revocation, which change devices, are backend.enroll's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crypto.clock import as_utc

from .db import db
from .errors import NotFound
from .models import Device, Equivocation


def listing(agency: str | None = None) -> list[Device]:
    """Every device (or one agency's), by agency and then in order of enrollment."""
    query = select(Device).order_by(Device.agency, Device.enrolled_at)
    if agency:
        query = query.where(Device.agency == agency)
    return list(db.session.scalars(query))


def get(device_id: str) -> Device:
    device = db.session.get(Device, device_id)
    if device is None:
        raise NotFound(f"no device {device_id}")
    return device


def proof(device_id: str) -> list[dict[str, Any]]:
    """Both signed changes at each seq where the device equivocated (JSON-ready)."""
    get(device_id)
    found = db.session.scalars(select(Equivocation).where(Equivocation.device == device_id).order_by(Equivocation.id))
    return [
        {
            "seq": e.seq,
            "detected_at": as_utc(e.detected_at).isoformat(),
            "held": e.held,
            "offered": e.offered,
        }
        for e in found
    ]
