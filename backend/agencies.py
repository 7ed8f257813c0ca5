"""Agencies and their keys as administrators manage them: one path for the CLI and the admin pages.

backend.keystore does the key work (sealing, registry entries); this module
adds the checks a person's input needs and the audit entry, so that
``fieldsync-hub agency create`` and the admin page's form do exactly the same.
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
    if db.session.get(Agency, code) is None:
        raise NotFound(f"unknown agency {code}")
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


def overview() -> list[AgencyView]:
    """Every agency with its current key, how many keys it retired and its devices."""
    out = []
    for a in db.session.scalars(select(Agency).order_by(Agency.code)):
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
