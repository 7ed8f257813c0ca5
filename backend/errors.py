"""Hub errors and the one JSON error envelope.

::

    HubError                  status 400 unless a subclass says otherwise
    ├── BadRequest            400 malformed JSON or parameters
    ├── Unauthorized          401 unsigned, stale or replayed request
    ├── Forbidden             403 revoked or quarantined device, refused by an agreement
    ├── NotFound              404
    ├── Conflict              409 duplicate code, used token...
    ├── PayloadTooLarge       413
    ├── Unprocessable         422 schema errors, with field-level details
    └── Unavailable           503 the hub's database cannot be reached: try again later

Every error reaching HTTP becomes ``{"error", "message", "details"}`` with its
status, made by :func:`init_app`'s handlers alone. The CLI prints ``message``.
A database that cannot be reached (SQLAlchemy's ``OperationalError``: the
server stopped, the connection dropped) is :class:`Unavailable`, a 503 with
``Retry-After``, never a 500 traceback: the laptop keeps its outbox and tries
again later. Nothing was committed by the failed request.
"""

from __future__ import annotations

import contextlib
from typing import Any

from flask import Flask, current_app, jsonify
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException


class HubError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details if details is not None else {}


class BadRequest(HubError):
    status, code = 400, "bad_request"


class Unauthorized(HubError):
    status, code = 401, "unauthorized"


class Forbidden(HubError):
    status, code = 403, "forbidden"


class NotFound(HubError):
    status, code = 404, "not_found"


class Conflict(HubError):
    status, code = 409, "conflict"


class PayloadTooLarge(HubError):
    status, code = 413, "payload_too_large"


class Unprocessable(HubError):
    status, code = 422, "unprocessable"


class Unavailable(HubError):
    status, code = 503, "unavailable"


RETRY_AFTER = 30  # seconds a laptop is asked to wait while the database is down

_CODES = {
    cls.status: cls.code
    for cls in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, Unprocessable, Unavailable)
}


def envelope(code: str, message: str, details: Any, status: int) -> Any:
    response = jsonify({"error": code, "message": message, "details": details or {}})
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(HubError)
    def _hub_error(exc: HubError) -> Any:
        return envelope(exc.code, exc.message, exc.details, exc.status)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        code = _CODES.get(exc.code or 500) or (exc.name or "error").lower().replace(" ", "_")
        return envelope(code, exc.description or exc.name or "error", {}, exc.code or 500)

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> Any:
        from .db import db

        with contextlib.suppress(Exception):  # the connection is gone; the pool replaces it (pool_pre_ping)
            db.session.rollback()
        current_app.logger.warning("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
        # through the HubError handlers: JSON for the API, an HTML page for people (backend/web/errors.py)
        response = current_app.make_response(
            current_app.handle_user_exception(Unavailable("the hub's database is unavailable; try again later"))
        )
        response.headers["Retry-After"] = str(RETRY_AFTER)
        return response
