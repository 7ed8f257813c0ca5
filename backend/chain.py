"""The head of a hash chain: one row holding the chain's size and its last hash.

Rules this module owns:

- A hash chain (the change log, backend.log; the audit log, backend.audit)
  keeps its size and last hash in a single head row, ``id = 1``. Appending
  locks that row (``SELECT ... FOR UPDATE``; on SQLite every transaction is
  ``BEGIN IMMEDIATE``, backend/db.py, to the same effect) before reading the
  last hash, and holds the lock to commit: two transactions never link to the
  same predecessor or take the same number, and numbers are assigned in
  commit order.
- Heads are locked in one order, ``log_head`` before ``audit_head``, so two
  transactions never wait on each other in a circle.
- A missing head row is an empty chain (size 0, no hash). Reading it writes
  nothing; locking it creates the row first, so there is a row to lock.
  ``fieldsync-hub init`` creates the log's row up front (:func:`ensure`), so
  that two first appends on PostgreSQL never both insert it.
- The head moves only by :func:`advance`, in the appender's transaction: the
  new size and the new entry's hash together.
- How an entry's hash is made belongs to each chain (the change log links
  change hashes, the audit log hashes the canonical entry that names its
  predecessor); this module keeps only the head, so the stored rows and the
  hashes stay what each chain defines.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select

from .db import db
from .models import AuditHead, LogHead

Head = TypeVar("Head", LogHead, AuditHead)


def lock(model: type[Head]) -> Head:
    """The chain's head row, locked to the end of the transaction (created empty if missing)."""
    head = db.session.scalar(select(model).where(model.id == 1).with_for_update())
    if head is None:
        head = model(id=1, size=0, head=None)
        db.session.add(head)
        db.session.flush()
    return head


def read(model: type[Head]) -> Head:
    """The chain's head as committed (an unsaved empty head if there is none); takes no lock."""
    head = db.session.get(model, 1)
    return head if head is not None else model(id=1, size=0, head=None)


def ensure(model: type[Head]) -> None:
    """Create the chain's empty head row if it is missing (the caller commits)."""
    if db.session.get(model, 1) is None:
        db.session.add(model(id=1, size=0, head=None))


def advance(head: Head, size: int, last: str) -> None:
    """Move the locked head to the entry just appended: its number and its hash."""
    head.size, head.head = size, last
