"""The change log and its head: why the pull cursor is safe under concurrency.

With an auto-increment key, a transaction that took number 11 can commit after
one that took 12; a client that pulled "after 10" in between sees 12, moves its
cursor to 12 and never sees 11. So the hub numbers log entries itself, under a
row lock on the single ``log_head`` row taken before the first append of a
batch and held to commit: batches append one after another, numbers are
assigned in commit order, and a reader never sees number n+1 committed before
n. (SQLite serializes writers with BEGIN IMMEDIATE, to the same effect.)

The head also carries a hash chain over the log (``chain`` of entry n =
SHA-256(chain of n-1 || change hash)), which the hub signs as its checkpoint.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crypto import b64d, b64e, get_provider, sign_checkpoint
from crypto.clock import now
from sync import Change

from .db import db
from .keystore import hub_key
from .models import LogEntry, LogHead


def lock_head() -> LogHead:
    head = db.session.scalar(select(LogHead).where(LogHead.id == 1).with_for_update())
    if head is None:
        head = LogHead(id=1, size=0, head=None)
        db.session.add(head)
        db.session.flush()
    return head


def read_head() -> LogHead:
    head = db.session.get(LogHead, 1)
    return head if head is not None else LogHead(id=1, size=0, head=None)


def chain_hash(prev: str | None, change_hash: str) -> str:
    prev_raw = b64d(prev) if prev else b""
    return b64e(get_provider().hash(prev_raw + b64d(change_hash)))


def entry(head: LogHead, change: Change, *, resource_agency: str | None = None) -> dict[str, Any]:
    """Number an accepted change and advance the head; returns the log row's columns for the
    caller to insert (a push inserts a batch's rows with one executemany). The caller holds
    the head lock."""
    chain = chain_hash(head.head, change.hash)
    row = {
        "seq": head.size + 1,
        "change_id": change.id,
        "hash": change.hash,
        "chain": chain,
        "device": change.device,
        "device_seq": change.seq,
        "record_id": change.record_id,
        "collection": change.collection,
        "agency": change.agency,
        "resource_agency": resource_agency,
        "hlc": change.hlc,
        "wire": dict(change.wire),
        "accepted_at": now(),
    }
    head.size, head.head = row["seq"], chain
    return row


def append(head: LogHead, change: Change, *, resource_agency: str | None = None) -> LogEntry:
    """Append an accepted change now (one ORM row); the caller holds the head lock."""
    row = LogEntry(**entry(head, change, resource_agency=resource_agency))
    db.session.add(row)
    return row


def checkpoint(size: int, head: str | None) -> dict[str, object]:
    return sign_checkpoint(hub_key(), size=size, head=head, at=now())
