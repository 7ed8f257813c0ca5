"""Enrollment tokens and device enrollment; device revocation.

Rules this module owns:

- A token is 32 random bytes shown once (base64url); the hub keeps only its
  SHA-256. It names the agency and the officer, expires after ``TOKEN_TTL``,
  and is spent by the first enrollment that presents it, inside the same
  transaction that creates the device, under a row lock: two laptops racing
  with one token get one certificate.
- Enrollment returns the device id, its certificate, the whole key registry
  (the client pins it) and the hub's clock, so a laptop whose clock is behind
  starts its hybrid clock at the hub's time, inside its certificate's validity.
- Revocation marks the device revoked at once (its requests get 403), and
  appends a registry entry, signed by the agency key, cutting its feed after
  the last seq the hub accepted.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from typing import Any

from flask import current_app, has_request_context, request
from sqlalchemy import select

from crypto import VerifyKey, b64e, get_provider
from crypto.clock import as_utc, now
from crypto.errors import CryptoError
from sync.hlc import Clock

from . import audit, keystore
from .db import db
from .errors import Conflict, Forbidden, HubError, NotFound, Unauthorized, Unprocessable
from .models import Agency, Device, EnrollmentToken


def _digest(token: str) -> str:
    return b64e(get_provider().hash(token.encode("utf-8")))


def issue_token(agency: str, officer: str, *, actor: str = "admin", ttl: int | None = None) -> str:
    if db.session.get(Agency, agency) is None:
        raise NotFound(f"unknown agency {agency}")
    if not officer.strip():
        raise Unprocessable("an officer name is required", details={"officer": ["Required."]})
    token = b64e(os.urandom(32))
    at = now()
    seconds = int(ttl if ttl is not None else current_app.config["TOKEN_TTL"])
    db.session.add(
        EnrollmentToken(
            token_hash=_digest(token),
            agency=agency,
            officer=officer.strip(),
            created_at=at,
            expires_at=at + timedelta(seconds=seconds),
        )
    )
    audit.record("token.issued", actor=actor, agency=agency, object=officer, details={"expires_in": seconds})
    return token


def refuse(error: HubError, agency: str | None = None, officer: str | None = None) -> HubError:
    """Audit a refused enrollment on its own (the refused request changes nothing else): for a
    token the hub issued, its agency and officer (the ``token.issued`` entry's object); always the
    address the attempt came from."""
    db.session.rollback()
    sender = request.remote_addr if has_request_context() else None
    audit.record(
        "device.enroll",
        actor="anonymous",
        agency=agency,
        object=officer,
        outcome="refused",
        details={"reason": error.message, "from": sender},
    )
    db.session.commit()
    return error


def enroll(token: Any, public_key: Any) -> dict[str, Any]:
    if not isinstance(token, str) or not token:
        raise refuse(Unprocessable("an enrollment token is required", details={"token": ["Required."]}))
    try:
        device_key = VerifyKey.from_text(public_key)
    except (CryptoError, TypeError):
        raise refuse(
            Unprocessable("public_key is not an Ed25519 public key", details={"public_key": ["Invalid."]})
        ) from None
    row = db.session.scalar(
        select(EnrollmentToken).where(EnrollmentToken.token_hash == _digest(token)).with_for_update()
    )
    if row is None:
        raise refuse(Unauthorized("unknown enrollment token"))
    if row.used_at is not None:
        raise refuse(Conflict("this enrollment token was already used"), row.agency, row.officer)
    if as_utc(row.expires_at) < now():
        raise refuse(Forbidden("this enrollment token has expired; ask for a new one"), row.agency, row.officer)
    if db.session.scalar(select(Device).where(Device.public_key == device_key.to_text())):
        raise refuse(Conflict("this device key is already enrolled"), row.agency, row.officer)
    device_id = str(uuid.uuid4())
    certificate = keystore.certify_device(row.agency, device_id=device_id, device_key=device_key, officer=row.officer)
    at = now()
    db.session.add(
        Device(
            id=device_id,
            agency=row.agency,
            officer=row.officer,
            public_key=device_key.to_text(),
            certificate=certificate,
            status="active",
            enrolled_at=at,
            feed_seq=0,
        )
    )
    row.used_at, row.device_id = at, device_id
    audit.record("device.enroll", actor=f"officer:{row.officer}", agency=row.agency, object=device_id)
    db.session.commit()
    return {
        "device_id": device_id,
        "agency": row.agency,
        "officer": row.officer,
        "certificate": certificate,
        "registry": keystore.registry_entries(),
        "hub_time": str(Clock("hub").now()),
    }


def revoke(device_id: str, *, actor: str = "admin", reason: str = "") -> Device:
    dev = db.session.scalar(select(Device).where(Device.id == device_id).with_for_update())
    if dev is None:
        raise NotFound(f"unknown device {device_id}")
    if dev.status == "revoked":
        raise Conflict(f"device {device_id} is already revoked")
    dev.status, dev.revoked_at, dev.revoked_after_seq = "revoked", now(), dev.feed_seq
    dev.status_reason = reason or "revoked by an administrator"
    keystore.record_revocation(dev.agency, device_id=dev.id, after_seq=dev.feed_seq, reason=dev.status_reason)
    audit.record(
        "device.revoke",
        actor=actor,
        agency=dev.agency,
        object=dev.id,
        details={"after_seq": dev.feed_seq, "reason": dev.status_reason},
    )
    return dev
