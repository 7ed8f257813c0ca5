"""Routes of the ``admin`` blueprint: thin; each change calls one service function and commits.

GET shows a list, a form or a confirmation; POST changes state, after which
the browser is sent back (303) with a flash message. A refused form is shown
again with the reasons beside the fields and nothing written (status 422).
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from wtforms.fields.choices import SelectChoice

from crypto.clock import as_utc, now

from .. import agencies, agreements, audit, enroll, keystore, users
from .. import devices as enrolled
from ..auth import roles_required
from ..auth.accounts import actor
from ..db import db
from ..errors import HubError, NotFound
from ..models import Agency, Agreement, Device, User, WebSession
from ..web import sorting
from ..web.nav import register_nav
from . import bp
from .forms import AgencyForm, AgreementForm, RevokeForm, TokenForm, UserForm, names, show_errors

register_nav("admin.index", "Admin", role="admin", order=90)

SECTIONS = (
    ("admin.agencies", "Agencies & keys"),
    ("admin.devices", "Devices"),
    ("admin.agreements", "Agreements"),
    ("admin.users", "Users"),
)


@bp.app_context_processor
def _sections() -> dict[str, Any]:
    return {"admin_sections": SECTIONS}


def _me() -> str:
    return actor(current_user.name)


def _refused(action: str, exc: HubError, object: str) -> None:
    """Roll back a refused admin form and audit the refusal (committed on its own)."""
    audit.refused(action, actor=_me(), reason=exc.message, object=object[:300] or None)


def _done(message: str, endpoint: str) -> Any:
    db.session.commit()
    flash(message, "ok")
    return redirect(url_for(endpoint), code=303)


def _agency_choices() -> list[SelectChoice]:
    return [SelectChoice(a.code, f"{a.code} — {a.name}") for a in agencies.listing()]


@bp.get("/")
@roles_required("admin")
def index() -> Any:
    count = lambda model, *where: db.session.scalar(select(func.count()).select_from(model).where(*where))  # noqa: E731
    return render_template(
        "admin/index.html",
        counts={
            "agencies": count(Agency),
            "devices": count(Device, Device.status == "active"),
            "revoked": count(Device, Device.status != "active"),
            "agreements": count(Agreement),
            "users": count(User),
        },
    )


# -- agencies and keys -------------------------------------------------------------------------------
@bp.route("/agencies", methods=["GET", "POST"], endpoint="agencies")
@roles_required("admin")
def agencies_page() -> Any:
    form = AgencyForm()
    status = 200
    if request.method == "POST":
        if form.validate():
            try:
                agencies.create(form.code.data.strip(), form.name.data, actor=_me())
                return _done(f"Agency {form.code.data.strip()} created with its own key.", "admin.agencies")
            except HubError as exc:
                _refused("agency.create", exc, (form.code.data or "").strip())
                show_errors(form, exc.details or {"code": []}, exc.message)
        status = 422
    return render_template("admin/agencies.html", agencies=agencies.overview(), form=form), status


@bp.route("/agencies/<code>/rotate", methods=["GET", "POST"])
@roles_required("admin")
def rotate(code: str) -> Any:
    try:
        agency = agencies.get(code)
    except NotFound:
        abort(404, description=f"No agency {code}.")
    if request.method == "POST":
        row = agencies.rotate_key(code, actor=_me())
        return _done(f"Key of {code} rotated; new key {row.public_key[:16]}…", "admin.agencies")
    key = keystore.current_agency_key(code)
    return render_template("admin/rotate.html", agency=agency, key=key)


# -- devices ------------------------------------------------------------------------------------------
@bp.get("/devices")
@roles_required("admin")
def devices() -> Any:
    form = TokenForm()
    form.agency.choices = _agency_choices()
    return _devices_page(form)


DEVICE_SORTS = {
    "agency": "asc",  # the default: by agency, then in order of enrollment
    "device": "asc",
    "officer": "asc",
    "status": "asc",
    "enrolled": "desc",
    "seen": "desc",
    "changes": "desc",
}
_DEVICE_KEYS: dict[str, Any] = {
    "agency": lambda d: d.agency,
    "device": lambda d: d.id,
    "officer": lambda d: d.officer,
    "status": lambda d: d.status,
    "enrolled": lambda d: as_utc(d.enrolled_at) if d.enrolled_at else None,
    "seen": lambda d: as_utc(d.last_seen_at) if d.last_seen_at else None,
    "changes": lambda d: d.feed_seq,
}
USER_SORTS = {"name": "asc", "role": "asc", "created": "desc", "signin": "desc", "sessions": "desc"}


def _devices_page(form: TokenForm, *, token: str | None = None, status: int = 200) -> Any:
    agency = request.args.get("agency") or None
    sort = sorting.choose(request.args, DEVICE_SORTS, "agency")
    rows = sorting.sort_rows(
        enrolled.listing(agency),
        sort,
        _DEVICE_KEYS,
        tiebreak=lambda d: (as_utc(d.enrolled_at) if d.enrolled_at else now(), d.id),
    )
    return render_template(
        "admin/devices.html",
        devices=rows,
        form=form,
        token=token,
        agency=agency,
        agencies=_agency_choices(),
        sort=sort,
        args={"agency": agency} if agency else {},
    ), status


@bp.post("/devices/token")
@roles_required("admin")
def token() -> Any:
    form = TokenForm()
    form.agency.choices = _agency_choices()
    if not form.validate():
        return _devices_page(form, status=422)
    try:
        issued = enroll.issue_token(form.agency.data, form.officer.data.strip(), actor=_me())
    except HubError as exc:
        _refused("token.issued", exc, (form.officer.data or "").strip())
        show_errors(form, exc.details, exc.message)
        return _devices_page(form, status=422)
    db.session.commit()
    fresh = TokenForm(formdata=None, agency=form.agency.data)
    fresh.agency.choices = form.agency.choices
    return _devices_page(fresh, token=issued)


@bp.route("/devices/<device_id>/revoke", methods=["GET", "POST"])
@roles_required("admin")
def revoke(device_id: str) -> Any:
    try:
        device = enrolled.get(device_id)
    except NotFound:
        abort(404, description=f"No device {device_id}.")
    form = RevokeForm()
    if request.method == "POST" and form.validate():
        try:
            dev = enroll.revoke(device_id, actor=_me(), reason=(form.reason.data or "").strip())
        except HubError as exc:
            _refused("device.revoke", exc, device_id)
            flash(exc.message, "error")
            return redirect(url_for("admin.devices"), code=303)
        return _done(
            f"Device of {dev.officer} ({dev.agency}) revoked after its change {dev.revoked_after_seq}; "
            "the hub refuses it from now on.",
            "admin.devices",
        )
    return render_template("admin/revoke.html", device=device, form=form), (422 if request.method == "POST" else 200)


# -- agreements ---------------------------------------------------------------------------------------
@bp.route("/agreements", methods=["GET", "POST"], endpoint="agreements")
@roles_required("admin")
def agreements_page() -> Any:
    form = AgreementForm()
    form.from_agency.choices = form.to_agency.choices = _agency_choices()
    status = 200
    if request.method == "POST":
        if form.validate():
            try:
                row = agreements.add(
                    form.from_agency.data,
                    form.to_agency.data,
                    list(form.collections.data or []),
                    names(form.withhold.data),
                    names(form.write.data),
                    actor=_me(),
                )
                return _done(
                    f"Agreement added: {row.to_agency} sees {row.from_agency}'s {', '.join(row.collections)}.",
                    "admin.agreements",
                )
            except HubError as exc:
                _refused("agreement.add", exc, f"{form.from_agency.data}->{form.to_agency.data}")
                show_errors(form, exc.details, exc.message)
        status = 422
    return render_template("admin/agreements.html", agreements=agreements.listing(), form=form), status


@bp.route("/agreements/<int:agreement_id>/remove", methods=["GET", "POST"])
@roles_required("admin")
def remove_agreement(agreement_id: int) -> Any:
    row = db.session.get(Agreement, agreement_id) or abort(404, description="No such agreement.")
    if request.method == "POST":
        agreements.remove(row.from_agency, row.to_agency, actor=_me())
        return _done(f"Agreement from {row.from_agency} to {row.to_agency} removed.", "admin.agreements")
    return render_template("admin/agreement_remove.html", agreement=row)


# -- users --------------------------------------------------------------------------------------------
@bp.route("/users", methods=["GET", "POST"], endpoint="users")
@roles_required("admin")
def users_page() -> Any:
    form = UserForm()
    status = 200
    if request.method == "POST":
        if form.validate():
            try:
                users.add_user(form.name.data, form.role.data, form.password.data, actor=_me())
                return _done(f"User {form.name.data.strip()} added ({form.role.data}).", "admin.users")
            except HubError as exc:
                _refused("user.add", exc, (form.name.data or "").strip())
                show_errors(form, exc.details or {"name": []}, exc.message)
        status = 422
    sessions = dict(
        db.session.execute(select(WebSession.user_id, func.count()).group_by(WebSession.user_id)).all()  # type: ignore[arg-type]
    )
    moment = now()

    def signin(u: User) -> int:  # locked (2) above some failures (1) above ok (0)
        if u.locked_until is not None and as_utc(u.locked_until) > moment:
            return 2
        return 1 if u.failed_logins else 0

    sort = sorting.choose(request.args, USER_SORTS, "name")
    keys: dict[str, Any] = {
        "name": lambda u: u.name,
        "role": lambda u: u.role,
        "created": lambda u: as_utc(u.created_at) if u.created_at else None,
        "signin": signin,
        "sessions": lambda u: sessions.get(u.id, 0),
    }
    rows = sorting.sort_rows(users.list_users(), sort, keys, tiebreak=lambda u: u.name)
    return render_template(
        "admin/users.html", users=rows, sessions=sessions, form=form, as_utc=as_utc, now=moment, sort=sort
    ), status


@bp.route("/users/<int:user_id>/remove", methods=["GET", "POST"])
@roles_required("admin")
def remove_user(user_id: int) -> Any:
    user = db.session.get(User, user_id) or abort(404, description="No such user.")
    if user.id == current_user.id:
        if request.method == "POST":
            audit.refused(
                "user.remove", actor=_me(), reason="an admin cannot remove their own account", object=user.name
            )
        flash("You cannot remove your own account; ask another administrator.", "error")
        return redirect(url_for("admin.users"), code=303)
    if request.method == "POST":
        try:
            users.remove_user(user.name, actor=_me())
        except HubError as exc:
            _refused("user.remove", exc, user.name)
            flash(exc.message, "error")
            return redirect(url_for("admin.users"), code=303)
        return _done(f"User {user.name} removed; their sessions ended.", "admin.users")
    count = db.session.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == user.id))
    return render_template("admin/user_remove.html", user=user, sessions=count)
