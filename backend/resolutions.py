"""Command staff's decisions as hub-signed changes: conflicts and double bookings.

Rules this module owns:

- A resolution is a NEW change, signed by the hub key (``device = "hub"``),
  never an edit of stored state: it travels to the field like any change and
  every replica merges it with the same engine, so laptops and hub agree.
- Its ``base`` is what the hub holds for each written field (the current
  winner's hlc) and its ``hlc`` comes from a hub clock that has observed both
  sides, the record's newest change and the hub's own last resolution: it is
  later than all of them, so it wins without being reported as a new conflict.
- The hub's changes form one feed (``seq``/``prev``), kept in the change log
  itself: the hub's last log entry gives the next seq and prev, read under the
  log-head lock, so two staff resolving at once still get a gap-free chain.
- The change carries a signed ``resolution = {kind, resolves, by}``: what it
  settles and the staff member who chose it (protocol.md, "Resolutions").
- The new change, the merged record, the log entry, the queue row and the
  audit entry are written in one transaction: all of them or none.
- A conflict is resolved by choosing one of its two sides; every other open
  conflict on the same record field is settled by the same change. A double
  booking is resolved by declining one of its two reservations (a change of
  that reservation's ``state``), the same way.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import select

from crypto.clock import now
from sync import (
    DELETED,
    HUB_DEVICE,
    Change,
    ChangeRejected,
    Clock,
    ProvenanceError,
    RecordState,
    ReservationRefused,
    ValidationError,
    Verifier,
    apply,
    check_resolution,
    make_change,
    reservations,
    validate_values,
)

from . import audit, keystore, log, records
from .conflicts import store_conflicts, store_double_bookings
from .db import db
from .errors import Conflict, HubError, NotFound, Unprocessable
from .models import ConflictRow, DoubleBookingRow, LogEntry, LogHead, Record
from .policy import booked_resource

SIDES = ("winner", "loser")


def _hub_feed() -> tuple[int, str | None, str | None]:
    """(next seq, prev hash, last hlc) of the hub's own feed; the caller holds the log-head lock."""
    last = db.session.scalar(
        select(LogEntry).where(LogEntry.device == HUB_DEVICE).order_by(LogEntry.device_seq.desc()).limit(1)
    )
    return (last.device_seq + 1, last.hash, last.hlc) if last is not None else (1, None, None)


def _sign(
    state: RecordState,
    values: dict[str, Any],
    *,
    deleted: bool,
    resolution: dict[str, str],
    observed: list[str | None],
) -> Change:
    seq, prev, last_hlc = _hub_feed()
    clock = Clock(HUB_DEVICE, last=last_hlc, max_drift_ms=int(current_app.config["MAX_CLOCK_DRIFT"]) * 1000)
    for hlc in (*observed, state.changed_at):
        if hlc:
            clock.observe(hlc)
    wire = make_change(
        keystore.hub_key(),
        collection=state.collection,
        record_id=state.record_id,
        agency=state.agency,
        device=HUB_DEVICE,
        seq=seq,
        prev=prev,
        hlc=str(clock.now()),
        values=values,
        seen=state.seen(),
        deleted=deleted,
        resolution=resolution,
    )
    try:  # the very check every laptop will make: the hub key in the registry
        return Verifier(keystore.registry()).verify(wire, None)
    except ProvenanceError as exc:
        raise HubError(f"the hub cannot sign a resolution: {exc.reason}") from None


def _commit_change(head: LogHead, row: Record, state: RecordState, change: Change) -> Record:
    """Merge the hub's change and append it to the log (the caller holds the head lock)."""
    try:  # the check every laptop makes before applying it
        check_resolution(state, change)
    except ChangeRejected as exc:
        raise Unprocessable(exc.reason) from None
    outcome = apply(state, change)
    stored = records.store(row, outcome.record)
    resource_agency = None
    if change.collection == "reservations":
        try:
            reservations.check_times(stored.values)
        except ReservationRefused as exc:
            raise Unprocessable(exc.reason, details=exc.messages) from None
        store_double_bookings(stored)
        resource = booked_resource(stored.resource_id)
        resource_agency = resource.agency if resource is not None else None
    store_conflicts(change, outcome.conflicts)  # not expected (base is the current winner), but never lost
    log.append(head, change, resource_agency=resource_agency)
    return stored


def _chosen(row: ConflictRow, choice: str) -> dict[str, Any]:
    for side in SIDES:
        version = getattr(row, side)
        if choice in (side, version.get("change_id")):
            return dict(version)
    raise Unprocessable(
        "choose one side of the conflict: winner or loser (or its change id)",
        details={"choice": ["Must be winner, loser, or the change id of one side."]},
    )


