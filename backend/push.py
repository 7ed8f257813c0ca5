"""Push: one device's batch of changes -> a verdict per change (:class:`PushStatus`).

Rules this module owns:

- Outside any transaction, each change is checked for being the pushing
  device's own, for a clock not absurdly far ahead and for its signature chain
  (sync.Verifier: certificate, agency key, registry, revocation cut, exact
  header types). A change that fails is ``rejected`` and touches nothing but
  the audit log: it is not the device's authentic word.
- The schema check of each authentic change is made there too (it reads
  nothing); its verdict is applied at the change's turn below.
- Then, in one transaction holding the log-head lock, authentic changes are
  placed in their device's feed in seq order (sync.feeds.classify, for a
  change pushed and for a held change released):
  ``duplicate`` - already held (the original verdict is repeated);
  ``held`` - ahead of a gap, kept until the gap fills;
  equivocation - both changes kept as proof, device quarantined, alert,
  nothing merged; the next link - validated (schemas), authorized
  (backend.policy), merged (sync.merge) and appended to the log, inside a
  savepoint so a refused change never half-applies.
- An authentic link advances the device's feed whether it was accepted or
  refused: a refused write does not break the device's chain.
- Every rejection is written to the audit log in the same transaction, naming
  the pushing device and its agency, the change, the record, collection and
  owner it claims, and the reason.
- What merging finds for command staff is queued by backend.conflicts.

A batch is one unit of work (backend/pushbatch.py: read once under the head
lock, written once at the end). Resources and contacts are checked completely
before anything is mutated, so a refused one needs no savepoint; reservations,
whose checks read other records, keep the savepoint path after the pending
rows are flushed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
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
    ProvenanceError,
    ValidationError,
    Verdict,
    Verifier,
    apply,
    classify,
    reservations,
    validate_values,
)
from sync.hlc import Clock

from . import audit, keystore, log, policy, records
from .conflicts import store_conflicts, store_double_bookings
from .db import db
from .errors import PayloadTooLarge, Unprocessable
from .models import Device, Equivocation
from .policy import Refused
from .pushbatch import Batch, envelope_refusal

logger = logging.getLogger("fieldsync.hub")


class PushStatus(StrEnum):
    """A change's verdict; the values are the wire's and the feed links' ``status``."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    HELD = "held"
    REJECTED = "rejected"


@dataclass
class Result:
    id: Any
    status: PushStatus
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status.value}
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
            results[pos] = Result(change_id, PushStatus.REJECTED, getattr(exc, "reason", None) or str(exc))

    dev = db.session.scalar(select(Device).where(Device.id == device.id).with_for_update())
    head = log.lock_head()
    work = Batch(dev, head, verifier, [change for _, change in authentic], envelopes) if dev is not None else None
    for pos, change in sorted(authentic, key=lambda item: item[1].seq):
        if dev is None or dev.status != "active":
            status = dev.status if dev is not None else "unknown"
            results[pos] = Result(change.id, PushStatus.REJECTED, f"device is {status}")
            continue
        assert work is not None
        results[pos] = _place(work, change)
    if work is not None:
        work.finish()
    if dev is not None:
        dev.last_push_at = dev.last_seen_at = now()
    for wire, result in zip(batch, results, strict=True):
        assert result is not None
        if result.status is PushStatus.REJECTED:
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
    head = work.feed_head()
    link = work.link(change.seq) if change.seq <= head.seq else None
    verdict = classify(head, change, link.hash if link else None)
    if verdict is Verdict.DUPLICATE:
        assert link is not None
        return Result(change.id, PushStatus.DUPLICATE, link.reason if link.status == PushStatus.REJECTED else None)
    if verdict is Verdict.EQUIVOCATION:
        # the proof kept beside it: the link held at its seq, or (a next link whose prev is
        # not the head) the head it does not name
        proof = link if link is not None else work.link(head.seq)
        return _equivocation(work.dev, change, proof.wire if proof else None)
    if verdict is Verdict.GAP:
        held = work.held_at(change.seq)
        if held is None:
            work.hold(change)
        elif change_hash(held) != change.hash:
            return _equivocation(work.dev, change, held)
        return Result(change.id, PushStatus.HELD, f"waiting for seq {head.seq + 1} of this device")
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
    return Result(change.id, PushStatus.REJECTED, f"equivocation at seq {change.seq}: device quarantined")


