"""One push batch's working set: what it reads once under the head lock, what it writes at the end.

Rules this module owns:

- Everything the batch needs is read once the log-head lock is held, with one
  query per kind: the change ids already in the log, the device's feed links
  at the seqs it re-sends, its held-back changes, and the records its
  resource and contact changes write (locked). The lock serializes pushes, so
  what is read then stays true until commit.
- What the batch learns as it goes is kept here too (ids used, links added,
  changes held or released), so a later change of the same batch sees an
  earlier one exactly as if they had been pushed one at a time.
- Records are merged in memory and written once per record; log entries and
  feed links are inserted with one executemany each, at :meth:`Batch.flush`
  (before a reservation's checks, which read other records) and at
  :meth:`Batch.finish`.
- The schema check of a change (:func:`envelope_refusal`) reads nothing; the
  batch keeps its verdict, made before the lock for the batch's own changes,
  and makes it late only for a released held change of an earlier batch.

The verdicts themselves are backend/push.py's; bench/bench_hub.py measures this.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import insert, select

from crypto.clock import now
from sync import Change, FeedHead, RecordState, ValidationError, Verifier, validate_change

from . import agreements, log, records
from .db import db
from .models import Device, FeedLink, HeldChange, LogEntry, Record
from .policy import Refused


def envelope_refusal(change: Change) -> Refused | None:
    """Schema checks of an authentic change. A failure refuses the change but, the
    change being the device's own signed word, its feed still moves past it."""
    try:
        validate_change(dict(change.wire))
    except ValidationError as exc:
        return Refused("invalid change", exc.messages)
    return None


class Link(NamedTuple):
    """A link of the device's feed as the hub holds it, with the verdict it got."""

    hash: str
    status: str
    reason: str | None
    wire: dict[str, Any]


