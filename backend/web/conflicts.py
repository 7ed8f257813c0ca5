"""The review queues: field conflicts and double bookings, on the ``web`` blueprint.

Command staff (staff or admin) see each open conflict side by side: both
values, each with the agency, officer and device that wrote it and when, and
choose one. The choice is a POST (CSRF-checked app-wide) that
backend.resolutions turns into a hub-signed change naming the staff member;
it reaches the field on the laptops' next sync. Double bookings are settled by
declining one of the two reservations, the same way. Nothing changes on GET.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from sync import COLLECTIONS, DELETED, HUB_DEVICE

from .. import audit, resolutions
from ..auth import login_required
from ..auth.accounts import actor
from ..db import db
from ..errors import HubError
from ..models import ConflictRow, Device, DoubleBookingRow, LogEntry, Record
from . import bp
from .nav import register_nav

register_nav("web.conflicts", "Conflicts", order=30)
register_nav("web.double_bookings", "Double bookings", order=40)

RESOLVED_SHOWN = 50


@dataclass(frozen=True)
class Side:
    """One side of a conflict as staff read it."""

    role: str  # winner | loser
    value: Any
    withheld: bool
    agency: str
    officer: str
    device: str
    hlc: str
    change_id: str
    field: str = ""

    @property
    def shown(self) -> str:
        """The value as staff read it: the deletion flag in words, objects as JSON, nothing as a dash."""
        return display(self.value, self.field)


def display(value: Any, field: str = "") -> str:
    if field == DELETED:
        return "deleted" if value is True else "kept (edited)"
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _authors(versions: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """device id -> (agency, officer); hub changes -> ("hub", the staff member named in it)."""
    ids = {v.get("device") for v in versions}
    out = {d.id: (d.agency, d.officer) for d in db.session.scalars(select(Device).where(Device.id.in_(ids)))}
    hub_changes = [v["change_id"] for v in versions if v.get("device") == HUB_DEVICE]
    if hub_changes:
        for entry in db.session.scalars(select(LogEntry).where(LogEntry.change_id.in_(hub_changes))):
            by = (entry.wire.get("resolution") or {}).get("by", "?")
            out[f"hub:{entry.change_id}"] = ("hub", f"{by} (resolution)")
    return out


def _side(role: str, version: dict[str, Any], authors: dict[str, tuple[str, str]], field: str) -> Side:
    device = str(version.get("device"))
    agency, officer = authors.get(f"hub:{version.get('change_id')}") or authors.get(device) or ("?", "unknown device")
    return Side(
        role,
        version.get("value"),
        version.get("digest") is not None,
        agency,
        officer,
        device,
        str(version.get("hlc")),
        str(version.get("change_id")),
        field,
    )


@dataclass(frozen=True)
class ConflictView:
    row: ConflictRow
    title: str
    current: Any
    sides: tuple[Side, Side]
    chosen: str | None  # resolved: which side's change id was chosen

    @property
    def field_label(self) -> str:
        return "deleted?" if self.row.field == DELETED else self.row.field

    @property
    def current_shown(self) -> str:
        return display(self.current, self.row.field)


def _views(rows: list[ConflictRow]) -> list[ConflictView]:
    authors = _authors([v for r in rows for v in (r.winner, r.loser)])
    records = {
        r.record_id: r
        for r in db.session.scalars(select(Record).where(Record.record_id.in_({row.record_id for row in rows})))
    }
    decided: dict[str, dict[str, Any]] = {}  # resolution change id -> its wire
    resolution_ids = [r.resolution_change_id for r in rows if r.resolution_change_id]
    if resolution_ids:
        for entry in db.session.scalars(select(LogEntry).where(LogEntry.change_id.in_(resolution_ids))):
            decided[entry.change_id] = entry.wire
    out = []
    for row in rows:
        record = records.get(row.record_id)
        current: Any = None
        if record is not None:
            current = record.deleted if row.field == DELETED else record.values.get(row.field)
        winner, loser = _side("winner", row.winner, authors, row.field), _side("loser", row.loser, authors, row.field)
        picked = None
        wire = decided.get(row.resolution_change_id or "")
        if wire is not None:
            value = wire["deleted"] if row.field == DELETED else wire["fields"].get(row.field, {}).get("value")
            picked = next((s.change_id for s in (winner, loser) if s.value == value), None)
        out.append(
            ConflictView(
                row,
                (record.title if record is not None and record.title else row.record_id),
                current,
                (winner, loser),
                picked,
            )
        )
    return out


@bp.get("/conflicts")
@login_required
def conflicts() -> Any:
    """The queue, filtered by owning agency and collection (plain GET parameters, no script)."""
    agency = request.args.get("agency") or None
    collection = request.args.get("collection") or None
    where = []
    if agency:
        where.append(ConflictRow.agency == agency)
    if collection:
        where.append(ConflictRow.collection == collection)
    open_rows = list(
        db.session.scalars(
            select(ConflictRow).where(ConflictRow.status == "open", *where).order_by(ConflictRow.detected_at)
        )
    )
    resolved_rows = list(
        db.session.scalars(
            select(ConflictRow)
            .where(ConflictRow.status == "resolved", *where)
            .order_by(ConflictRow.resolved_at.desc())
            .limit(RESOLVED_SHOWN)
        )
    )
    agencies = list(db.session.scalars(select(ConflictRow.agency).distinct().order_by(ConflictRow.agency)))
    return render_template(
        "web/conflicts.html",
        open=_views(open_rows),
        resolved=_views(resolved_rows),
        shown=RESOLVED_SHOWN,
        agencies=agencies,
        collections=COLLECTIONS,
        agency=agency,
        collection=collection,
    )


@bp.post("/conflicts/resolve")
@login_required
def resolve_conflict() -> Any:
    conflict_id = request.form.get("conflict_id", "")
    choice = request.form.get("choice", "")
    try:
        resolutions.resolve(conflict_id, choice, by=current_user.name, actor=actor(current_user.name))
    except HubError as exc:
        audit.refused("conflict.resolve", actor=actor(current_user.name), reason=exc.message, object=conflict_id[:300])
        flash(f"Not resolved: {exc.message}", "error")
        return redirect(url_for("web.conflicts"), code=303)
    flash("Resolved. The chosen value goes to the field as a hub-signed change at the laptops' next sync.", "ok")
    return redirect(url_for("web.conflicts"), code=303)


# -- double bookings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Booking:
    id: str
    agency: str
    officer: str
    purpose: str
    starts_at: str
    ends_at: str
    state: str


@dataclass(frozen=True)
class BookingView:
    row: DoubleBookingRow
    resource: str
    resource_agency: str
    bookings: tuple[Booking, ...]


def _writer(record: Record | None) -> str:
    """The officer who created a reservation (first change of the record)."""
    if record is None:
        return "?"
    first = db.session.scalar(
        select(LogEntry.device).where(LogEntry.record_id == record.record_id).order_by(LogEntry.seq).limit(1)
    )
    device = db.session.get(Device, first) if first else None
    return device.officer if device is not None else "?"


def _booking_views(rows: list[DoubleBookingRow]) -> list[BookingView]:
    ids = {r.resource_id for r in rows} | {r.first for r in rows} | {r.second for r in rows}
    records = {r.record_id: r for r in db.session.scalars(select(Record).where(Record.record_id.in_(ids)))}
    out = []
    for row in rows:
        resource = records.get(row.resource_id)
        bookings = []
        for rid in (row.first, row.second):
            rec = records.get(rid)
            values = rec.values if rec is not None else {}
            bookings.append(
                Booking(
                    rid,
                    rec.agency if rec is not None else "?",
                    _writer(rec),
                    str(values.get("purpose", "")),
                    str(values.get("starts_at", "")),
                    str(values.get("ends_at", "")),
                    "deleted" if rec is not None and rec.deleted else str(values.get("state", "?")),
                )
            )
        out.append(
            BookingView(
                row,
                (resource.title if resource is not None and resource.title else row.resource_id),
                resource.agency if resource is not None else "?",
                tuple(sorted(bookings, key=lambda b: (b.starts_at, b.id))),
            )
        )
    return out


@bp.get("/double-bookings")
@login_required
def double_bookings() -> Any:
    open_rows = list(
        db.session.scalars(
            select(DoubleBookingRow).where(DoubleBookingRow.status == "open").order_by(DoubleBookingRow.detected_at)
        )
    )
    resolved_rows = list(
        db.session.scalars(
            select(DoubleBookingRow)
            .where(DoubleBookingRow.status == "resolved")
            .order_by(DoubleBookingRow.resolved_at.desc())
            .limit(RESOLVED_SHOWN)
        )
    )
    return render_template(
        "web/bookings.html",
        open=_booking_views(open_rows),
        resolved=_booking_views(resolved_rows),
        shown=RESOLVED_SHOWN,
    )


@bp.post("/double-bookings/decline")
@login_required
def decline_booking() -> Any:
    booking_id = request.form.get("booking_id", "")
    reservation = request.form.get("reservation", "")
    try:
        resolutions.decline(booking_id, reservation, by=current_user.name, actor=actor(current_user.name))
    except HubError as exc:
        audit.refused(
            "double_booking.resolve", actor=actor(current_user.name), reason=exc.message, object=booking_id[:300]
        )
        flash(f"Not resolved: {exc.message}", "error")
        return redirect(url_for("web.double_bookings"), code=303)
    flash("Reservation declined. The laptops receive the decision at their next sync.", "ok")
    return redirect(url_for("web.double_bookings"), code=303)
