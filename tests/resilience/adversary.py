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
from tests.backend.helpers import Hub, Officer, raw

PUSH = "/api/v1/sync/push"
SECRET_NOTE = "safe combination: 4-8-15-16 — código ✓"
SECRET_PHONE = "+1 (555) 0199-4242"


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
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                encoded = encode(text[shift:])
                # inside a longer text the last 4 characters depend on what follows the value
                forms.extend({encoded, encoded.rstrip(b"="), encoded.rstrip(b"=")[:-4]})
    return [f for f in forms if len(f) >= 8]


def leaks(payload: bytes, secret: str) -> list[bytes]:
    """The forms of ``secret`` found in ``payload`` (empty: it does not appear)."""
    return [form for form in forms_of(secret) if form in payload]


# -- the scene and the checks every attack test shares ---------------------------------------


def partners(hub: Hub, live: str, **agreement: Any) -> tuple[Officer, Officer, Officer]:
    """SPD shares its resources with CSO (read-only unless ``agreement`` says otherwise); FBI gets
    nothing. One officer each: Sgt. Lee (SPD), Dep. Kim (CSO), Agent Ray (FBI)."""
    for code in ("SPD", "CSO", "FBI"):
        hub.agency(code)
    hub.agreement("SPD", "CSO", ["resources"], **agreement)
    return (
        Officer(live, hub.token("SPD", "Sgt. Lee")),
        Officer(live, hub.token("CSO", "Dep. Kim")),
        Officer(live, hub.token("FBI", "Agent Ray")),
    )


def accepted(results: list[dict[str, Any]]) -> bool:
    return all(r["status"] == "accepted" for r in results)


def push(live: str, officer: Officer, *wires: dict[str, Any]) -> list[dict[str, Any]]:
    """One signed push of ``wires`` by ``officer``'s laptop; its per-change verdicts."""
    response = raw(live, "POST", PUSH, {"changes": list(wires)}, officer=officer)
    assert response.status_code == 200, response.text[:500]
    return response.json()["results"]  # type: ignore[no-any-return]


def refused_changes(app: Flask, before: State, officer: Officer, wires: list[dict[str, Any]]) -> list[AuditEntry]:
    """(c): one ``change.rejected`` entry per wire, naming the pushing device, its agency and the change."""
    entries = new_audit(app, before)
    assert [(e.action, e.outcome) for e in entries] == [("change.rejected", "rejected")] * len(wires), entries
    assert [e.object for e in entries] == [w["id"] for w in wires]
    for entry, wire in zip(entries, wires, strict=True):
        assert (entry.actor, entry.agency) == (f"device:{officer.device_id}", officer.agency)
        assert entry.details["record"] == wire["record_id"] and entry.details["collection"] == wire["collection"]
        assert entry.details["reason"]
    return entries


def refused_requests(app: Flask, before: State, officer: Officer, objects: list[str]) -> list[AuditEntry]:
    """(c): one ``request.refused`` entry per refused request, naming the device, agency and request."""
    entries = new_audit(app, before)
    assert [(e.action, e.outcome) for e in entries] == [("request.refused", "refused")] * len(objects), entries
    assert [e.object for e in entries] == objects
    assert all((e.actor, e.agency) == (f"device:{officer.device_id}", officer.agency) for e in entries)
    return entries


def only_feed_moved(before: State, after: State, moved: dict[str, int]) -> None:
    """(b) for authentic changes refused by an agreement: each attacker's feed moved past its
    refused links (``moved``: device -> how many), everything else is as it was."""
    for device, count in moved.items():
        seq = before.feeds[device][0]
        assert after.feeds[device][0] == seq + count
        added = sorted(set(after.links) - set(before.links))
        assert [link for link in added if link[0] == device] == [
            (device, s, "rejected") for s in range(seq + 1, seq + count + 1)
        ]
    kept = {d: f for d, f in after.feeds.items() if d not in moved}
    assert kept == {d: f for d, f in before.feeds.items() if d not in moved}
    assert [link for link in after.links if link[0] not in moved] == [
        link for link in before.links if link[0] not in moved
    ]
    for name in ("records", "log", "log_head", "held", "equivocations", "conflicts", "tokens"):
        assert getattr(after, name) == getattr(before, name), f"the attack changed {name}"
