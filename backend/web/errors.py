"""Errors as HTML pages for people, JSON envelopes for the API.

The API's handlers (backend/errors.py) answer every path under ``/api/`` and
``/healthz`` as before; every other path (web and admin pages) gets an HTML
page with the same status: 400 (e.g. a form without its CSRF token), 403, 404...
An unknown path gets HTML when the client asks for HTML (a browser), else JSON.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .. import errors as api_errors
from ..errors import HubError

JSON_PREFIXES = ("/api/", "/healthz")


def wants_json() -> bool:
    """API paths always; a path that matched no page (e.g. a typo) answers as the client prefers."""
    if request.path.startswith(JSON_PREFIXES):
        return True
    if request.url_rule is None:
        return request.accept_mimetypes.best_match(["application/json", "text/html"]) != "text/html"
    return False


def _page(status: int, title: str, message: str) -> Any:
    return render_template("web/error.html", status=status, title=title, message=message), status


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Any:
        if getattr(session, "expired", False):  # the form outlived its session: log in again, not a 400 page
            return redirect(url_for("auth.login", expired=1), code=303)
        return _page(
            400,
            "Form refused",
            f"{exc.description} The form was not sent with its CSRF security token, or with a stale one: "
            "go back, reload the page and try again.",
        )

    @app.errorhandler(HubError)
    def _hub_error(exc: HubError) -> Any:
        if wants_json():
            return api_errors.envelope(exc.code, exc.message, exc.details, exc.status)
        return _page(exc.status, exc.code.replace("_", " ").capitalize(), exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if wants_json():
            code = api_errors._CODES.get(exc.code or 500) or (exc.name or "error").lower().replace(" ", "_")
            return api_errors.envelope(code, exc.description or exc.name or "error", {}, exc.code or 500)
        return _page(exc.code or 500, exc.name or "Error", exc.description or "")
