"""Security headers on every response the hub sends.

- ``Content-Security-Policy``: only our own stylesheet and images; no script at
  all (the pages need none), no inline style, no framing, forms post only here.
- ``Strict-Transport-Security``: browsers keep to HTTPS (production runs
  behind TLS; browsers ignore the header on plain http, e.g. tests on loopback).
- ``X-Content-Type-Options: nosniff``, ``Cache-Control: no-store`` (records and
  the audit log must not linger in a shared tablet's cache), no referrer, no framing.
"""

from __future__ import annotations

from flask import Flask, Response

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

HEADERS = {
    "Content-Security-Policy": CSP,
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def init_app(app: Flask) -> None:
    @app.after_request
    def _secure(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers[name] = value
        return response
