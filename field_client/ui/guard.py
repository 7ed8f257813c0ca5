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
- **One-time keys.** The browser is opened with a redirect file holding a
  one-time key (:func:`one_time_key`), burned by its first exchange, so the
  browser's history entry of that address (and the file, should it survive
  a crash) opens nothing later. The printed key stays good for the whole run:
  it is only in the officer's terminal, and it lets them open the page again
  (another browser, or after closing this one) without restarting.
- **CSRF.** Every POST carries a flask-wtf token tied to the session; GET
  never changes anything. A POST whose Origin is not this server is refused.
- **Headers.** ``Content-Security-Policy: default-src 'self'`` (no inline
  script or style: the CSS is a static file), ``frame-ancestors 'none'``,
  ``nosniff``, ``Cache-Control: no-store``, no referrer to other sites.
"""

from __future__ import annotations

import hmac
import secrets
import threading
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


def address(app: Flask, key: str | None = None) -> str:
    """The address to open: this run's secret included (or ``key``, e.g. a one-time one)."""
    return f"http://127.0.0.1:{app.config['UI_PORT']}/?{urlencode({'key': key or app.config['UI_SECRET']})}"


def one_time_key(app: Flask) -> str:
    """A key that opens the ui once: its first exchange for the session cookie burns it."""
    key = new_secret()
    with app.extensions["fieldsync_ui_once_lock"]:
        app.config["UI_ONCE"].add(key)
    return key


def _key_accepted(offered: str) -> bool:
    """The run's key, or an unused one-time key (which this call burns). Constant-time compares."""
    if hmac.compare_digest(offered.encode(), current_app.config["UI_SECRET"].encode()):
        return True
    with current_app.extensions["fieldsync_ui_once_lock"]:
        once: set[str] = current_app.config["UI_ONCE"]
        found = [k for k in once if hmac.compare_digest(offered.encode(), k.encode())]
        once.difference_update(found)
    return bool(found)


def _refuse(status: int, message: str) -> Any:
    abort(Response(_page(message), status=status, mimetype="text/html"))


def _page(message: str) -> str:
    from markupsafe import escape

    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>fieldsync: refused</title></head>"
        f"<body><h1>Not allowed</h1><p>{escape(message)}</p></body></html>"
    )


def _bounce(target: str) -> Response:
    """The way on when the keyed address was opened from elsewhere (the launcher file is a
    ``file://`` page): the browser does not send a SameSite=Strict cookie on a redirect that a
    cross-site page started, so this page of our own makes the next step a same-site one."""
    from markupsafe import escape

    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="0;url={escape(target)}"><title>fieldsync</title></head>'
        f'<body><p><a href="{escape(target)}">Open fieldsync</a></p></body></html>'
    )
    return Response(page, status=200, mimetype="text/html")


def check_request() -> Any:
    """before_request: Host, then the secret (or its session), then the Origin of a POST."""
    hosts: set[str] = current_app.config.get("UI_HOSTS") or set()
    if not hosts or request.host not in hosts:
        _refuse(403, "This address is not fieldsync ui's. Open the address that `fieldsync ui` printed.")
    offered = request.args.get("key")
    if offered is not None:
        if not _key_accepted(offered):
            if session.get(SESSION_FLAG) is True:  # this browser is in already (e.g. a used one-time key
                return redirect(request.path, code=303)  # from its history): no new session, just the page
            _refuse(403, "Wrong, used or old key. Open the address that `fieldsync ui` printed in this run.")
        session.clear()
        session[SESSION_FLAG] = True
        rest = {k: v for k, v in request.args.items(multi=True) if k != "key"}
        target = request.path + (f"?{urlencode(rest)}" if rest else "")
        if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
            return _bounce(target)
        return redirect(target, code=303)
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
    app.config["UI_ONCE"] = set()
    app.extensions["fieldsync_ui_once_lock"] = threading.Lock()
    app.before_request(check_request)
    app.after_request(secure_headers)
