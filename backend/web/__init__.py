"""The web view for command staff (blueprint ``web``): dashboard, records, record detail, audit log.

How to build pages on it (e.g. the admin blueprint)::

    from flask import Blueprint, render_template
    from backend.auth import login_required, roles_required   # the guards
    from backend.web.nav import register_nav                    # an entry in the top navigation

    bp = Blueprint("admin", __name__, url_prefix="/admin")
    register_nav("admin.index", "Admin", role="admin", order=90)   # shown only to admins, only if the endpoint exists

    @bp.get("/")
    @roles_required("admin")          # not logged in: to the login page; logged in without the role: 403 (audited)
    def index(): return render_template("admin/index.html", ...)

    @bp.post("/devices/<id>/revoke")  # state changes: POST only; CSRF is checked app-wide
    @roles_required("admin")
    def revoke(id): ...; audit.record(..., actor=backend.auth.accounts.actor(current_user.name)); ...

Templates ``{% extends "base.html" %}`` and fill ``{% block title %}``, ``{% block content %}``
(and optionally ``{% block heading %}``, ``{% block actions %}``). Every POST form carries
``<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">``. Macros in
``web/_macros.html``: ``status(value)`` (colour AND text), ``sort_th(label, key, sort, dir)``,
``when(moment)`` (local time with the zone), ``pager(...)``. Filters: ``|localtime`` (a
datetime, an ISO string or a hlc, rendered in ``DISPLAY_TZ`` with the zone's name), ``|hlctime``.
Flash messages (``flash(text, "ok"|"error")``) show under the heading. ``current_user`` has
``id``, ``name``, ``role``, ``is_admin``. HTML error pages (403, 404, 400 for a missing CSRF
token) come from :mod:`backend.web.errors` for every path outside ``/api/``.
No JavaScript, no inline style (the CSP forbids both): use classes from static/hub.css
(``table.data``, ``.badge-ok/-info/-warn/-bad/-muted``, ``.button``, ``.button.danger``,
``.card``, ``.grid``, ``form.filters``, ``.side-by-side``).

Tests (tests/web/conftest.py): ``web_app`` (SQLite; ``indirect`` param "postgresql" for a fresh
PostgreSQL database), ``live`` (served on 127.0.0.1), ``seeded`` (tests/web/seed.py: three agencies,
four laptops, a conflict, a double booking, an HTML-named record), ``page``, ``login(page, STAFF)``
and ``shot(page, name)`` (screenshots; ``FIELDSYNC_DOCS_IMG=docs/img`` copies them for the guides).
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("web", __name__)


def init_app(app: Flask) -> None:
    from . import errors, nav, timefmt

    timefmt.init_app(app)
    errors.init_app(app)
    nav.init_app(app)
    from . import conflicts, views  # noqa: F401  - the routes; conflicts: the review queues

    app.register_blueprint(bp)