def _release_held(work: Batch) -> None:
    """Admit the held changes that now follow the feed's head, in order (sync.feeds.classify
    places each: the next seq, so the next link or an equivocation)."""
    while (wire := work.take_held(work.feed_head().seq + 1)) is not None:
        try:
            change = work.verify(wire)
        except ProvenanceError as exc:
            reason = f"held change no longer verifies: {exc.reason}"
            _audit_rejection(work.dev, Result(wire.get("id"), PushStatus.REJECTED, reason), wire)
            continue
        head = work.feed_head()
        if classify(head, change) is not Verdict.APPEND:
            previous = work.link(head.seq)
            _equivocation(work.dev, change, previous.wire if previous else None)
            return
        result = _admit(work, change)
        if result.status is PushStatus.REJECTED:  # its pusher was told "held": the audit log is where it shows
            _audit_rejection(work.dev, result, wire)


def _admit(work: Batch, change: Change) -> Result:
    admit = _admit_reservation if change.collection == "reservations" else _admit_record
    result = admit(work, change)
    work.advance_feed(change, result.status.value, result.reason)
    return result


def _refusal(change: Change, exc: Exception) -> Result:
    reason = exc.reason if isinstance(exc, (Refused, ChangeRejected)) else str(exc)
    details = exc.details if isinstance(exc, Refused) else getattr(exc, "messages", {})
    return Result(change.id, PushStatus.REJECTED, reason, details)


def _admit_record(work: Batch, change: Change) -> Result:
    """A resource or contact: every check before any write, so a refusal leaves nothing behind."""
    state = work.state(change.record_id)
    try:
        work.check_envelope(change)
        if work.id_used(change.id):
            raise Refused(f"change id {change.id} was already used")
        policy.check_record_write(work.dev.agency, change, exists=state is not None, share=work.share)
        _validate(change, state)
        outcome = apply(state, change)
        if outcome.status == "duplicate":
            raise Refused(f"change id {change.id} was already used")
    except (Refused, ChangeRejected, ValidationError) as exc:
        return _refusal(change, exc)
    store_conflicts(change, outcome.conflicts)
    work.accept(change, outcome.record)
    return Result(change.id, PushStatus.ACCEPTED)


def _admit_reservation(work: Batch, change: Change) -> Result:
    """A reservation: its checks read other records, so pending rows are written first and
    the change is applied inside a savepoint that a refusal rolls back."""
    work.flush()
    work.drop_record(change.record_id)
    savepoint = db.session.begin_nested()
    try:
        work.check_envelope(change)
        if work.id_used(change.id):
            raise Refused(f"change id {change.id} was already used")
        row, state = records.load(change.record_id, lock=True)
        policy.check_booking_write(work.dev.agency, change, row)
        _validate(change, state)
        outcome = apply(state, change)
        if outcome.status == "duplicate":
            raise Refused(f"change id {change.id} was already used")
        stored = records.store(row, outcome.record)
        reservations.check_times(stored.values)
        store_double_bookings(stored)
        resource = policy.booked_resource(stored.resource_id)
        store_conflicts(change, outcome.conflicts)
        work.append_log(change, resource_agency=resource.agency if resource is not None else None)
        db.session.flush()
        savepoint.commit()
    except (Refused, ChangeRejected, ValidationError) as exc:
        savepoint.rollback()
        return _refusal(change, exc)
    return Result(change.id, PushStatus.ACCEPTED)


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
