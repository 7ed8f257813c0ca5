"""Device authentication for API requests.

Rules this module owns:

- Every sync request is signed by the device key over (device, method, path
  with query string, SHA-256 of the body, time, nonce) - crypto.sign_request.
- Refused with 401: unsigned, unknown device, bad signature, a time more than
  ``REQUEST_MAX_SKEW`` seconds from the hub's, a nonce this device already
  used (nonces are kept for twice the skew window, then purged). The stale
  refusal says so in ``details`` (``reason: clock_skew``, the hub's and the
  request's times), and every API answer carries the hub's time
  (``X-Fieldsync-Hub-Time``), so a laptop whose clock is off re-signs in hub
  time; the window itself is never widened.
- A device id or nonce that is not 1-64 (nonce: 8-64) ASCII letters, digits
  or ``- _ . :`` is refused (401) before any lookup: nothing unstorable (NUL)
  reaches the database.
- Refused with 403: a revoked or quarantined device, at once.
- Refused with 413: a body over ``MAX_CONTENT_LENGTH`` from a known device
  (it cannot be verified without reading it; the claimed device is named),
  and a gzip body the WSGI layer refused (:func:`refuse_unread_body`).
- Each refusal is in the audit log (committed on its own, since the request
  itself does nothing), and so is the refusal of a signed push whose body the
  hub then refuses (:func:`refuse`).
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from flask import current_app, request
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge

from crypto import VerificationError, VerifyKey, format_time, verify_request
from crypto.clock import now

from .. import audit
from ..db import db
from ..errors import Forbidden, HubError, PayloadTooLarge, Unauthorized
from ..models import Device, Nonce
from . import text

logger = logging.getLogger("fieldsync.hub")
HEADER_TEXT = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")  # device ids and nonces: plain ASCII, storable anywhere


def signed_path() -> str:
    query = request.query_string.decode("latin-1")
    return request.path + (f"?{query}" if query else "")


def refuse(error: HubError, dev: Device) -> HubError:
    """Audit the refusal of an authenticated device's request (a push body over the batch limit,
    one that does not match its schema): the request was signed, so its device is named."""
    return _refuse(error, dev.id, dev.agency)


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
        raise _refuse(Unauthorized("unknown device"), text.safe(device_id))  # the audit entry clips it
    dev = db.session.get(Device, device_id)
    if dev is None:
        raise _refuse(Unauthorized("unknown device"), device_id)
    try:
        body = request.get_data()
    except RequestEntityTooLarge:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        raise _refuse(PayloadTooLarge(f"the request body is over {limit} bytes"), device_id, dev.agency) from None
    try:
        signed = verify_request(
            request.headers,
            method=request.method,
            path=signed_path(),
            body=body,
            key=VerifyKey.from_text(dev.public_key),
        )
    except VerificationError as exc:
        raise _refuse(Unauthorized(f"request signature refused: {exc.reason}"), device_id, dev.agency) from None
    skew = int(current_app.config["REQUEST_MAX_SKEW"])
    moment = now()
    if abs((moment - signed.at).total_seconds()) > skew:
        raise _refuse(
            Unauthorized(
                f"stale request: its time is more than {skew} s from the hub's",
                details={
                    "reason": "clock_skew",
                    "hub_time": format_time(moment),
                    "request_time": format_time(signed.at),
                },
            ),
            device_id,
            dev.agency,
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


def refuse_unread_body(environ: dict[str, Any], message: str) -> None:
    """Audit a body the WSGI layer refused before the hub read the request (gzip that does not
    inflate, or inflates past the limit): the device it names is unverified, as for an unknown
    device. A failure to audit is logged, never turned into another error for the sender."""
    device_id = environ.get("HTTP_X_FIELDSYNC_DEVICE") or None
    try:
        dev = db.session.get(Device, device_id[:64]) if device_id else None
        audit.record(
            "request.refused",
            actor=f"device:{device_id or 'unknown'}",
            agency=dev.agency if dev is not None else None,
            object=f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')}",
            outcome="refused",
            details={"reason": message},
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        logger.exception("could not audit a refused request body")
