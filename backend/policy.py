"""Write policy: may agency X write this change of a record or a booking?

Rules this module owns:

- An agency always writes its own records (``change.agency``, the record's
  owner, is the writer's).
- Another agency writes an owner's record only under the owner's agreement
  (backend.agreements): only an existing record (it can neither create nor
  delete one), only of a shared collection, and only the agreement's
  ``write`` fields. Every field the change carries counts, withheld
  (digest-only) ones included.
- A booking is checked against the booked resource, read here: it must be a
  live resource that the requesting agency may see (an unseen resource and
  no resource get the same answer, so a refusal does not reveal one); then
  sync.reservations decides who may set which state and write which field.
- Every refusal is :class:`Refused`, with a reason and field-level details;
  the push pipeline makes it a ``rejected`` verdict. The caller reads the
  record and says whether it exists; agreement lookups are passed in, so a
  batch asks each once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from sync import Change, ReservationRefused, reservations

from . import agreements
from .db import db
from .models import Record

ShareLookup = Callable[[str, str], "agreements.Share | None"]


class Refused(Exception):
    """A change that is authentic but not admissible (authorization, schema, merge)."""

    def __init__(self, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason, self.details = reason, details or {}


def check_record_write(writer: str, change: Change, *, exists: bool, share: ShareLookup = agreements.share) -> None:
    """Raise :class:`Refused` unless agency ``writer`` may write ``change`` of a resource or contact.

    ``exists``: whether the hub holds the record; ``share(owner, writer)``: the agreement
    between them (asked only when the writer is not the owner).
    """
    owner = change.agency
    if owner == writer:
        return
    if change.deleted:
        raise Refused(f"only {owner} may delete its {change.collection}")
    if not exists:
        raise Refused(f"agency {writer} cannot create {change.collection} for agency {owner}")
    granted = share(owner, writer)
    if granted is None or change.collection not in granted.collections:
        raise Refused(f"no agreement lets {writer} write {owner}'s {change.collection}")
    denied = [name for name in (*change.values, *change.withheld) if name not in granted.write]
    if denied:
        raise Refused(
            f"the agreement from {owner} does not let {writer} write {', '.join(sorted(denied))}",
            {name: ["Not writable under the agreement."] for name in denied},
        )


def booked_resource(resource_id: Any) -> Record | None:
    """The booked resource's record (its agency decides the reservation), if the hub holds it."""
    return db.session.scalar(select(Record).where(Record.record_id == str(resource_id)))


def check_booking_write(writer: str, change: Change, row: Record | None) -> None:
    """Raise :class:`Refused` unless agency ``writer`` may write ``change`` of a reservation
    (``row``: the reservation as the hub holds it, None when the change creates it)."""
    requester = change.agency
    current = row.values if row is not None else {}
    resource_id = change.values.get("resource_id", current.get("resource_id"))
    resource = booked_resource(resource_id) if resource_id else None
    if resource is None or resource.collection != "resources" or resource.deleted:
        raise Refused("the reserved resource does not exist", {"resource_id": ["No such resource."]})
    if not agreements.can_see(resource.agency, requester, "resources"):
        raise Refused("the reserved resource does not exist", {"resource_id": ["No such resource."]})
    try:
        reservations.check_write(
            writer,
            requester=requester,
            resource_agency=resource.agency,
            values=change.values,
            withheld=change.withheld,
            deleted=change.deleted,
            current=current if row is not None else None,
        )
    except ReservationRefused as exc:
        raise Refused(exc.reason, exc.messages) from None