def resolve(conflict_id: str, choice: str, *, by: str, actor: str | None = None) -> ConflictRow:
    """Settle a conflict with the value of the chosen side, as a hub-signed change naming ``by``.

    Raises NotFound (404) for an unknown conflict, Conflict (409) for one already
    resolved or a field of a deleted record, Unprocessable (422) for a bad choice.
    Commits on success; writes nothing on error.
    """
    try:
        head = log.lock_head()
        row = db.session.scalar(select(ConflictRow).where(ConflictRow.id == conflict_id).with_for_update())
        if row is None:
            raise NotFound(f"no conflict {conflict_id}")
        if row.status != "open":
            raise Conflict(f"conflict {conflict_id} was already resolved by {row.resolved_by}")
        version = _chosen(row, choice)
        if version.get("digest") is not None:
            raise Unprocessable("the hub does not hold that value (withheld); it cannot be chosen")
        record_row, state = records.load(row.record_id, lock=True)
        if record_row is None or state is None:
            raise NotFound(f"the record of conflict {conflict_id} is gone")
        if row.field == DELETED:
            values, deleted = {}, version["value"] is True
        else:
            if state.deleted:
                raise Conflict("the record is deleted: settle its deletion first (a conflict on _deleted)")
            values, deleted = {row.field: version["value"]}, False
            try:
                validate_values(row.collection, values, creating=False)
            except ValidationError as exc:
                raise Unprocessable("the chosen value is not valid for this field", details=exc.messages) from None
        current = state.winner(row.field)
        change = _sign(
            state,
            values,
            deleted=deleted,
            resolution={"kind": "conflict", "resolves": conflict_id, "by": by},
            observed=[row.winner.get("hlc"), row.loser.get("hlc"), current.hlc if current else None],
        )
        _commit_change(head, record_row, state, change)
        settled = list(
            db.session.scalars(
                select(ConflictRow)
                .where(ConflictRow.record_id == row.record_id, ConflictRow.field == row.field)
                .where(ConflictRow.status == "open")
                .with_for_update()
            )
        )
        at = now()
        for other in settled:
            other.status, other.resolved_at, other.resolved_by = "resolved", at, by
            other.resolution_change_id = change.id
        audit.record(
            "conflict.resolve",
            actor=actor or by,
            agency=row.agency,
            object=conflict_id,
            details={
                "record_id": row.record_id,
                "field": row.field,
                "chosen": version.get("change_id"),
                "value": version.get("value"),
                "change_id": change.id,
                "also_settled": sorted(o.id for o in settled if o.id != conflict_id),
            },
        )
        db.session.commit()
        return row
    except BaseException:
        db.session.rollback()
        raise


def decline(booking_id: str, reservation_id: str, *, by: str, actor: str | None = None) -> DoubleBookingRow:
    """Settle a double booking by declining one of its two reservations (a hub-signed change of its state).

    Raises NotFound (404), Conflict (409: already resolved, or that reservation is
    no longer approved), Unprocessable (422: not one of the pair). Commits on success.
    """
    try:
        head = log.lock_head()
        row = db.session.scalar(select(DoubleBookingRow).where(DoubleBookingRow.id == booking_id).with_for_update())
        if row is None:
            raise NotFound(f"no double booking {booking_id}")
        if row.status != "open":
            raise Conflict(f"double booking {booking_id} was already resolved by {row.resolved_by}")
        if reservation_id not in (row.first, row.second):
            raise Unprocessable(
                "decline one of the two reservations of this double booking",
                details={"reservation": ["Must be one of the two reservations."]},
            )
        record_row, state = records.load(reservation_id, lock=True)
        if record_row is None or state is None or state.deleted:
            raise NotFound(f"reservation {reservation_id} is gone")
        if state.values().get("state") != "approved":
            raise Conflict(f"reservation {reservation_id} is no longer approved ({state.values().get('state')})")
        current = state.winner("state")
        change = _sign(
            state,
            {"state": "declined"},
            deleted=False,
            resolution={"kind": "double_booking", "resolves": booking_id, "by": by},
            observed=[current.hlc if current else None],
        )
        _commit_change(head, record_row, state, change)
        row.status, row.resolved_at, row.resolved_by = "resolved", now(), by
        row.resolution_change_id, row.declined = change.id, reservation_id
        audit.record(
            "double_booking.resolve",
            actor=actor or by,
            agency=state.agency,
            object=booking_id,
            details={"declined": reservation_id, "change_id": change.id, "resource_id": row.resource_id},
        )
        db.session.commit()
        return row
    except BaseException:
        db.session.rollback()
        raise
