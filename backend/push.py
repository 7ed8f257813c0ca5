"""Push: one device's batch of changes -> a verdict per change.

Rules this module owns:

- Outside any transaction, each change is checked for being the pushing
  device's own, for a clock not absurdly far ahead and for its signature chain
  (sync.Verifier: certificate, agency key, registry, revocation cut, exact
  header types). A change that fails is ``rejected`` and touches nothing but
  the audit log: it is not the device's authentic word.
- The schema check of each authentic change is made there too (it reads
  nothing); its verdict is applied at the change's turn below.
- Then, in one transaction holding the log-head lock, authentic changes are
  placed in their device's feed in seq order (sync.feeds):
  ``duplicate`` - already held (the original verdict is repeated);
  ``held`` - ahead of a gap, kept until the gap fills;
  equivocation - both changes kept as proof, device quarantined, alert,
  nothing merged; the next link - validated (schemas), authorized
  (backend.agreements), merged (sync.merge) and appended to the log, inside a
  savepoint so a refused change never half-applies.
- An authentic link advances the device's feed whether it was accepted or
  refused: a refused write does not break the device's chain.
- Every rejection is written to the audit log in the same transaction, naming
  the pushing device and its agency, the change, the record, collection and
  owner it claims, and the reason.

Speed (bench/bench_hub.py): a batch is one unit of work (backend/pushbatch.py). After
the head lock is taken - which serializes pushes, so what is read then stays
true until commit - the batch's used change ids, feed links, held changes and
records are read with one query each; records are merged in memory and written
once per record, log entries and feed links are inserted with one executemany
each. Resources and contacts are checked completely before anything is
mutated, so a refused one needs no savepoint; reservations, whose checks read
other records, keep the savepoint path after the pending rows are flushed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import select

from crypto import change_hash
from crypto.clock import now
from sync import (
    Change,
    ChangeRejected,
    ClockDriftError,
    ClockError,
    FeedHead,
    ProvenanceError,
    ValidationError,
    Verdict,
    Verifier,
    apply,
    classify,
    find_double_bookings,
    validate_values,
)
from sync.hlc import Clock

from . import agreements, audit, keystore, log, records
from .db import db
from .errors import PayloadTooLarge, Unprocessable
from .models import ConflictRow, Device, DoubleBookingRow, Equivocation, HeldChange, Record
from .pushbatch import Batch, Link, Refused, envelope_refusal

logger = logging.getLogger("fieldsync.hub")


@dataclass
class Result:
    id: Any
    status: str  # accepted | duplicate | held | rejected
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        if self.details:
            out["details"] = self.details
        return out


def push(device: Device, batch: Any) -> list[dict[str, Any]]:
    if not isinstance(batch, list):
        raise Unprocessable("changes must be a list", details={"changes": ["Must be a list."]})
    if len(batch) > int(current_app.config["MAX_BATCH"]):
        raise PayloadTooLarge(f"a push carries at most {current_app.config['MAX_BATCH']} changes")
    results: list[Result | None] = [None] * len(batch)
    verifier = Verifier(keystore.registry())
    clock = Clock("hub", max_drift_ms=int(current_app.config["MAX_CLOCK_DRIFT"]) * 1000)
    authentic: list[tuple[int, Change]] = []
    envelopes: dict[str, Refused | None] = {}  # change hash -> schema refusal, found before the lock
    for pos, wire in enumerate(batch):
        change_id = wire.get("id") if isinstance(wire, dict) else None
        try:
            if not isinstance(wire, dict):
                raise ProvenanceError("a change must be an object")
            if wire.get("device") != device.id:
                raise ProvenanceError("a device may push only its own changes", change_id=change_id)
            if type(wire.get("seq")) is not int or wire["seq"] < 1:
                raise ProvenanceError("seq must be a whole number from 1", change_id=change_id)
            # the clock first: a laptop whose clock says 2099 is told so, not that its certificate expired
            clock.check(wire.get("hlc"))  # type: ignore[arg-type]
            change = verifier.verify(wire, device.certificate)
            authentic.append((pos, change))
            envelopes[change.hash] = envelope_refusal(change)
        except (ProvenanceError, ClockDriftError, ClockError) as exc:
            results[pos] = Result(change_id, "rejected", getattr(exc, "reason", None) or str(exc))

    dev = db.session.scalar(select(Device).where(Device.id == device.id).with_for_update())
    head = log.lock_head()
    work = Batch(dev, head, verifier, [change for _, change in authentic], envelopes) if dev is not None else None
    for pos, change in sorted(authentic, key=lambda item: item[1].seq):
        if dev is None or dev.status != "active":
            status = dev.status if dev is not None else "unknown"
            results[pos] = Result(change.id, "rejected", f"device is {status}")
            continue
        assert work is not None
        results[pos] = _place(work, change)
    if work is not None:
        work.finish()
    if dev is not None:
        dev.last_push_at = dev.last_seen_at = now()
    for wire, result in zip(batch, results, strict=True):
        assert result is not None
        if result.status == "rejected":
            _audit_rejection(device, result, wire)
    db.session.commit()
    return [r.to_json() for r in results if r is not None]


def _audit_rejection(device: Device, result: Result, wire: Any) -> None:
    """Who (the pushing device and its agency), which change, what it aimed at, and why."""
    aimed = {}
    if isinstance(wire, dict):  # what the change claims, clipped: a forged one may say anything
        for key, name in (("record_id", "record"), ("collection", "collection"), ("agency", "owner")):
            if isinstance(wire.get(key), str):
                aimed[name] = wire[key][:100]
    audit.record(
        "change.rejected",
        actor=f"device:{device.id}",
        agency=device.agency,
        object=str(result.id),
        outcome="rejected",
        details={"reason": result.reason, **aimed, **({"fields": result.details} if result.details else {})},
    )


def _place(work: Batch, change: Change) -> Result:
    dev = work.dev
    link = work.link(change.seq) if change.seq <= dev.feed_seq else None
    verdict = classify(FeedHead(dev.feed_seq, dev.feed_hash), change, link.hash if link else None)
    if verdict is Verdict.DUPLICATE:
        assert link is not None
        return Result(change.id, "duplicate", link.reason if link.status == "rejected" else None)
    if verdict is Verdict.EQUIVOCATION:
        return _equivocation(dev, change, link.wire if link else None)
    if verdict is Verdict.GAP:
        held = db.session.get(HeldChange, (dev.id, change.seq)) if change.seq in work.held else None
        if held is None:
            db.session.add(HeldChange(device=dev.id, seq=change.seq, wire=dict(change.wire), received_at=now()))
            work.held.add(change.seq)
        elif change_hash(held.wire) != change.hash:
            return _equivocation(dev, change, held.wire)
        return Result(change.id, "held", f"waiting for seq {dev.feed_seq + 1} of this device")
    result = _admit(work, change)
    _release_held(work)
    return result


def _equivocation(dev: Device, change: Change, held: dict[str, Any] | None) -> Result:
    """Keep both signed changes as proof, quarantine the device, alert."""
    db.session.add(
        Equivocation(
            device=dev.id,
            seq=change.seq,
            held=held,
            offered=dict(change.wire),
            detected_at=now(),
        )
    )
    dev.status, dev.status_reason = "quarantined", f"equivocation at seq {change.seq}"
    audit.record(
        "device.quarantined",
        actor="hub",
        agency=dev.agency,
        object=dev.id,
        outcome="quarantined",
        details={"seq": change.seq, "reason": "two different signed changes at one seq (cloned key or restored image)"},
    )
    logger.error("ALERT: device %s of %s equivocated at seq %s; quarantined", dev.id, dev.agency, change.seq)
    return Result(change.id, "rejected", f"equivocation at seq {change.seq}: device quarantined")


def _release_held(work: Batch) -> None:
    dev = work.dev
    while dev.feed_seq + 1 in work.held:
        work.held.discard(dev.feed_seq + 1)
        held = db.session.get(HeldChange, (dev.id, dev.feed_seq + 1))
        if held is None:
            continue
        db.session.delete(held)
        try:
            change = work.verifier.verify(held.wire, dev.certificate)
        except ProvenanceError as exc:
            _audit_rejection(
                dev, Result(held.wire.get("id"), "rejected", f"held change no longer verifies: {exc.reason}"), held.wire
            )
            continue
        if change.prev != dev.feed_hash:
            previous = work.link(dev.feed_seq)
            _equivocation(dev, change, previous.wire if previous else None)
            return
        result = _admit(work, change)
        if result.status == "rejected":  # its pusher was told "held": the audit log is where it shows
            _audit_rejection(dev, result, held.wire)


def _admit(work: Batch, change: Change) -> Result:
    admit = _admit_reservation if change.collection == "reservations" else _admit_record
    result = admit(work, change)
    dev = work.dev
    wire = dict(change.wire)
    work.link_rows.append(
        {
            "device": dev.id,
            "seq": change.seq,
            "hash": change.hash,
            "change_id": change.id,
            "status": result.status,
            "reason": result.reason,
            "wire": wire,
            "received_at": now(),
        }
    )
    work.links[change.seq] = Link(change.hash, result.status, result.reason, wire)
    dev.feed_seq, dev.feed_hash = change.seq, change.hash
    return result


def _refusal(change: Change, exc: Exception) -> Result:
    reason = exc.reason if isinstance(exc, (Refused, ChangeRejected)) else str(exc)
    details = exc.details if isinstance(exc, Refused) else getattr(exc, "messages", {})
    return Result(change.id, "rejected", reason, details)


def _admit_record(work: Batch, change: Change) -> Result:
    """A resource or contact: every check before any write, so a refusal leaves nothing behind."""
    entry = work.record(change.record_id)
    try:
        work.check_envelope(change)
        if work.id_used(change.id):
            raise Refused(f"change id {change.id} was already used")
        state = entry[1]
        _authorize(work, change, exists=state is not None)
        _validate(change, state)
        outcome = apply(state, change)
        if outcome.status == "duplicate":
            raise Refused(f"change id {change.id} was already used")
    except (Refused, ChangeRejected, ValidationError) as exc:
        return _refusal(change, exc)
    entry[1], entry[2] = outcome.record, True
    store_conflicts(change, outcome.conflicts)
    work.log_rows.append(log.entry(work.head, change))
    work.used_ids.add(change.id)
    return Result(change.id, "accepted")


def _admit_reservation(work: Batch, change: Change) -> Result:
    """A reservation: its checks read other records, so pending rows are written first and
    the change is applied inside a savepoint that a refusal rolls back."""
    work.flush()
    work.records.pop(change.record_id, None)
    savepoint = db.session.begin_nested()
    try:
        work.check_envelope(change)
        if work.id_used(change.id):
            raise Refused(f"change id {change.id} was already used")
        row, state = records.load(change.record_id, lock=True)
        _authorize_reservation(work.dev.agency, change, row)
        _validate(change, state)
        outcome = apply(state, change)
        if outcome.status == "duplicate":
            raise Refused(f"change id {change.id} was already used")
        stored = records.store(row, outcome.record)
        check_reservation(stored)
        resource = resource_owner(stored.resource_id)
        store_conflicts(change, outcome.conflicts)
        log.append(work.head, change, resource_agency=resource.agency if resource is not None else None)
        db.session.flush()
        savepoint.commit()
    except (Refused, ChangeRejected, ValidationError) as exc:
        savepoint.rollback()
        return _refusal(change, exc)
    work.used_ids.add(change.id)
    return Result(change.id, "accepted")


def store_conflicts(change: Change, conflicts: Any) -> None:
    """Queue newly found field conflicts for command staff (shared with backend.resolutions)."""
    for conflict in conflicts:
        if db.session.get(ConflictRow, conflict.id) is None:
            db.session.add(
                ConflictRow(
                    id=conflict.id,
                    record_id=conflict.record_id,
                    collection=conflict.collection,
                    agency=change.agency,
                    field=conflict.field,
                    winner=conflict.winner._asdict(),
                    loser=conflict.loser._asdict(),
                    status="open",
                    detected_at=now(),
                )
            )


def _authorize(work: Batch, change: Change, *, exists: bool) -> None:
    owner, writer = change.agency, work.dev.agency
    if owner == writer:
        return
    if change.deleted:
        raise Refused(f"only {owner} may delete its {change.collection}")
    if not exists:
        raise Refused(f"agency {writer} cannot create {change.collection} for agency {owner}")
    granted = work.share(owner, writer)
    if granted is None or change.collection not in granted.collections:
        raise Refused(f"no agreement lets {writer} write {owner}'s {change.collection}")
    denied = [name for name in (*change.values, *change.withheld) if name not in granted.write]
    if denied:
        raise Refused(
            f"the agreement from {owner} does not let {writer} write {', '.join(sorted(denied))}",
            {name: ["Not writable under the agreement."] for name in denied},
        )


def resource_owner(resource_id: Any) -> Record | None:
    """The booked resource's record (its agency decides the reservation), if the hub holds it."""
    return db.session.scalar(select(Record).where(Record.record_id == str(resource_id)))


