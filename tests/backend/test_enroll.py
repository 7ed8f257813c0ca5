"""POST /api/v1/enroll over real HTTP (backend/enroll.py): one-time tokens, certificates, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import update

from backend.db import db
from backend.models import Device, EnrollmentToken
from crypto import KeyRegistry, SigningKey
from sync import Hlc

from .helpers import Hub, audit_entries, error_body, raw, rows

ENROLL = "/api/v1/enroll"


def _key() -> str:
    return SigningKey.generate().verify_key.to_text()


def _refusals(app: Flask) -> list[object]:
    return [e for e in audit_entries(app, "device.enroll") if e.outcome == "refused"]


def test_good_token_gives_a_certificate_that_verifies_against_the_registry(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    key = SigningKey.generate()
    before = datetime.now(UTC) - timedelta(seconds=1)
    response = raw(
        live, "POST", ENROLL, {"token": hub.token("SPD", "Sgt. Lee"), "public_key": key.verify_key.to_text()}
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["agency"] == "SPD" and answer["officer"] == "Sgt. Lee"
    registry = KeyRegistry.verify(answer["registry"])
    cert = registry.verify_certificate(answer["certificate"])
    assert cert.device_id == answer["device_id"]
    assert cert.device_key == key.verify_key
    assert (cert.agency, cert.officer) == ("SPD", "Sgt. Lee")
    # hub_time is the hub's hybrid clock, now, and inside the certificate's validity
    hub_ms = Hlc.parse(answer["hub_time"]).wall_ms
    assert before.timestamp() * 1000 <= hub_ms <= datetime.now(UTC).timestamp() * 1000 + 1000
    assert cert.valid_at(datetime.fromtimestamp(hub_ms / 1000, UTC))
    # the hub keeps the device, active, with that key
    (device,) = rows(hub.app, Device)
    assert (device.id, device.status, device.public_key) == (answer["device_id"], "active", key.verify_key.to_text())
    assert [e.object for e in audit_entries(hub.app, "device.enroll")] == [answer["device_id"]]


def test_a_token_is_spent_by_its_first_enrollment_and_a_key_enrolls_once(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    token, key = hub.token("SPD", "Sgt. Lee"), _key()
    assert raw(live, "POST", ENROLL, {"token": token, "public_key": key}).status_code == 201
    body = error_body(raw(live, "POST", ENROLL, {"token": token, "public_key": _key()}), 409)
    assert body["error"] == "conflict" and "already used" in body["message"]
    (refusal,) = _refusals(hub.app)
    assert refusal.agency == "SPD" and refusal.actor == "anonymous" and "already used" in refusal.details["reason"]
    # a fresh token with a key already enrolled: 409, and that token is not spent
    second = hub.token("SPD", "Dep. Kim")
    body = error_body(raw(live, "POST", ENROLL, {"token": second, "public_key": key}), 409)
    assert "already enrolled" in body["message"]
    assert len(rows(hub.app, Device)) == 1
    assert raw(live, "POST", ENROLL, {"token": second, "public_key": _key()}).status_code == 201
    assert len(rows(hub.app, Device)) == 2


def test_an_expired_or_unknown_token_is_refused(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    token = hub.token("SPD", "Sgt. Lee", ttl=60)
    (row,) = rows(hub.app, EnrollmentToken)
    assert row.expires_at - row.created_at == timedelta(seconds=60)
    assert row.token_hash != token  # only a digest is kept
    # unknown: 401
    body = error_body(raw(live, "POST", ENROLL, {"token": "not-a-token-we-issued", "public_key": _key()}), 401)
    assert body["error"] == "unauthorized" and "unknown" in body["message"]
    (refusal,) = _refusals(hub.app)
    assert refusal.actor == "anonymous" and refusal.agency is None and "unknown" in refusal.details["reason"]
    # expired: 403
    with hub.app.app_context():
        db.session.execute(update(EnrollmentToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=5)))
        db.session.commit()
    body = error_body(raw(live, "POST", ENROLL, {"token": token, "public_key": _key()}), 403)
    assert body["error"] == "forbidden" and "expired" in body["message"]
    refusal = _refusals(hub.app)[-1]
    assert refusal.agency == "SPD" and "expired" in refusal.details["reason"]
    assert len(_refusals(hub.app)) == 2
    assert rows(hub.app, Device) == [] and rows(hub.app, EnrollmentToken)[0].used_at is None


def test_a_malformed_request_is_refused_with_422_and_spends_no_token(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    token = hub.token("SPD", "Sgt. Lee")
    cases = [
        ({"token": token, "public_key": "!" * 43}, {"public_key"}),  # right length, not base64url
        ({"token": token, "public_key": "abc"}, {"public_key"}),
        ({"token": token, "public_key": 12345}, {"public_key"}),
        ({"token": token}, {"public_key"}),
        ({"public_key": _key()}, {"token"}),
        ({"token": token, "public_key": _key(), "agency": "CSO"}, {"agency"}),
    ]
    for request, fields in cases:
        body = error_body(raw(live, "POST", ENROLL, request), 422)
        assert body["error"] == "unprocessable", request
        assert set(body["details"]) == fields, (request, body)
        assert all(isinstance(m, list) and m for m in body["details"].values()), body
    assert rows(hub.app, Device) == []
    assert raw(live, "POST", ENROLL, {"token": token, "public_key": _key()}).status_code == 201


def test_a_malformed_enrollment_is_audited(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    token = hub.token("SPD", "Sgt. Lee")
    error_body(raw(live, "POST", ENROLL, {"token": token, "public_key": "!" * 43}), 422)
    assert len(_refusals(hub.app)) == 1
