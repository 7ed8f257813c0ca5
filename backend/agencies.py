"""Agencies and their keys as administrators manage them: one path for the CLI and the admin pages.

Rules this module owns:

- An agency code matches sync.schemas.AGENCY_RE (2-32 capitals, digits, - or
  _, starting with a letter); its name, trimmed, is 1 to 200 characters.
- Creating an agency and rotating its key each write one audit entry in the
  same transaction; the key work itself (sealing, registry entries) is
  backend.keystore's. So ``fieldsync-hub agency create`` and the admin page's
  form do exactly the same.
- An agency's current key is its one key not retired; :func:`overview` is the
  one read of agencies with their keys and devices (the CLI's ``agency list``
  and the admin agencies page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from crypto.clock import as_utc
from sync.schemas import AGENCY_RE

from . import audit, keystore
from .db import db
from .errors import NotFound, Unprocessable
from .models import Agency, AgencyKey, Device


def check_code(code: str) -> str:
    if not re.match(AGENCY_RE, code):
        raise Unprocessable(
            f"agency code {code!r} must be 2-32 capitals, digits, - or _, starting with a letter",
            details={"code": ["2-32 capitals, digits, - or _, starting with a letter."]},
        )
    return code


def create(code: str, name: str, *, actor: str) -> Agency:
    check_code(code)
    name = name.strip()
    if not name or len(name) > 200:
        raise Unprocessable("the agency's name is 1 to 200 characters", details={"name": ["1 to 200 characters."]})
    agency = keystore.create_agency(code, name)
    audit.record("agency.create", actor=actor, agency=code, object=code, details={"name": name})
    return agency


def rotate_key(code: str, *, actor: str) -> AgencyKey:
    """A new agency key, cross-signed by the old one; old signatures stay verifiable."""
    get(code)
    row = keystore.rotate_agency_key(code)
    audit.record("agency.rotate_key", actor=actor, agency=code, object=code, details={"new_key": row.public_key})
    return row


@dataclass(frozen=True)
class AgencyView:
    code: str
    name: str
    created_at: datetime
    key: str | None
    key_since: datetime | None
    retired_keys: int
    devices: int
    active_devices: int


def listing() -> list[Agency]:
    """Every agency, by code."""
    return list(db.session.scalars(select(Agency).order_by(Agency.code)))


def get(code: str) -> Agency:
    agency = db.session.get(Agency, code)
    if agency is None:
        raise NotFound(f"unknown agency {code}")
    return agency


def overview() -> list[AgencyView]:
    """Every agency with its current key, how many keys it retired and its devices."""
    out = []
    for a in listing():
        keys = list(db.session.scalars(select(AgencyKey).where(AgencyKey.agency == a.code)))
        current = next((k for k in keys if k.retired_at is None), None)
        count = lambda *where: db.session.scalar(select(func.count()).select_from(Device).where(*where))  # noqa: E731
        out.append(
            AgencyView(
                a.code,
                a.name,
                as_utc(a.created_at),
                current.public_key if current else None,
                as_utc(current.created_at) if current else None,
                len(keys) - (1 if current else 0),
                count(Device.agency == a.code) or 0,
                count(Device.agency == a.code, Device.status == "active") or 0,
            )
        )
    return out
