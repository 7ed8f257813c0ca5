"""Attacks on enrollment: used, expired, foreign and garbage tokens (see test_attacks.py)."""

# ruff: noqa: F811 - the hub fixtures of tests/backend/conftest.py are imported, then named as arguments
from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from backend.db import db
from backend.models import EnrollmentToken
from crypto import SigningKey, b64e
from crypto.clock import now
from tests.backend.conftest import app, database_url, hub, live  # noqa: F401 - fixtures
from tests.backend.helpers import Hub, Officer, error_body, raw

from .adversary import (
    assert_chain_intact,
    new_audit,
    unchanged_but_audit,
    witness,
)

ENROLL = "/api/v1/enroll"


# -- 8. enrollment -------------------------------------------------------------------------------


def _key() -> str:
    return SigningKey.generate().verify_key.to_text()


def test_enrollment_with_a_used_expired_foreign_or_garbage_token_is_refused(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    hub.agency("CSO")
    used = hub.token("SPD", "Sgt. Lee")
    assert raw(live, "POST", ENROLL, {"token": used, "public_key": _key()}).status_code == 201
    expired = hub.token("SPD", "Dep. Old", ttl=60)
    with hub.app.app_context():
        db.session.execute(
            update(EnrollmentToken)
            .where(EnrollmentToken.officer == "Dep. Old")
            .values(expires_at=now() - timedelta(seconds=1))
        )
        db.session.commit()
    spd = hub.token("SPD", "Ofc. Pat")  # an SPD token a CSO officer got hold of
    before = witness(hub.app)
    cases: list[tuple[dict[str, Any], int, str, str | None, str | None]] = [
        ({"token": used}, 409, "this enrollment token was already used", "SPD", "Sgt. Lee"),
        ({"token": expired}, 403, "this enrollment token has expired; ask for a new one", "SPD", "Dep. Old"),
        ({"token": spd, "agency": "CSO"}, 422, "the request does not match its schema", None, None),
        ({"token": "CSO"}, 401, "unknown enrollment token", None, None),
        ({"token": b64e(os.urandom(32))}, 401, "unknown enrollment token", None, None),
        ({"token": "' OR 1=1 --"}, 401, "unknown enrollment token", None, None),
        ({"token": "\uff54\uff4f\uff4b\uff45\uff4e\u202e\u2713"}, 401, "unknown enrollment token", None, None),
        # text no database can store (tests/backend/test_api_fuzz.py): refused by the schema, still audited
        (
            {"token": "\uff54\uff4f\uff4b\uff45\uff4e\u202e\u0000\u2713"},
            422,
            "the request does not match its schema",
            None,
            None,
        ),
        ({"token": "x" * 201}, 422, "the request does not match its schema", None, None),
        ({"token": ["a", "list"]}, 422, "the request does not match its schema", None, None),
    ]
    for body, status, message, _, _ in cases:
        answer = error_body(raw(live, "POST", ENROLL, {**body, "public_key": _key()}), status)
        assert answer["message"] == message, (body, answer)
    unchanged_but_audit(before, witness(hub.app))
    entries = new_audit(hub.app, before)
    assert [(e.action, e.actor, e.outcome) for e in entries] == [("device.enroll", "anonymous", "refused")] * len(cases)
    assert [(e.details["reason"], e.agency, e.object) for e in entries] == [c[2:] for c in cases]
    assert all(e.details["from"] == "127.0.0.1" for e in entries)
    assert_chain_intact(hub.app)
    # the SPD token was not spent by the refused attempt, and it makes an SPD laptop, whoever asks
    pat = Officer(live, spd)
    assert pat.agency == "SPD" and pat.certificate["agency"] == "SPD"
