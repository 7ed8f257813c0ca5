"""One push as a unit of work (see backend/push.py for the rules it serves).

Why it exists: checked and written change by change, a 500-change push cost
about six SQL round trips, a savepoint and an ORM flush per change. A
:class:`Batch` reads what the whole batch needs with one query each, once the
log-head lock is held (the lock serializes pushes, so what is read then stays
true until commit), keeps merged records in memory, and writes log entries and
feed links with one executemany each (bench/bench_hub.py measures it).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import insert, select

from sync import Change, ValidationError, Verifier, validate_change

from . import agreements, records
from .db import db
from .models import Device, FeedLink, HeldChange, LogEntry, Record


class Refused(Exception):
    """A change that is authentic but not admissible (authorization, schema, merge)."""

    def __init__(self, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason, self.details = reason, details or {}


def envelope_refusal(change: Change) -> Refused | None:
    """Schema checks of an authentic change. A failure refuses the change but, the
    change being the device's own signed word, its feed still moves past it."""
    try:
        validate_change(dict(change.wire))
    except ValidationError as exc:
        return Refused("invalid change", exc.messages)
    return None


class Link(NamedTuple):
    hash: str
    status: str
    reason: str | None
    wire: dict[str, Any]


class Batch:
    """One push as a unit of work: what the batch needs, read once under the head lock;
    what it writes, collected and written at the end (:meth:`finish`)."""

    def __init__(
        self, dev: Device, head: Any, verifier: Verifier, changes: list[Change], envelopes: dict[str, Refused | None]
    ) -> None:
        self.dev, self.head, self.verifier = dev, head, verifier
        self.envelopes = envelopes
        ids = list({c.id for c in changes})
        self.used_ids: set[str] = set()  # ids in the log, or accepted earlier in this batch
        self.checked_ids: set[str] = set(ids)  # ids whose presence in the log is known
        for chunk in chunks(ids):
            self.used_ids.update(db.session.scalars(select(LogEntry.change_id).where(LogEntry.change_id.in_(chunk))))
        old = sorted({c.seq for c in changes if c.seq <= dev.feed_seq})
        self.links: dict[int, Link] = {}
        for chunk in chunks(old):
            for link in db.session.scalars(select(FeedLink).where(FeedLink.device == dev.id, FeedLink.seq.in_(chunk))):
                self.links[link.seq] = Link(link.hash, link.status, link.reason, link.wire)
        self.held: set[int] = set(db.session.scalars(select(HeldChange.seq).where(HeldChange.device == dev.id)))
        # record_id -> [row or None, merged state or None, changed]
        self.records: dict[str, list[Any]] = {}
        record_ids = list({c.record_id for c in changes if c.collection != "reservations"})
        for chunk in chunks(record_ids):
            for row in db.session.scalars(select(Record).where(Record.record_id.in_(chunk)).with_for_update()):
                self.records[row.record_id] = [row, records.from_row(row), False]
        for record_id in record_ids:
            self.records.setdefault(record_id, [None, None, False])
        self.shares: dict[str, agreements.Share | None] = {}
        self.log_rows: list[dict[str, Any]] = []
        self.link_rows: list[dict[str, Any]] = []

    def check_envelope(self, change: Change) -> None:
        """The schema check, done before the head lock for the batch's own changes (it reads
        nothing, and it is the costliest check: holding the lock for it would serialize it)."""
        if change.hash not in self.envelopes:  # a released held change, from an earlier batch
            self.envelopes[change.hash] = envelope_refusal(change)
        refusal = self.envelopes[change.hash]
        if refusal is not None:
            raise Refused(refusal.reason, refusal.details)

    def id_used(self, change_id: str) -> bool:
        if change_id not in self.checked_ids:  # a released held change, from an earlier batch
            self.checked_ids.add(change_id)
            if db.session.scalar(select(LogEntry.seq).where(LogEntry.change_id == change_id)) is not None:
                self.used_ids.add(change_id)
        return change_id in self.used_ids

    def link(self, seq: int) -> Link | None:
        if seq not in self.links:
            row = db.session.get(FeedLink, (self.dev.id, seq))
            if row is None:
                return None
            self.links[seq] = Link(row.hash, row.status, row.reason, row.wire)
        return self.links[seq]

    def record(self, record_id: str) -> list[Any]:
        if record_id not in self.records:
            row, state = records.load(record_id, lock=True)
            self.records[record_id] = [row, state, False]
        return self.records[record_id]

    def share(self, owner: str, writer: str) -> agreements.Share | None:
        if owner not in self.shares:
            self.shares[owner] = agreements.share(owner, writer)
        return self.shares[owner]

    def write_records(self) -> None:
        """Store every record this batch changed (the ORM writes them at the next flush)."""
        for entry in self.records.values():
            if entry[2]:
                entry[0] = records.store(entry[0], entry[1])
                entry[2] = False

    def flush(self) -> None:
        """Write everything pending, so that queries see it (before a reservation's checks)."""
        self.write_records()
        if self.log_rows:
            db.session.execute(insert(LogEntry), self.log_rows)
            self.log_rows = []
        if self.link_rows:
            db.session.execute(insert(FeedLink), self.link_rows)
            self.link_rows = []
        db.session.flush()

    def finish(self) -> None:
        self.flush()


def chunks(items: list[Any], size: int = 500) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
