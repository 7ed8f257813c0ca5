"""Server-side web sessions kept in the hub's database (table ``web_sessions``).

Rules this module owns:

- The cookie carries only a random token (32 bytes); the table keys the
  session by the token's SHA-256, so a copy of the database is no pile of
  live cookies. Everything else (who is logged in, the CSRF secret, the
  banner acknowledgement) stays on the server.
- A session unused for ``SESSION_IDLE_MINUTES`` is deleted the next time its
  cookie shows up, and the request goes on as anonymous (``session.expired``
  tells the login page why). Logging out deletes the row; deleting a user
  deletes its rows (ON DELETE CASCADE, and :func:`end_user_sessions`), so
  both take effect on the very next request, from every browser.
- Logging in rotates the token (:func:`rotate`): a token planted before login
  (session fixation) is worthless after it.
- API and static requests never open a session: devices sign their requests
  and carry no cookie, and the API must not pay a database round trip for one.
- The database down (``OperationalError``) is a 503 page, never a 500: a
  session that cannot be read is marked ``unavailable`` and the request is
  answered 503 before any view runs (:func:`refuse_when_unavailable`); one
  that cannot be saved is dropped with the response left as it was (the
  browser keeps its cookie, and the row its old contents).

Why not flask-session's SQLAlchemy backend: it creates its table outside the
migrations (tests/backend/test_schema.py would fail), uses ``datetime.utcnow()``
(a DeprecationWarning, an error under the suite's filterwarnings), and stores
opaque blobs keyed by session id only, so "end every session of this account"
would mean decoding every row. Forty lines of our own do all three properly.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete
from sqlalchemy.exc import OperationalError
from werkzeug.datastructures import CallbackDict

from crypto.clock import as_utc, now

from .. import audit
from ..db import db
from ..errors import Unavailable
from ..models import User, WebSession

NO_SESSION_PREFIXES = ("/api/", "/healthz", "/static/")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """The session dict; ``token`` is None until the session is first stored."""

    def __init__(self, initial: dict[str, Any] | None = None, token: str | None = None) -> None:
        def on_update(_self: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.token = token
        self.new = token is None
        self.modified = False
        self.rotate = False
        self.ended = False
        self.expired = False  # an idle session was just ended (the login page says so)
        self.unavailable = False  # the database could not be read: the request is answered 503


class DatabaseSessionInterface(SessionInterface):
    def open_session(self, app: Flask, request: Request) -> ServerSession | None:
        if request.path.startswith(NO_SESSION_PREFIXES):
            return ServerSession()
        token = request.cookies.get(self.get_cookie_name(app))
        if not token:
            return ServerSession()
        try:
            return self._load(app, token)
        except OperationalError:
            db.session.rollback()
            down = ServerSession()
            down.unavailable = True
            return down

    def _load(self, app: Flask, token: str) -> ServerSession:
        row = db.session.get(WebSession, _digest(token))
        if row is None:
            db.session.rollback()
            return ServerSession()
        moment = now()
        idle = timedelta(minutes=float(app.config["SESSION_IDLE_MINUTES"]))
        if moment - as_utc(row.last_seen_at) > idle:
            was_logged_in = row.user_id is not None
            if was_logged_in:
                user = db.session.get(User, row.user_id)
                audit.record(
                    "session.expired",
                    actor=f"user:{user.name if user else row.user_id}",
                    details={"idle_minutes": app.config["SESSION_IDLE_MINUTES"]},
                )
            db.session.delete(row)
            db.session.commit()
            fresh = ServerSession()
            fresh.expired = was_logged_in
            return fresh
        row.last_seen_at = moment
        data = dict(row.data)
        db.session.commit()
        return ServerSession(data, token)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        if session.unavailable:
            return
        try:
            self._save(app, session, response)
        except OperationalError:
            db.session.rollback()
            app.logger.warning("database unavailable: the web session was not saved")

    def _save(self, app: Flask, session: ServerSession, response: Response) -> None:
        name = self.get_cookie_name(app)
        cookie = {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "httponly": self.get_cookie_httponly(app),
            "samesite": self.get_cookie_samesite(app),
        }
        if session.ended:
            if session.token:
                db.session.execute(delete(WebSession).where(WebSession.id == _digest(session.token)))
                db.session.commit()
            response.delete_cookie(name, **cookie)
            return
        if not (session.modified or session.rotate) or (session.new and not session):
            return
        moment = now()
        if session.token and session.rotate:
            db.session.execute(delete(WebSession).where(WebSession.id == _digest(session.token)))
            session.token = None
        user_id = session.get("_user_id")
        if session.token is None:
            session.token = secrets.token_urlsafe(32)
            row = WebSession(id=_digest(session.token), created_at=moment)
            db.session.add(row)
        else:
            row = db.session.get(WebSession, _digest(session.token)) or WebSession(
                id=_digest(session.token), created_at=moment
            )
            db.session.add(row)
        row.data = dict(session)
        row.user_id = int(user_id) if user_id is not None else None
        row.last_seen_at = moment
        db.session.commit()
        response.set_cookie(name, session.token, **cookie)  # a browser-session cookie: gone when it closes
        response.vary.add("Cookie")


def refuse_when_unavailable() -> Response | None:
    """before_request (registered before CSRF's): a session the database could not give back
    is a 503 page, with the API's Retry-After, before any view or check runs."""
    from flask import current_app, session

    from ..errors import RETRY_AFTER

    if not getattr(session, "unavailable", False):
        return None
    response = current_app.make_response(
        current_app.handle_user_exception(Unavailable("the hub's database is unavailable; try again later"))
    )
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def rotate(session: Any) -> None:
    """Give this session a new token when it is next saved (call at login)."""
    session.rotate = True


def end(session: Any) -> None:
    """Delete this session on the server and its cookie in the browser (logout)."""
    session.clear()
    session.ended = True


def end_user_sessions(user_id: int) -> int:
    """Delete every session of one account (the caller commits); returns how many."""
    result = db.session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


def purge_idle(app: Flask) -> int:
    """Drop sessions idle past the limit (at each login, and by the ``sessions-purge`` job, so
    anonymous visits to the banner cannot grow the table); returns how many."""
    idle = timedelta(minutes=float(app.config["SESSION_IDLE_MINUTES"]))
    result = db.session.execute(delete(WebSession).where(WebSession.last_seen_at < now() - idle))
    return int(getattr(result, "rowcount", 0) or 0)
