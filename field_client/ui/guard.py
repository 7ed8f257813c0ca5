"""Who may drive ``fieldsync ui``: only the browser the officer opened with this run's address.

Rules this module owns (the threat: another user of the laptop, or a web page
from any other origin in the officer's own browser, driving the replica):

- **Host header.** Only ``127.0.0.1:PORT`` and ``localhost:PORT`` are served;
  anything else gets 403 before any other check. This stops DNS rebinding: a
  page from evil.example whose name was re-pointed at 127.0.0.1 sends its own
  name as Host.
- **Per-run secret.** ``secrets.token_urlsafe(32)``, printed once in the
  address (``/?key=…``). A request carrying the right key gets a session
  cookie (HttpOnly, SameSite=Strict, signed with a key that also lives only
  for this run) and is redirected to the same page without the key, so it
  does not stay in the address bar. Every other request without that session
  gets 403, static files included. Comparisons are constant-time.
- **CSRF.** Every POST carries a flask-wtf token tied to the session; GET
  never changes anything. A POST whose Origin is not this server is refused.
- **Headers.** ``Content-Security-Policy: default-src 'self'`` (no inline
  script or style: the CSS is a static file), ``frame-ancestors 'none'``,
  ``nosniff``, ``Cache-Control: no-store``, no referrer to other sites.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, abort, current_app, redirect, request, session

SESSION_FLAG = "fieldsync_ui"
CSP = (
    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'none'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",  # no-referrer would make Chromium send "Origin: null" on our own forms
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def bind_port(app: Flask, port: int) -> None:
    """Once the server has its port: which Host headers and Origins are ours, and the cookie's name
    (cookies ignore ports, so two runs on one laptop must not share one)."""
    app.config["UI_PORT"] = port
    app.config["UI_HOSTS"] = {f"127.0.0.1:{port}", f"localhost:{port}"}
    app.config["SESSION_COOKIE_NAME"] = f"fieldsync_ui_{port}"


def address(app: Flask) -> str:
    """The address to open: this run's secret included."""
    return f"http://127.0.0.1:{app.config['UI_PORT']}/?{urlencode({'key': app.config['UI_SECRET']})}"


def _refuse(status: int, message: str) -> Any:
    abort(Response(_page(message), status=status, mimetype="text/html"))


def _page(message: str) -> str:
    from markupsafe import escape

    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>fieldsync: refused</title></head>"
        f"<body><h1>Not allowed</h1><p>{escape(message)}</p></body></html>"
    )


def check_request() -> Any:
    """before_request: Host, then the secret (or its session), then the Origin of a POST."""
    hosts: set[str] = current_app.config.get("UI_HOSTS") or set()
    if not hosts or request.host not in hosts:
        _refuse(403, "This address is not fieldsync ui's. Open the address that `fieldsync ui` printed.")
    expected = current_app.config["UI_SECRET"]
    offered = request.args.get("key")
    if offered is not None:
        if not hmac.compare_digest(offered.encode(), expected.encode()):
            _refuse(403, "Wrong or old key. Open the address that `fieldsync ui` printed in this run.")
        session.clear()
        session[SESSION_FLAG] = True
        rest = {k: v for k, v in request.args.items(multi=True) if k != "key"}
        return redirect(request.path + (f"?{urlencode(rest)}" if rest else ""), code=303)
    if session.get(SESSION_FLAG) is not True:
        _refuse(403, "Open the address that `fieldsync ui` printed (it carries this run's key).")
    origin = request.headers.get("Origin")
    if request.method not in ("GET", "HEAD") and origin is not None and origin.removeprefix("http://") not in hosts:
        _refuse(403, "A page from another site tried to send this form.")
    return None


def secure_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers[name] = value
    return response


def init_app(app: Flask, secret: str | None) -> None:
    app.config.update(
        UI_SECRET=secret or new_secret(),
        SECRET_KEY=secrets.token_bytes(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=False,  # plain http on loopback; the cookie never leaves the laptop
        WTF_CSRF_TIME_LIMIT=None,  # a form may stay open all shift; the token dies with the run anyway
        WTF_CSRF_SSL_STRICT=False,
    )
    app.config.setdefault("UI_HOSTS", set())
    app.before_request(check_request)
    app.after_request(secure_headers)
