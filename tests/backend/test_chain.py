"""backend.chain: the head row both hash chains (change log, audit log) keep.

The chains themselves are tested where their hashes are made: tests/backend/test_concurrency.py
(the change log under concurrent pushes) and tests/backend/test_audit.py (tampering is caught).
"""

from __future__ import annotations

from flask import Flask

from backend import chain
from backend.db import db
from backend.models import AuditHead, LogHead


def test_a_missing_head_reads_empty_without_a_write_and_locking_creates_it(app: Flask) -> None:
    with app.app_context():
        assert db.session.get(AuditHead, 1) is None  # nothing audited yet
        empty = chain.read(AuditHead)
        assert (empty.size, empty.head) == (0, None)
        assert db.session.get(AuditHead, 1) is None and not db.session.new
        head = chain.lock(AuditHead)
        assert (head.size, head.head) == (0, None)
        chain.advance(head, 1, "first")
        db.session.commit()
        stored = chain.read(AuditHead)
        assert (stored.size, stored.head) == (1, "first")


def test_ensure_creates_the_row_once(app: Flask) -> None:
    with app.app_context():
        assert db.session.get(LogHead, 1) is not None  # the fixture's bootstrap.start_hub made it
        chain.ensure(LogHead)
        chain.ensure(AuditHead)
        db.session.commit()
        assert [(h.id, h.size, h.head) for h in db.session.scalars(db.select(LogHead))] == [(1, 0, None)]
        assert [(h.id, h.size, h.head) for h in db.session.scalars(db.select(AuditHead))] == [(1, 0, None)]
