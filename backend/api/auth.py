"""Device authentication for API requests.

Rules this module owns:

- Every sync request is signed by the device key over (device, method, path
  with query string, SHA-256 of the body, time, nonce) - crypto.sign_request.
- Refused with 401: unsigned, unknown device, bad signature, a time more than
  ``REQUEST_MAX_SKEW`` seconds from the hub's, a nonce this device already
  used (nonces are kept for twice the skew window, then purged).
- A device id or nonce that is not 1-64 (nonce: 8-64) ASCII letters, digits
  or ``- _ . :`` is refused (401) before any lookup: nothing unstorable (NUL)
  reaches the database.
- Refused with 403: a revoked or quarantined device, at once.
- Each refusal is in the audit log (committed on its own, since the request
  itself does nothing).
"""

from __future__ import annotations

import re
from datetime import timedelta

from flask import current_app, request
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from crypto import VerificationError, VerifyKey, verify_request

from .. import audit
from ..db import db
from ..errors import Forbidden, HubError, Unauthorized
from ..keystore import now
from ..models import Device, Nonce

HEADER_TEXT = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")  # device ids and nonces: plain ASCII, storable anywhere


def signed_path() -> str:
    query = request.query_string.decode("latin-1")
    return request.path + (f"?{query}" if query else "")


def _refuse(error: HubError, device_id: str | None, agency: str | None = None) -> HubError:
    db.session.rollback()
    audit.record(
        "request.refused",
        actor=f"device:{device_id or 'unknown'}",
        agency=agency,
        object=f"{request.method} {request.path}",
        outcome="refused",
        details={"reason": error.message},
    )
    db.session.commit()
    return error


def authenticate() -> Device:
    device_id = request.headers.get("X-Fieldsync-Device")
    if not device_id:
        raise _refuse(Unauthorized("request is not signed by a device"), None)
    if not HEADER_TEXT.match(device_id):  # not an id the hub issued: nothing to look up, nothing unstorable kept
        raise _refuse(Unauthorized("unknown device"), ascii(device_id)[:80])
    dev = db.session.get(Device, device_id)
    if dev is None:
        raise _refuse(Unauthorized("unknown device"), device_id)
    try:
        signed = verify_request(
            request.headers,
            method=request.method,
            path=signed_path(),
            body=request.get_data(),
            key=VerifyKey.from_text(dev.public_key),
        )
    except VerificationError as exc:
        raise _refuse(Unauthorized(f"request signature refused: {exc.reason}"), device_id, dev.agency) from None
    skew = int(current_app.config["REQUEST_MAX_SKEW"])
    moment = now()
    if abs((moment - signed.at).total_seconds()) > skew:
        raise _refuse(
            Unauthorized(f"stale request: its time is more than {skew} s from the hub's"), device_id, dev.agency
        )
    if dev.status == "revoked":
        raise _refuse(Forbidden(f"device {dev.id} was revoked: {dev.status_reason}"), device_id, dev.agency)
    if dev.status != "active":
        raise _refuse(Forbidden(f"device {dev.id} is {dev.status}: {dev.status_reason}"), device_id, dev.agency)
    if not 8 <= len(signed.nonce) <= 64 or not HEADER_TEXT.match(signed.nonce):
        raise _refuse(Unauthorized("request nonce must be 8 to 64 letters, digits or - _ . :"), device_id, dev.agency)
    try:
        with db.session.begin_nested():
            db.session.add(Nonce(device=dev.id, nonce=signed.nonce, seen_at=moment))
    except IntegrityError:
        raise _refuse(Unauthorized("replayed request: this nonce was already used"), device_id, dev.agency) from None
    db.session.execute(delete(Nonce).where(Nonce.seen_at < moment - timedelta(seconds=2 * skew)))
    dev.last_seen_at = moment
    db.session.commit()
    return dev