class Batch:
    """One push as a unit of work: what the batch needs, read once under the head lock;
    what it writes, collected and written at the end (:meth:`finish`). ``dev`` is the
    pushing device's row, locked."""

    def __init__(
        self, dev: Device, head: Any, verifier: Verifier, changes: list[Change], envelopes: dict[str, Refused | None]
    ) -> None:
        self.dev, self._head, self._verifier = dev, head, verifier
        self._envelopes = envelopes
        ids = list({c.id for c in changes})
        self._used_ids: set[str] = set()  # ids in the log, or accepted earlier in this batch
        self._checked_ids: set[str] = set(ids)  # ids whose presence in the log is known
        for chunk in chunks(ids):
            self._used_ids.update(db.session.scalars(select(LogEntry.change_id).where(LogEntry.change_id.in_(chunk))))
        old = sorted({c.seq for c in changes if c.seq <= dev.feed_seq})
        self._links: dict[int, Link] = {}
        for chunk in chunks(old):
            for link in db.session.scalars(select(FeedLink).where(FeedLink.device == dev.id, FeedLink.seq.in_(chunk))):
                self._links[link.seq] = Link(link.hash, link.status, link.reason, link.wire)
        self._held: set[int] = set(db.session.scalars(select(HeldChange.seq).where(HeldChange.device == dev.id)))
        # record_id -> [row or None, merged state or None, changed]
        self._records: dict[str, list[Any]] = {}
        record_ids = list({c.record_id for c in changes if c.collection != "reservations"})
        for chunk in chunks(record_ids):
            for row in db.session.scalars(select(Record).where(Record.record_id.in_(chunk)).with_for_update()):
                self._records[row.record_id] = [row, records.from_row(row), False]
        for record_id in record_ids:
            self._records.setdefault(record_id, [None, None, False])
        self._shares: dict[str, agreements.Share | None] = {}
        self._log_rows: list[dict[str, Any]] = []
        self._link_rows: list[dict[str, Any]] = []

    # -- the device's feed ---------------------------------------------------------------

    def feed_head(self) -> FeedHead:
        """The device's last authentic link (accepted or refused)."""
        return FeedHead(self.dev.feed_seq, self.dev.feed_hash)

    def link(self, seq: int) -> Link | None:
        """The device's link at ``seq``, if the hub holds one."""
        if seq not in self._links:
            row = db.session.get(FeedLink, (self.dev.id, seq))
            if row is None:
                return None
            self._links[seq] = Link(row.hash, row.status, row.reason, row.wire)
        return self._links[seq]

    def advance_feed(self, change: Change, status: str, reason: str | None) -> None:
        """Make ``change`` the feed's next link, with its verdict (written at :meth:`flush`)."""
        wire = dict(change.wire)
        self._link_rows.append(
            {
                "device": self.dev.id,
                "seq": change.seq,
                "hash": change.hash,
                "change_id": change.id,
                "status": status,
                "reason": reason,
                "wire": wire,
                "received_at": now(),
            }
        )
        self._links[change.seq] = Link(change.hash, status, reason, wire)
        self.dev.feed_seq, self.dev.feed_hash = change.seq, change.hash

    # -- changes held back ahead of a gap ------------------------------------------------

    def held_at(self, seq: int) -> dict[str, Any] | None:
        """The change held back at ``seq`` (its wire form), if any."""
        row = db.session.get(HeldChange, (self.dev.id, seq)) if seq in self._held else None
        return row.wire if row is not None else None

    def hold(self, change: Change) -> None:
        """Keep ``change`` back until the changes before it arrive."""
        db.session.add(HeldChange(device=self.dev.id, seq=change.seq, wire=dict(change.wire), received_at=now()))
        self._held.add(change.seq)

    def take_held(self, seq: int) -> dict[str, Any] | None:
        """Remove and return the change held back at ``seq`` (its wire form), if any."""
        if seq not in self._held:
            return None
        self._held.discard(seq)
        row = db.session.get(HeldChange, (self.dev.id, seq))
        if row is None:
            return None
        db.session.delete(row)
        return row.wire

    def verify(self, wire: dict[str, Any]) -> Change:
        """Verify a held change again, as the device's (it may have been revoked since)."""
        return self._verifier.verify(wire, self.dev.certificate)

    # -- checks --------------------------------------------------------------------------

    def check_envelope(self, change: Change) -> None:
        """The schema check, done before the head lock for the batch's own changes (it reads
        nothing, and it is the costliest check: holding the lock for it would serialize it)."""
        if change.hash not in self._envelopes:  # a released held change, from an earlier batch
            self._envelopes[change.hash] = envelope_refusal(change)
        refusal = self._envelopes[change.hash]
        if refusal is not None:
            raise Refused(refusal.reason, refusal.details)

    def id_used(self, change_id: str) -> bool:
        """Is ``change_id`` in the log, or accepted earlier in this batch?"""
        if change_id not in self._checked_ids:  # a released held change, from an earlier batch
            self._checked_ids.add(change_id)
            if db.session.scalar(select(LogEntry.seq).where(LogEntry.change_id == change_id)) is not None:
                self._used_ids.add(change_id)
        return change_id in self._used_ids

    def share(self, owner: str, writer: str) -> agreements.Share | None:
        """The agreement from ``owner`` to the pushing agency, asked once per owner."""
        if owner not in self._shares:
            self._shares[owner] = agreements.share(owner, writer)
        return self._shares[owner]

    # -- records and the log ---------------------------------------------------------------

    def state(self, record_id: str) -> RecordState | None:
        """A resource's or contact's merged state as the batch holds it (None: no such record)."""
        if record_id not in self._records:
            self._records[record_id] = [*records.load(record_id, lock=True), False]
        merged: RecordState | None = self._records[record_id][1]
        return merged

    def accept(self, change: Change, merged: RecordState) -> None:
        """Keep ``change``'s merged record and queue its log entry (written at :meth:`flush`)."""
        entry = self._records[change.record_id]
        entry[1], entry[2] = merged, True
        self._log_rows.append(log.entry(self._head, change))
        self._used_ids.add(change.id)

    def append_log(self, change: Change, *, resource_agency: str | None) -> None:
        """Append an accepted reservation change to the log at once (pending rows are flushed)."""
        log.append(self._head, change, resource_agency=resource_agency)
        self._used_ids.add(change.id)

    def drop_record(self, record_id: str) -> None:
        """Forget the batch's copy of a record whose change is written directly (a reservation)."""
        self._records.pop(record_id, None)

    def flush(self) -> None:
        """Write everything pending, so that queries see it (before a reservation's checks)."""
        for entry in self._records.values():
            if entry[2]:
                entry[0] = records.store(entry[0], entry[1])
                entry[2] = False
        if self._log_rows:
            db.session.execute(insert(LogEntry), self._log_rows)
            self._log_rows = []
        if self._link_rows:
            db.session.execute(insert(FeedLink), self._link_rows)
            self._link_rows = []
        db.session.flush()

    def finish(self) -> None:
        self.flush()


def chunks(items: list[Any], size: int = 500) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
