"""The ui's record pages: resources, contacts (the phone-book) and reservations.

Reads go through :mod:`field_client.state`; every write is one call to
:mod:`field_client.edits` with values from :func:`field_client.inputs.form_values`
(the CLI's path). A refused edit re-renders its form with each message beside
its field (422) and writes nothing. Writes are POSTs answered with a redirect
(303), so a reload never repeats one.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from sync import find_double_bookings
from sync.reservations import may_set_state
from sync.schemas import CONTACT_ROLES, RESERVATION_STATES, RESOURCE_KINDS, RESOURCE_STATUSES

from .. import edits, inputs, outbox, state
from ..device import Device
from ..errors import EditRefused, RecordNotFound
from . import forms, state_of

bp = Blueprint("ui", __name__)
NOUN = {"resources": "resource", "contacts": "contact", "reservations": "reservation"}


def device() -> Device:
    replica = state_of(current_app).replica
    assert replica is not None  # pages.require_unlocked sent a locked app to the unlock page
    return Device(replica)


def _record(dev: Device, record_id: str, collection: str) -> dict[str, Any]:
    record = state.get_record(dev.replica, record_id)
    if record is None or record["collection"] != collection:
        abort(404)
    return record


def _matches(record: dict[str, Any], text: str, names: tuple[str, ...]) -> bool:
    needle = text.casefold()
    for name in names:
        value = record.get(name)
        if isinstance(value, dict):
            value = value.get("text")
        if value is not None and needle in str(value).casefold():
            return True
    return False


def _reasons(exc: EditRefused) -> str:
    return "; ".join(m for msgs in forms.flat_errors(exc.messages).values() for m in msgs) or str(exc)


def _choices(records: list[dict[str, Any]], name: str) -> list[str]:
    return sorted({str(r[name]) for r in records if r.get(name)})


# -- resources ---------------------------------------------------------------------------
@bp.get("/")
def home() -> Any:
    return redirect(url_for(".resources"))


@bp.get("/resources")
def resources() -> str:
    dev = device()
    everything = state.list_records(dev.replica, "resources")
    chosen = {k: request.args.get(k, "").strip() for k in ("kind", "status", "agency", "q")}
    shown = [
        r
        for r in everything
        if (not chosen["kind"] or r.get("kind") == chosen["kind"])
        and (not chosen["status"] or r.get("status") == chosen["status"])
        and (not chosen["agency"] or r["agency"] == chosen["agency"])
        and (not chosen["q"] or _matches(r, chosen["q"], ("name", "description", "notes", "location", "kind")))
    ]
    shown.sort(key=lambda r: (r["agency"] != dev.agency, str(r.get("name", "")).casefold()))
    return render_template(
        "resources.html",
        resources=shown,
        total=len(everything),
        chosen=chosen,
        kinds=RESOURCE_KINDS,
        statuses=RESOURCE_STATUSES,
        agencies=_choices(everything, "agency"),
        pending=outbox.pending_record_ids(dev.replica),
    )


@bp.get("/resources/<record_id>")
def resource(record_id: str) -> str:
    dev = device()
    record = _record(dev, record_id, "resources")
    bookings = [r for r in state.list_records(dev.replica, "reservations") if r.get("resource_id") == record_id]
    bookings.sort(key=lambda r: str(r.get("starts_at", "")))
    for booking in bookings:
        booking["actions"] = actions(booking, writer=dev.agency, resource_agency=record["agency"])
    contact = state.get_record(dev.replica, record["point_of_contact"]) if record.get("point_of_contact") else None
    return render_template(
        "resource.html",
        record=record,
        bookings=bookings,
        overlaps=overlaps(bookings),
        contact=contact,
        statuses=RESOURCE_STATUSES,
        pending=outbox.pending_record_ids(dev.replica),
    )


OFFERED = {"requested": ("approved", "declined", "cancelled"), "approved": ("cancelled",)}
"""The states a booking's buttons offer from each state (the ui's workflow, not a rule)."""


def actions(booking: dict[str, Any], *, writer: str, resource_agency: str) -> list[str]:
    """The states this laptop's agency may put ``booking`` in from here: who may is
    sync.reservations' rule, the one the laptop's edits and the hub apply."""
    return [
        wanted
        for wanted in OFFERED.get(str(booking.get("state")), ())
        if may_set_state(wanted, writer=writer, requester=str(booking.get("agency")), resource_agency=resource_agency)
    ]


def overlaps(bookings: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """reservation id -> the approved bookings it overlaps, each with the shared window.

    The rule is sync's own (:func:`sync.find_double_bookings`, the one the merge uses on every
    replica and the hub), applied to the bookings as they stand now: a pair settled since (one
    declined or cancelled) is no longer flagged, and no second overlap rule exists here."""
    by_id = {b["id"]: b for b in bookings}
    out: dict[str, list[dict[str, Any]]] = {}
    for found in find_double_bookings(bookings):
        window = {"starts_at": found.overlap_start, "ends_at": found.overlap_end}
        out.setdefault(found.first, []).append({"other": by_id[found.second], **window})
        out.setdefault(found.second, []).append({"other": by_id[found.first], **window})
    return out


@bp.post("/resources/<record_id>/status")
def resource_status(record_id: str) -> Any:
    dev = device()
    record = _record(dev, record_id, "resources")
    wanted = request.form.get("status", "")
    if wanted != record.get("status"):
        try:
            edits.update(dev, record_id, {"status": wanted})
        except EditRefused as exc:
            flash(f"Status not changed: {_reasons(exc)}")
            return redirect(url_for(".resource", record_id=record_id), 303)
        flash(f"{record.get('name')}: status is now {wanted.replace('_', ' ')} (queued for the next sync).")
    return redirect(url_for(".resource", record_id=record_id), 303)


# -- contacts: the phone-book -----------------------------------------------------------
@bp.get("/contacts")
def contacts() -> str:
    dev = device()
    everything = state.list_records(dev.replica, "contacts")
    chosen = {k: request.args.get(k, "").strip() for k in ("q", "agency", "role", "jurisdiction")}
    shown = [
        c
        for c in everything
        if (not chosen["agency"] or c["agency"] == chosen["agency"])
        and (not chosen["role"] or c.get("role") == chosen["role"])
        and (not chosen["jurisdiction"] or c.get("jurisdiction") == chosen["jurisdiction"])
        and (
            not chosen["q"]
            or _matches(c, chosen["q"], ("name", "agency_unit", "jurisdiction", "radio", "phone", "email", "role"))
            or chosen["q"].casefold() == c["agency"].casefold()
        )
    ]
    shown.sort(key=lambda c: str(c.get("name", "")).casefold())
    return render_template(
        "contacts.html",
        contacts=shown,
        total=len(everything),
        chosen=chosen,
        roles=CONTACT_ROLES,
        agencies=_choices(everything, "agency"),
        jurisdictions=_choices(everything, "jurisdiction"),
        pending=outbox.pending_record_ids(dev.replica),
    )


@bp.get("/contacts/<record_id>")
def contact(record_id: str) -> str:
    dev = device()
    record = _record(dev, record_id, "contacts")
    looks_after = [r for r in state.list_records(dev.replica, "resources") if r.get("point_of_contact") == record_id]
    return render_template(
        "contact.html", record=record, looks_after=looks_after, pending=outbox.pending_record_ids(dev.replica)
    )


# -- reservations ------------------------------------------------------------------------
@bp.get("/reservations")
def reservations() -> str:
    dev = device()
    everything = state.list_records(dev.replica, "reservations")
    chosen = {"state": request.args.get("state", "").strip()}
    shown = [r for r in everything if not chosen["state"] or r.get("state") == chosen["state"]]
    shown.sort(key=lambda r: str(r.get("starts_at", "")))
    names = {r["id"]: r for r in state.list_records(dev.replica, "resources")}
    return render_template(
        "reservations.html",
        reservations=shown,
        resources=names,
        chosen=chosen,
        states=RESERVATION_STATES,
        pending=outbox.pending_record_ids(dev.replica),
    )


@bp.post("/reservations/<record_id>/state")
def reservation_state(record_id: str) -> Any:
    dev = device()
    record = _record(dev, record_id, "reservations")
    wanted = request.form.get("state", "")
    try:
        edits.update(dev, record_id, {"state": wanted})
    except EditRefused as exc:
        flash(f"Booking not changed: {_reasons(exc)}")
    else:
        flash(f"Booking is now {wanted} (queued for the next sync).")
    return redirect(url_for(".resource", record_id=record["resource_id"]), 303)


# -- delete (own agency's records), with a confirmation page: no JavaScript needed -------------
@bp.route("/records/<record_id>/delete", methods=["GET", "POST"])
def delete(record_id: str) -> Any:
    dev = device()
    record = state.get_record(dev.replica, record_id)
    if record is None or record["deleted"]:
        abort(404)
    back = url_for(".contact" if record["collection"] == "contacts" else ".resource", record_id=record_id)
    if record["collection"] == "reservations":
        back = url_for(".resource", record_id=record["resource_id"])
    if request.method == "POST":
        try:
            edits.delete(dev, record_id)
        except EditRefused as exc:
            flash(f"Not deleted: {exc}")
            return redirect(back, 303)
        flash(f"Deleted {record.get('name') or NOUN[record['collection']]} (queued for the next sync).")
        home = ".contacts" if record["collection"] == "contacts" else ".resources"
        return redirect(back if record["collection"] == "reservations" else url_for(home), 303)
    return render_template("delete.html", record=record, noun=NOUN[record["collection"]], back=back)


# -- add and edit, one form for each collection -----------------------------------------
def _form_context(dev: Device, collection: str) -> dict[str, Any]:
    def live(collection: str) -> list[dict[str, Any]]:
        return state.list_records(dev.replica, collection)

    return {
        "contacts": sorted(live("contacts"), key=lambda c: str(c.get("name", "")).casefold()),
        "resources_all": sorted(live("resources"), key=lambda r: str(r.get("name", "")).casefold()),
        "agency": dev.agency,
        "noun": NOUN[collection],
        "collection": collection,
    }


def _render_form(
    dev: Device, collection: str, *, record: dict[str, Any] | None, texts: dict[str, str], **kw: Any
) -> str:
    return render_template(
        "form.html",
        fields=forms.inputs_for(collection, editing=record is not None),
        record=record,
        texts=texts,
        errors=kw.pop("errors", {}),
        **_form_context(dev, collection),
        **kw,
    )


def _refused(
    dev: Device, collection: str, exc: EditRefused, record: dict[str, Any] | None, texts: dict[str, str]
) -> Any:
    errors = forms.flat_errors(exc.messages) if exc.messages else {"_schema": [str(exc)]}
    names = {f.name for f in forms.inputs_for(collection, editing=record is not None)}
    general = [m for name, texts_ in errors.items() if name not in names for m in texts_]
    page = _render_form(dev, collection, record=record, texts=texts, errors=errors, general=general)
    return page, 422


def new(collection: str) -> Any:
    dev = device()
    if request.method == "POST":
        texts = forms.submitted(collection, request.form, editing=False)
        try:
            created = edits.create(dev, collection, inputs.form_values(collection, texts))
        except EditRefused as exc:
            return _refused(dev, collection, exc, None, texts)
        flash(f"{NOUN[collection].capitalize()} saved on this laptop; it goes to the hub at the next sync.")
        target = created["resource_id"] if collection == "reservations" else created["id"]
        endpoint = ".resource" if collection in ("resources", "reservations") else ".contact"
        return redirect(url_for(endpoint, record_id=target), 303)
    texts = {"status": "available"} if collection == "resources" else {}
    for name in ("kind", "resource_id", "role"):
        if request.args.get(name):
            texts[name] = request.args[name]
    return _render_form(dev, collection, record=None, texts=texts)


def edit(collection: str, record_id: str) -> Any:
    dev = device()
    record = _record(dev, record_id, collection)
    if record["deleted"]:
        abort(404)
    back = url_for(".contact" if collection == "contacts" else ".resource", record_id=record_id)
    if collection == "reservations":
        back = url_for(".resource", record_id=record["resource_id"])
    if request.method == "POST":
        texts = forms.submitted(collection, request.form, editing=True)
        try:
            values = inputs.form_values(collection, texts, record)
            if not values:
                flash("Nothing changed.")
                return redirect(back, 303)
            edits.update(dev, record_id, values)
        except (EditRefused, RecordNotFound) as exc:
            if isinstance(exc, RecordNotFound):
                abort(404)
            return _refused(dev, collection, exc, record, texts)
        flash(f"Changes saved on this laptop ({', '.join(sorted(values))}); they go to the hub at the next sync.")
        return redirect(back, 303)
    return _render_form(dev, collection, record=record, texts=forms.record_texts(collection, record))


for _collection in NOUN:  # explicit rules: "/resources/new" must not read as the record "new"
    bp.add_url_rule(f"/{_collection}/new", "new", new, methods=["GET", "POST"], defaults={"collection": _collection})
    bp.add_url_rule(
        f"/{_collection}/<record_id>/edit",
        "edit",
        edit,
        methods=["GET", "POST"],
        defaults={"collection": _collection},
    )
