"""One record for command staff: each field's current value with its provenance, and the history.

Every change of the record is verified again here, through its whole chain
(sync.Verifier against the hub's own key registry: device certificate, agency
key, rotations, revocation cut; the hub key for resolutions). A page never
shows "verified" from a stored flag: if a row in the log was altered, the
mark turns to "not verified" with the reason.

The badge and the value must speak of the same thing: each field's value is
taken from the verified change that wrote the winning version, not from the
merged state (``records.state``) alone. Where the stored state says something
else (another value, clock or device than the signed change), the field is
marked "not verified: stored value differs from the signed change" and the
signed value is the one shown. A malformed clock in a stored row is a "not
verified" with that reason, never an error page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from crypto.clock import as_utc
from sync import DELETED, HUB_DEVICE, Change, ProvenanceError, Verifier, Version
from sync.provenance import hlc_time

from .. import keystore, records
from ..db import db
from ..errors import NotFound
from ..models import ConflictRow, Device, LogEntry, Record


@dataclass(frozen=True)
class Check:
    ok: bool
    reason: str | None = None


@dataclass(frozen=True)
class Author:
    """Who wrote a change: device, officer, the device's agency (or the hub and its staff member)."""

    device: str
    officer: str
    agency: str
    by_hub: bool = False


@dataclass(frozen=True)
class FieldRow:
    name: str
    value: Any
    withheld: bool
    author: Author
    at: datetime | None
    check: Check
    versions: int
    change_id: str


@dataclass(frozen=True)
class HistoryRow:
    seq: int
    device_seq: int
    change_id: str
    author: Author
    at: datetime | None
    accepted_at: datetime
    fields: dict[str, Any]
    withheld: frozenset[str]
    deleted: bool
    check: Check
    resolution: dict[str, Any] | None


@dataclass(frozen=True)
class RecordView:
    row: Record
    fields: list[FieldRow]
    history: list[HistoryRow]
    conflicts: list[ConflictRow]
    all_verified: bool  # every change in the log verifies
    fields_verified: bool  # and every shown value is what its signed change says


def _author(entry: LogEntry | None, device: Device | None, wire: dict[str, Any] | None) -> Author:
    if entry is not None and entry.device == HUB_DEVICE:
        by = ((wire or {}).get("resolution") or {}).get("by") or "staff"
        return Author(HUB_DEVICE, str(by), "hub", by_hub=True)
    if device is None:
        return Author(entry.device if entry else "?", "?", entry.agency if entry else "?")
    return Author(device.id, device.officer, device.agency)


DIFFERS = "not verified: stored value differs from the signed change"


def _time(hlc: Any) -> datetime | None:
    """A hlc's wall time, or None for a malformed one (shown as "—", marked not verified)."""
    try:
        return hlc_time(str(hlc))
    except (ValueError, TypeError, IndexError):
        return None


def _field_from_change(name: str, winner: Version, change: Change | None, check: Check) -> tuple[Any, bool, Check]:
    """(value, withheld, check) of one field: the signed change's value, checked against the stored state."""
    if change is None:
        return winner.value, winner.withheld, check if not check.ok else Check(False, "its change is not verified")
    if name in change.values:
        value, withheld, digest = change.values[name], False, None
    elif name in change.withheld:
        value, withheld, digest = None, True, change.withheld[name]
    else:
        return winner.value, winner.withheld, Check(False, "not verified: the signed change does not write this field")
    same = (
        winner.hlc == change.hlc
        and winner.device == change.device
        and winner.withheld == withheld
        and (winner.digest == digest if withheld else type(winner.value) is type(value) and winner.value == value)
    )
    if _time(winner.hlc) is None:
        return value, withheld, Check(False, "not verified: the stored clock is malformed")
    return value, withheld, check if same else Check(False, DIFFERS)


def load(record_id: str) -> RecordView:
    row = db.session.get(Record, record_id)
    if row is None:
        raise NotFound(f"There is no record {record_id}.")
    entries = list(db.session.scalars(select(LogEntry).where(LogEntry.record_id == record_id).order_by(LogEntry.seq)))
    devices = {d.id: d for d in db.session.scalars(select(Device).where(Device.id.in_({e.device for e in entries})))}
    verifier = Verifier(keystore.registry())
    checks: dict[str, Check] = {}
    verified: dict[str, Change] = {}  # change id -> the change as its signature says it
    by_change: dict[str, LogEntry] = {}
    history: list[HistoryRow] = []
    for entry in entries:
        by_change[entry.change_id] = entry
        device = devices.get(entry.device)
        try:
            change = verifier.verify(entry.wire, device.certificate if device is not None else None)
            if change.id != entry.change_id:
                raise ProvenanceError("the log row names another change than it holds", change_id=entry.change_id)
            verified[entry.change_id] = change
            check = Check(True)
        except ProvenanceError as exc:
            check = Check(False, exc.reason)
        checks[entry.change_id] = check
        wire = entry.wire or {}
        items = (wire.get("fields") or {}).items()
        written = {name: item.get("value") for name, item in items}
        history.append(
            HistoryRow(
                seq=entry.seq,
                device_seq=entry.device_seq,
                change_id=entry.change_id,
                author=_author(entry, device, wire),
                at=_time(entry.hlc),
                accepted_at=as_utc(entry.accepted_at),
                fields=written,
                withheld=frozenset(name for name, item in items if "digest" in item),
                deleted=bool(wire.get("deleted")),
                check=check,
                resolution=wire.get("resolution"),
            )
        )
    state = records.from_row(row)
    fields: list[FieldRow] = []
    for name in sorted(n for n in state.history if n != DELETED):
        versions = state.history[name]
        winner = versions[-1]
        entry = by_change.get(winner.change_id)
        change = verified.get(winner.change_id)
        value, withheld, check = _field_from_change(
            name,
            winner,
            change,
            checks.get(winner.change_id, Check(False, "the change that wrote it is not in the log")),
        )
        fields.append(
            FieldRow(
                name=name,
                value=value,
                withheld=withheld,
                author=_author(
                    entry, devices.get(change.device if change else winner.device), entry.wire if entry else None
                ),
                at=_time(change.hlc) if change is not None else _time(winner.hlc),
                check=check,
                versions=len(versions),
                change_id=winner.change_id,
            )
        )
    conflicts = list(
        db.session.scalars(
            select(ConflictRow).where(ConflictRow.record_id == record_id).order_by(ConflictRow.detected_at.desc())
        )
    )
    history.reverse()  # newest first
    all_ok = all(c.ok for c in checks.values()) and bool(checks)
    return RecordView(row, fields, history, conflicts, all_ok, all(f.check.ok for f in fields))
