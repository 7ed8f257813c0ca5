"""Sharing agreements: who may see and write what.

Rules this module owns:

- An agency always sees and writes its own records.
- An agreement from A to B lets B see A's records of the listed collections,
  with the ``withhold`` fields reduced to digests, and lets B write the
  ``write`` fields of those records. B can neither create nor delete A's
  records.
- This module keeps agreements and answers what one grants; whether a given
  change may be written is backend.policy's decision (and a booking's, with
  sync.reservations: who may approve, decline or cancel).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from crypto.clock import now
from sync.schemas import COLLECTIONS, field_names

from . import audit
from .db import db
from .errors import Conflict, NotFound, Unprocessable
from .models import Agency, Agreement


@dataclass(frozen=True)
class Share:
    """What one agency shares with another."""

    collections: frozenset[str]
    withhold: frozenset[str]
    write: frozenset[str]


def shares_to(agency: str) -> dict[str, Share]:
    """For each agency that shares with ``agency``: what it shares."""
    rows = db.session.scalars(select(Agreement).where(Agreement.to_agency == agency))
    return {
        row.from_agency: Share(frozenset(row.collections), frozenset(row.withhold), frozenset(row.write))
        for row in rows
    }


def share(owner: str, reader: str) -> Share | None:
    row = db.session.scalar(select(Agreement).where(Agreement.from_agency == owner, Agreement.to_agency == reader))
    return Share(frozenset(row.collections), frozenset(row.withhold), frozenset(row.write)) if row else None


def can_see(owner: str, reader: str, collection: str) -> bool:
    if owner == reader:
        return True
    granted = share(owner, reader)
    return granted is not None and collection in granted.collections


def withheld_from(owner: str, reader: str) -> frozenset[str]:
    if owner == reader:
        return frozenset()
    granted = share(owner, reader)
    return granted.withhold if granted else frozenset()


def add(
    from_agency: str, to_agency: str, collections: list[str], withhold: list[str], write: list[str], *, actor: str
) -> Agreement:
    """Record an agreement after checking every name in it."""
    # each refusal names the option it is about in ``details`` (the admin form shows it beside that field)
    for option, code in (("from_agency", from_agency), ("to_agency", to_agency)):
        if db.session.get(Agency, code) is None:
            raise NotFound(f"unknown agency {code}", details={option: [f"No agency {code}."]})
    if from_agency == to_agency:
        raise Unprocessable(
            "an agency always sees its own records; name two different agencies",
            details={"to_agency": ["Must differ from the sharing agency."]},
        )
    unknown = [c for c in collections if c not in COLLECTIONS]
    if not collections or unknown:
        raise Unprocessable(
            f"unknown collection {', '.join(unknown) or '(none given)'}; use {', '.join(COLLECTIONS)}",
            details={"collections": [f"Choose from {', '.join(COLLECTIONS)}."]},
        )
    known = {name for c in collections for name in field_names(c)}
    for option, names in (("withhold", withhold), ("write", write)):
        bad = [n for n in names if n not in known]
        if bad:
            raise Unprocessable(
                f"{option}: no field {', '.join(bad)} in {', '.join(collections)}",
                details={option: [f"No field {', '.join(bad)} in {', '.join(collections)}."]},
            )
    both = set(withhold) & set(write)
    if both:
        raise Unprocessable(
            f"a field cannot be both withheld and writable: {', '.join(sorted(both))}",
            details={"write": [f"Also withheld: {', '.join(sorted(both))}."]},
        )
    if share(from_agency, to_agency) is not None:
        raise Conflict(
            f"an agreement from {from_agency} to {to_agency} exists; remove it first to change it",
            details={"to_agency": ["An agreement between these agencies exists."]},
        )
    row = Agreement(
        from_agency=from_agency,
        to_agency=to_agency,
        collections=list(dict.fromkeys(collections)),
        withhold=sorted(set(withhold)),
        write=sorted(set(write)),
        created_at=now(),
    )
    db.session.add(row)
    audit.record(
        "agreement.add",
        actor=actor,
        agency=from_agency,
        object=f"{from_agency}->{to_agency}",
        details={"collections": row.collections, "withhold": row.withhold, "write": row.write},
    )
    return row


def remove(from_agency: str, to_agency: str, *, actor: str) -> None:
    row = db.session.scalar(
        select(Agreement).where(Agreement.from_agency == from_agency, Agreement.to_agency == to_agency)
    )
    if row is None:
        raise NotFound(f"no agreement from {from_agency} to {to_agency}")
    db.session.delete(row)
    audit.record("agreement.remove", actor=actor, agency=from_agency, object=f"{from_agency}->{to_agency}")


def listing() -> list[Agreement]:
    """Every agreement, by sharing agency and then receiving agency."""
    return list(db.session.scalars(select(Agreement).order_by(Agreement.from_agency, Agreement.to_agency)))
