"""The audit log: append-only and hash-chained.

Rules this module owns:

- Every admin action, login (and failure), enrollment, revocation, conflict
  resolution and rejected change is one entry: UTC time, actor, agency,
  action, object, outcome, details.
- Entry ``n`` stores ``prev`` (hash of entry ``n-1``) and its own ``hash`` =
  SHA-256 of the canonical entry under the ``audit`` domain. ``audit_head``
  holds the size and last hash, so deleting entries at the end is caught too.
- Appending locks ``audit_head`` (backend.chain: after ``log_head`` when both
  are needed) and happens in the same transaction as the action it records.
- :func:`verify` recomputes the chain and names the first entry that was
  edited, removed or inserted.
- Appending to a broken chain still works and stays a sound link: the new
  entry takes the next seq after both the head and the highest stored entry
  (an entry inserted behind the head's back cannot block the log, so the
  alarm about it can be written) and links to the head the hub wrote last, so
  the intruder stays named. Text an attacker chooses (actor, object) is cut
  to its column, so recording a refusal never fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from crypto import b64e, get_provider, signing_bytes
from crypto.clock import stamp

from . import chain
from .db import db
from .models import AuditEntry, AuditHead


def _hash(body: dict[str, Any]) -> str:
    return b64e(get_provider().hash(signing_bytes("audit", body)))


def _body(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at,
        "actor": entry.actor,
        "agency": entry.agency,
        "action": entry.action,
        "object": entry.object,
        "outcome": entry.outcome,
        "details": entry.details,
        "prev": entry.prev,
    }


ACTOR_LENGTH, AGENCY_LENGTH, OBJECT_LENGTH = 200, 32, 300  # the columns' sizes (backend/models.py)


def _clip(value: str | None, length: int) -> str | None:
    """Attacker-chosen text (a device header, a path, a change id) cut to its column: a refusal
    must be recorded, not turned into a database error."""
    if value is None or len(value) <= length:
        return value
    return value[: length - 1] + "…"


def record(
    action: str,
    *,
    actor: str,
    agency: str | None = None,
    object: str | None = None,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the current transaction (the caller commits)."""
    head = chain.lock(AuditHead)
    # an entry slipped in behind the head's back holds seq size+1: never collide with it (the
    # new entry still links to the head, so verify keeps naming the intruder)
    top = db.session.scalar(select(func.max(AuditEntry.seq))) or 0
    entry = AuditEntry(
        seq=max(head.size, top) + 1,
        at=stamp(),
        actor=_clip(actor, ACTOR_LENGTH),
        agency=_clip(agency, AGENCY_LENGTH),
        action=action,
        object=_clip(object, OBJECT_LENGTH),
        outcome=outcome,
        details=details or {},
        prev=head.head,
    )
    entry.hash = _hash(_body(entry))
    db.session.add(entry)
    chain.advance(head, entry.seq, entry.hash)
    return entry


def refused(action: str, *, actor: str, reason: str, object: str | None = None, agency: str | None = None) -> None:
    """Roll back a refused action and commit its audit entry on its own (``outcome = refused``).

    A refused attempt is evidence too (a staff member trying to resolve a
    conflict that is gone, an admin removing the last admin): the refusal must
    not vanish with the rolled-back transaction it would have been part of.
    """
    db.session.rollback()
    record(action, actor=actor, agency=agency, object=object, outcome="refused", details={"reason": reason})
    db.session.commit()


@dataclass(frozen=True)
class AuditReport:
    size: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify() -> AuditReport:
    """Walk the whole chain and report every break, first one first."""
    problems: list[str] = []
    prev: str | None = None
    expected = 1
    count = 0
    for entry in db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).yield_per(1000):
        count += 1
        if entry.seq != expected:
            problems.append(f"entries {expected}..{entry.seq - 1} are missing (deleted)")
            expected = entry.seq
        if entry.prev != prev:
            linked = (
                db.session.scalar(select(AuditEntry.seq).where(AuditEntry.hash == entry.prev)) if entry.prev else None
            )
            if linked is not None and linked < entry.seq - 1:
                problems.append(
                    f"entries {linked + 1}..{entry.seq - 1} were inserted: entry {entry.seq} links to entry {linked}"
                )
            else:
                problems.append(
                    f"entry {entry.seq} does not follow the entry before it (an entry was removed or inserted)"
                )
        if _hash(_body(entry)) != entry.hash:
            problems.append(f"entry {entry.seq} was altered: its content no longer matches its hash")
        prev = entry.hash
        expected += 1
    head = db.session.get(AuditHead, 1)
    if head is not None and (head.size != expected - 1 or head.head != prev):
        problems.append(
            f"the log ends at entry {expected - 1} but its head records {head.size} entries "
            "(entries were deleted at the end, or the head was edited)"
        )
    return AuditReport(count, problems)
