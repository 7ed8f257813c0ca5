"""Agency keys, the hub key and the key registry, sealed under the KEK.

Rules this module owns:

- Private keys are stored only wrapped under the key-encryption key
  (``FIELDSYNC_KEK``, or ``instance/kek`` written by ``init`` with mode 0600);
  they are unwrapped in memory when needed to sign and never written in clear. The
  hub key, which signs every pull page's checkpoint, stays unwrapped in the
  process once used (:func:`hub_key`); agency keys are unwrapped at each use.
- The agency key signs device certificates, revocations and its own rotation;
  the hub key signs checkpoints and conflict resolutions, nothing else.
- Every key event appends a signed entry to the registry (crypto.registry),
  in the same transaction as the key row it describes.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select

from crypto import (
    KeyRegistry,
    SigningKey,
    VerifyKey,
    agency_entry,
    b64d,
    b64e,
    hub_entry,
    issue_certificate,
    revocation_entry,
    rotation_entry,
    unwrap_private_key,
    wrap_private_key,
)
from crypto.clock import now
from crypto.errors import CryptoError

from .db import db
from .errors import Conflict, HubError, NotFound
from .models import Agency, AgencyKey, HubKey, RegistryEntry


# -- the key-encryption key -------------------------------------------------
def kek_path() -> Path:
    return Path(current_app.instance_path) / "kek"


def load_kek() -> bytes:
    text = current_app.config.get("KEK")
    if not text and kek_path().exists():
        text = kek_path().read_text().strip()
    if not text:
        raise HubError("no key-encryption key: set FIELDSYNC_KEK or run `fieldsync-hub init`")
    try:
        return b64d(str(text), length=32, what="FIELDSYNC_KEK")
    except CryptoError as exc:
        raise HubError(f"FIELDSYNC_KEK is unusable: {exc}") from None


def ensure_kek() -> str:
    """Return where the KEK comes from; create instance/kek if none is configured."""
    if current_app.config.get("KEK"):
        load_kek()
        return "FIELDSYNC_KEK"
    path = kek_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(b64e(os.urandom(32)) + "\n")
    load_kek()
    return str(path)


def _unwrap(sealed: str) -> SigningKey:
    try:
        return unwrap_private_key(sealed.encode(), load_kek())
    except CryptoError as exc:
        raise HubError(f"cannot open a sealed key with this KEK: {exc}") from None


def _seal(key: SigningKey) -> str:
    return wrap_private_key(key, load_kek()).decode()


# -- registry -----------------------------------------------------------------
def registry_entries() -> list[dict[str, Any]]:
    return [row.entry for row in db.session.scalars(select(RegistryEntry).order_by(RegistryEntry.index))]


def _append(entry: dict[str, Any]) -> None:
    db.session.add(RegistryEntry(index=entry["index"], entry=entry))


def registry() -> KeyRegistry:
    """The verified registry, cached per app until it grows."""
    cache = current_app.extensions.setdefault("fieldsync.registry", {})
    size = db.session.query(RegistryEntry).count()
    cached = cache.get("registry")
    if cached is None or len(cached.entries) != size:
        cached = cache["registry"] = KeyRegistry.verify(registry_entries())
    return cached


def reset_cache() -> None:
    current_app.extensions.pop("fieldsync.registry", None)


# -- hub key --------------------------------------------------------------------
def has_hub_key() -> bool:
    """Whether a hub key was ever made (retired ones count): the hub was initialized."""
    return db.session.scalar(select(HubKey)) is not None


def create_hub_key() -> HubKey:
    if db.session.scalar(select(HubKey).where(HubKey.retired_at.is_(None))):
        raise Conflict("the hub key already exists")
    key, at = SigningKey.generate(), now()
    row = HubKey(public_key=key.verify_key.to_text(), sealed=_seal(key), created_at=at)
    db.session.add(row)
    _append(hub_entry(registry_entries(), key, at=at))
    return row


def hub_key() -> SigningKey:
    """The current hub key. It signs every pull page's checkpoint, so a process unwraps it once
    and keeps it, by its sealed form: the current row is read every time, so a new hub key (or
    the same key sealed under a new KEK) is unwrapped again at its first use."""
    table = HubKey.__table__
    sealed = db.session.execute(select(table.c.sealed).where(table.c.retired_at.is_(None))).scalar()
    if sealed is None:
        raise HubError("the hub has no key yet: run `fieldsync-hub init`")
    cache = current_app.extensions.setdefault("fieldsync.hub_key", {})
    key = cache.get(sealed)
    if key is None:
        key = _unwrap(sealed)
        cache.clear()
        cache[sealed] = key
    return key  # type: ignore[no-any-return]


# -- agencies -------------------------------------------------------------------
def create_agency(code: str, name: str) -> Agency:
    if db.session.get(Agency, code) is not None:
        raise Conflict(f"agency {code} already exists")
    key, at = SigningKey.generate(), now()
    agency = Agency(code=code, name=name, created_at=at)
    db.session.add(agency)
    db.session.add(AgencyKey(agency=code, public_key=key.verify_key.to_text(), sealed=_seal(key), created_at=at))
    _append(agency_entry(registry_entries(), key, agency=code, name=name, at=at))
    return agency


def current_agency_key(code: str) -> AgencyKey:
    """The agency's key row in use (the one not retired)."""
    row = db.session.scalar(select(AgencyKey).where(AgencyKey.agency == code, AgencyKey.retired_at.is_(None)))
    if row is None:
        raise NotFound(f"unknown agency {code}")
    return row


def agency_key(code: str) -> SigningKey:
    return _unwrap(current_agency_key(code).sealed)


def rotate_agency_key(code: str) -> AgencyKey:
    old_row = current_agency_key(code)
    old, new, at = _unwrap(old_row.sealed), SigningKey.generate(), now()
    old_row.retired_at = at
    row = AgencyKey(agency=code, public_key=new.verify_key.to_text(), sealed=_seal(new), created_at=at)
    db.session.add(row)
    _append(rotation_entry(registry_entries(), old, new, agency=code, at=at))
    return row


def certify_device(code: str, *, device_id: str, device_key: VerifyKey, officer: str) -> dict[str, Any]:
    at = now()
    days = int(current_app.config["CERT_DAYS"])
    return issue_certificate(
        agency_key(code),
        device_id=device_id,
        device_key=device_key,
        agency=code,
        officer=officer,
        not_before=at,
        not_after=at + timedelta(days=days),
    )


def record_revocation(code: str, *, device_id: str, after_seq: int, reason: str) -> dict[str, Any]:
    entry = revocation_entry(
        registry_entries(),
        agency_key(code),
        agency=code,
        device_id=device_id,
        after_seq=after_seq,
        at=now(),
        reason=reason,
    )
    _append(entry)
    return entry
