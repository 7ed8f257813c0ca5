"""The ``auth`` blueprint: system-use banner, login, logout.

The banner must be acknowledged (a POST, remembered in the pre-login session)
before the login form is shown or accepted. Login and logout are POSTs with
the CSRF token; nothing changes on GET.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from .. import audit
from ..db import db
from . import sessions
from .accounts import actor, authenticate

bp = Blueprint("auth", __name__)

BANNER_KEY = "banner_ack"


def _safe_next(target: str | None) -> str:
    """Only a path on this hub (no open redirect to another site).

    Browsers drop tabs and newlines from a URL and read a backslash as a slash,
    so ``/\t/evil.example`` would leave as ``//evil.example``: any control
    character, space or backslash refuses the target outright (a newline would
    also break the ``Location`` header). What is left must be a bare path:
    no scheme (``https:evil``), no host, one leading slash.
    """
    if not target or any(ord(c) < 0x21 or c == "\\" for c in target):
        return url_for("web.dashboard")
    try:
        parts = urlsplit(target)
    except ValueError:
        return url_for("web.dashboard")
    if parts.scheme == "" and parts.netloc == "" and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("web.dashboard")


@bp.get("/login")
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    expired = bool(getattr(session, "expired", False)) or request.args.get("expired") == "1"
    if not session.get(BANNER_KEY):
        return render_template("auth/banner.html", next=request.args.get("next", ""), expired=expired)
    return render_template("auth/login.html", next=request.args.get("next", ""), error=None, expired=expired)


@bp.post("/login/banner")
def acknowledge() -> Any:
    session[BANNER_KEY] = True
    return redirect(url_for("auth.login", next=request.form.get("next") or None))


@bp.post("/login")
def login_post() -> Any:
    next_url = request.form.get("next", "")
    if not session.get(BANNER_KEY):
        return redirect(url_for("auth.login", next=next_url or None))
    result = authenticate(
        request.form.get("name", "")[:200], request.form.get("password", "")[:1000], client=request.remote_addr
    )
    if result.user is None:
        return render_template("auth/login.html", next=next_url, error=result.message, expired=False), 401
    from . import WebUser

    sessions.rotate(session)
    session.pop("csrf_token", None)  # a token handed out before login is worthless after it
    sessions.purge_idle(current_app._get_current_object())  # type: ignore[attr-defined]
    login_user(WebUser(result.user.id, result.user.name, result.user.role))
    session[BANNER_KEY] = True
    db.session.commit()
    return redirect(_safe_next(next_url))


@bp.post("/logout")
def logout() -> Any:
    if current_user.is_authenticated:
        audit.record("logout", actor=actor(current_user.name))
        db.session.commit()
        logout_user()
    sessions.end(session)
    return redirect(url_for("auth.login"))
