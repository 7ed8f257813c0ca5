"""The web login layer: server-side sessions, accounts, CSRF, security headers.

``init_app(app)`` installs, for the whole app:

- :class:`~backend.auth.sessions.DatabaseSessionInterface` (sessions in the hub's
  database; logout and account removal end them at once; idle timeout);
- flask-login, loading :class:`WebUser` (id, name, role) for ``current_user``;
- flask-wtf's ``CSRFProtect``: every POST/PUT/PATCH/DELETE outside the device-signed
  JSON API needs the session's CSRF token (400 otherwise);
- the security headers on every response (:mod:`backend.auth.headers`);
- the ``auth`` blueprint: ``/login`` (system-use banner first), ``/logout``.

Views guard themselves with :func:`login_required` and :func:`roles_required`.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from ..db import db
from ..models import User
from . import headers
from .decorators import login_required, roles_required
from .sessions import DatabaseSessionInterface, end_user_sessions, refuse_when_unavailable

__all__ = ["WebUser", "csrf", "end_user_sessions", "init_app", "login_required", "roles_required"]

csrf = CSRFProtect()
login_manager = LoginManager()


@dataclass(frozen=True)
class WebUser:
    """The logged-in account as views see it (not an ORM object: nothing to detach)."""

    id: int
    name: str
    role: str

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@login_manager.user_loader
def _load_user(user_id: str) -> WebUser | None:
    try:
        user = db.session.get(User, int(user_id))
    except ValueError:
        return None
    return WebUser(user.id, user.name, user.role) if user is not None else None


def init_app(app: Flask) -> None:
    app.session_interface = DatabaseSessionInterface()
    app.before_request(refuse_when_unavailable)  # before CSRF's check, which would read the lost session
    login_manager.session_protection = None  # the token rotates at login and the session lives on the server
    login_manager.login_view = "auth.login"
    login_manager.init_app(app)
    csrf.init_app(app)
    # device-signed requests carry no cookie: nothing to forge (register the API blueprint first)
    csrf.exempt(app.blueprints["api"])
    headers.init_app(app)

    from .views import bp

    app.register_blueprint(bp)