def _authorize_reservation(writer: str, change: Change, row: Record | None) -> None:
    owner = change.agency  # the asking agency
    current = row.values if row is not None else {}
    resource_id = change.values.get("resource_id", current.get("resource_id"))
    resource = resource_owner(resource_id) if resource_id else None
    if resource is None or resource.collection != "resources" or resource.deleted:
        raise Refused("the reserved resource does not exist", {"resource_id": ["No such resource."]})
    if not agreements.can_see(resource.agency, owner, "resources"):
        raise Refused("the reserved resource does not exist", {"resource_id": ["No such resource."]})
    state = change.values.get("state")
    if writer == owner:
        if (
            "resource_id" in change.values
            and row is not None
            and change.values["resource_id"] != current.get("resource_id")
        ):
            raise Refused("a reservation cannot move to another resource", {"resource_id": ["Cannot change."]})
        if state in ("approved", "declined") and resource.agency != writer:
            raise Refused(
                f"only {resource.agency}, which owns the resource, may {state[:-1]} this reservation",
                {"state": [f"Only {resource.agency} may set {state}."]},
            )
        return
    # another agency: only the resource's owner, only the state, only approve/decline
    if resource.agency != writer or change.deleted or row is None:
        raise Refused(f"agency {writer} may not change {owner}'s reservations")
    extra = sorted(set(change.values) - {"state"}) + sorted(change.withheld)
    if extra or state not in ("approved", "declined"):
        raise Refused(
            f"as the resource's owner, {writer} may only approve or decline {owner}'s reservation",
            {name: ["Not writable."] for name in extra} or {"state": ["Must be approved or declined."]},
        )


