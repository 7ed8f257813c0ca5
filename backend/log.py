"""The change log that laptops pull: numbering accepted changes and chaining them.

Rules this module owns:

- The hub numbers log entries itself, in commit order. With an auto-increment
  key, a transaction that took number 11 can commit after one that took 12; a
  client that pulled "after 10" in between sees 12, moves its cursor to 12 and
  never sees 11. So a batch locks the single ``log_head`` row before its first
  append and holds it to commit (backend.chain): batches append one after
  another, and a reader never sees number n+1 committed before n.
- Each entry carries ``chain`` = SHA-256(chain of entry n-1 || change hash),
  the first entry's predecessor being empty; the head's size and last chain
  value are what the hub signs as its checkpoint (:func:`checkpoint`).
"""

from __future__ import annotations

from typing import Any

from crypto import b64d, b64e, get_provider, sign_checkpoint
from crypto.clock import now
from sync import Change

from . import chain
from .db import db
from .keystore import hub_key
from .models import LogEntry, LogHead


def lock_head() -> LogHead:
    """The log's head, locked until commit: take it before a batch's first append."""
    return chain.lock(LogHead)


def read_head() -> LogHead:
    """The log's committed size and head (no lock): what a pull page is cut at."""
    return chain.read(LogHead)


def ensure_head() -> None:
    """Create the log's empty head row if it is missing (``fieldsync-hub init``)."""
    chain.ensure(LogHead)


def chain_hash(prev: str | None, change_hash: str) -> str:
    prev_raw = b64d(prev) if prev else b""
    return b64e(get_provider().hash(prev_raw + b64d(change_hash)))


def entry(head: LogHead, change: Change, *, resource_agency: str | None = None) -> dict[str, Any]:
    """Number an accepted change and advance the head; returns the log row's columns for the
    caller to insert (a push inserts a batch's rows with one executemany). The caller holds
    the head lock."""
    link = chain_hash(head.head, change.hash)
    row = {
        "seq": head.size + 1,
        "change_id": change.id,
        "hash": change.hash,
        "chain": link,
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
    chain.advance(head, row["seq"], link)
    return row


def append(head: LogHead, change: Change, *, resource_agency: str | None = None) -> LogEntry:
    """Append an accepted change now (one ORM row); the caller holds the head lock."""
    row = LogEntry(**entry(head, change, resource_agency=resource_agency))
    db.session.add(row)
    return row


def checkpoint(size: int, head: str | None) -> dict[str, object]:
    return sign_checkpoint(hub_key(), size=size, head=head, at=now())
