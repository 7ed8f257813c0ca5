"""What the adversarial tests check after every attack: the hub's state, read behind its back.

An attack must leave three marks and no others:

- the refusal the attacker gets (status and reason: asserted by each test);
- nothing written: :func:`witness` takes the hub's state (records, the change
  log and its head, every device's feed and status, feed links, held changes,
  equivocations, conflicts, devices, enrollment tokens) and the test compares
  it before and after (bookkeeping that a refused request may touch - request
  nonces, a device's last-seen time - is left out on purpose);
- the audit entries of the refusal (:func:`new_audit`), while the audit chain
  still verifies (:func:`assert_chain_intact`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import select

from backend import audit
from backend.db import db
from backend.models import (
    AuditEntry,
    ConflictRow,
    Device,
    EnrollmentToken,
    Equivocation,
    FeedLink,
    HeldChange,
    LogEntry,
    LogHead,
    Record,
)


@dataclass(frozen=True)
class State:
    records: dict[str, Any]
    log: list[tuple[int, str]]
    log_head: tuple[int, str | None]
    feeds: dict[str, tuple[int, str | None, str]]
    links: list[tuple[str, int, str]]
    held: list[tuple[str, int]]
    equivocations: int
    conflicts: list[str]
    tokens: list[tuple[str, str | None, str | None]]
    audit_size: int


def witness(app: Flask) -> State:
    """The hub's state as stored (columns a refused request may touch are left out)."""
    with app.app_context():
        s = db.session
        head = s.get(LogHead, 1)
        state = State(
            records={
                r.record_id: (r.collection, r.agency, r.values, r.deleted, r.updated_hlc)
                for r in s.scalars(select(Record))
            },
            log=[(e.seq, e.change_id) for e in s.scalars(select(LogEntry).order_by(LogEntry.seq))],
            log_head=(head.size, head.head) if head is not None else (0, None),
            feeds={d.id: (d.feed_seq, d.feed_hash, d.status) for d in s.scalars(select(Device))},
            links=sorted((link.device, link.seq, link.status) for link in s.scalars(select(FeedLink))),
            held=sorted((h.device, h.seq) for h in s.scalars(select(HeldChange))),
            equivocations=len(list(s.scalars(select(Equivocation)))),
            conflicts=sorted(c.id for c in s.scalars(select(ConflictRow))),
            tokens=sorted(
                (t.token_hash, str(t.used_at) if t.used_at else None, t.device_id)
                for t in s.scalars(select(EnrollmentToken))
            ),
            audit_size=len(list(s.scalars(select(AuditEntry.seq)))),
        )
        s.remove()
    return state


def unchanged_but_audit(before: State, after: State) -> None:
    """Nothing but the audit log moved between ``before`` and ``after``."""
    for name in State.__dataclass_fields__:
        if name != "audit_size":
            assert getattr(after, name) == getattr(before, name), f"the attack changed {name}"


def new_audit(app: Flask, before: State) -> list[AuditEntry]:
    """Audit entries written since ``before`` was taken, oldest first."""
    with app.app_context():
        entries = list(
            db.session.scalars(select(AuditEntry).where(AuditEntry.seq > before.audit_size).order_by(AuditEntry.seq))
        )
        db.session.expunge_all()
        db.session.remove()
    return entries


def assert_chain_intact(app: Flask) -> None:
    with app.app_context():
        report = audit.verify()
        db.session.remove()
    assert report.ok, report.problems


def forms_of(secret: str) -> list[bytes]:
    """Every spelling of ``secret`` that could carry it out of the hub in a JSON answer: its
    text (UTF-8), its JSON string forms (escaped or not), and base64 of either (std, urlsafe,
    padded or not, at each of the three alignments a surrounding text could give it)."""
    texts = [secret.encode(), json.dumps(secret).encode(), json.dumps(secret, ensure_ascii=False).encode()]
    texts.append(json.dumps(secret)[1:-1].encode())  # the escaped text without its quotes
    forms = list(texts)
    for text in texts:
        for shift in range(3):
            chunk = text[shift:] if shift else text
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                encoded = encode(chunk)
                # drop the last 4 characters, which depend on what follows the value
                core = encoded.rstrip(b"=")[:-4] if shift else encoded
                forms.extend({encoded, encoded.rstrip(b"="), core})
    return [f for f in forms if len(f) >= 8]


def leaks(payload: bytes, secret: str) -> list[bytes]:
    """The forms of ``secret`` found in ``payload`` (empty: it does not appear)."""
    return [form for form in forms_of(secret) if form in payload]