def _validate(change: Change, state: Any) -> None:
    if change.deleted:
        if state is None:
            raise Refused("cannot delete a record that does not exist")
        return
    if state is None:
        try:
            validate_values(change.collection, dict(change.values), creating=True)
        except ValidationError as exc:
            raise Refused("a new record needs all its required fields", exc.messages) from None


def check_reservation(row: Record) -> None:
    """Refuse a reservation that ends before it starts; queue any double booking it makes."""
    values = row.values
    if values.get("starts_at") and values.get("ends_at") and values["ends_at"] <= values["starts_at"]:
        raise Refused("the reservation would end before it starts", {"ends_at": ["Must be after starts_at."]})
    resource_id = values.get("resource_id")
    if not resource_id:
        return
    siblings = db.session.scalars(
        select(Record).where(Record.collection == "reservations", Record.resource_id == resource_id)
    )
    bookings = [{"id": r.record_id, "deleted": r.deleted, **r.values} for r in siblings]
    for found in find_double_bookings(bookings):
        if db.session.get(DoubleBookingRow, found.id) is None:
            db.session.add(
                DoubleBookingRow(
                    id=found.id,
                    resource_id=found.resource_id,
                    first=found.first,
                    second=found.second,
                    overlap_start=found.overlap_start,
                    overlap_end=found.overlap_end,
                    status="open",
                    detected_at=now(),
                )
            )
