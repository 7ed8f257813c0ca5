"""crypto.certificates: an agency key vouches for a device key."""

from __future__ import annotations

import copy
from datetime import timedelta, timezone

import pytest

from crypto import (
    Certificate,
    SigningKey,
    VerificationError,
    issue_certificate,
    read_certificate,
    utcnow,
    verify_certificate,
)

from .helpers import DAY, SECOND, T0, b64url, seed, string_edits

AGENCY = SigningKey(seed(0xA1))
OTHER_AGENCY = SigningKey(seed(0xB1))
DEVICE = SigningKey(seed(0x11))
NOT_BEFORE = T0
NOT_AFTER = T0 + 365 * DAY
DURING = T0 + 100 * DAY


def _issue(**overrides: object) -> dict:
    args: dict = {
        "device_id": "dev-7",
        "device_key": DEVICE.verify_key,
        "agency": "metro-pd",
        "officer": "Sgt. Ana Müller #4411",
        "not_before": NOT_BEFORE,
        "not_after": NOT_AFTER,
    }
    args.update(overrides)
    return issue_certificate(AGENCY, **args)


CERT = _issue()


@pytest.fixture
def cert() -> dict:
    return copy.deepcopy(CERT)


def test_round_trip(cert: dict) -> None:
    parsed = verify_certificate(cert, AGENCY.verify_key, at=DURING)
    assert parsed == Certificate(
        device_id="dev-7",
        device_key=DEVICE.verify_key,
        agency="metro-pd",
        officer="Sgt. Ana Müller #4411",
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
        issuer_key=AGENCY.verify_key,
    )
    assert parsed.valid_at(DURING)
    assert not parsed.valid_at(NOT_AFTER + SECOND)


def test_times_are_utc_rfc3339_whole_seconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    cert = _issue(
        not_before=NOT_BEFORE.astimezone(plus_two) + timedelta(microseconds=999_999),
        not_after=NOT_AFTER.astimezone(plus_two),
    )
    assert cert["not_before"] == "2026-01-01T00:00:00Z"
    assert cert["not_after"] == "2027-01-01T00:00:00Z"
    assert cert["issuer_key"] == AGENCY.verify_key.to_text()
    assert cert["device_key"] == DEVICE.verify_key.to_text()


def test_verify_with_another_agency_key_fails(cert: dict) -> None:
    with pytest.raises(VerificationError, match="another key"):
        verify_certificate(cert, OTHER_AGENCY.verify_key, at=DURING)


def test_issuer_renamed_to_another_key_fails(cert: dict) -> None:
    cert["issuer_key"] = OTHER_AGENCY.verify_key.to_text()
    with pytest.raises(VerificationError):
        verify_certificate(cert, OTHER_AGENCY.verify_key, at=DURING)


def test_certificate_signed_by_another_key_fails() -> None:
    forged = issue_certificate(
        OTHER_AGENCY,
        device_id="dev-7",
        device_key=DEVICE.verify_key,
        agency="metro-pd",
        officer="x",
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
    )
    forged["issuer_key"] = AGENCY.verify_key.to_text()
    with pytest.raises(VerificationError, match="signature"):
        verify_certificate(forged, AGENCY.verify_key, at=DURING)


def test_before_not_before_fails_with_a_readable_reason(cert: dict) -> None:
    with pytest.raises(VerificationError) as info:
        verify_certificate(cert, AGENCY.verify_key, at=NOT_BEFORE - SECOND)
    assert "not valid before" in info.value.reason
    assert "2026-01-01T00:00:00Z" in info.value.reason
    assert "dev-7" in str(info.value)


def test_after_not_after_fails_with_a_readable_reason(cert: dict) -> None:
    with pytest.raises(VerificationError) as info:
        verify_certificate(cert, AGENCY.verify_key, at=NOT_AFTER + SECOND)
    assert "expired" in info.value.reason
    assert "2027-01-01T00:00:00Z" in info.value.reason
    assert "dev-7" in str(info.value)


def test_window_includes_both_ends(cert: dict) -> None:
    verify_certificate(cert, AGENCY.verify_key, at=NOT_BEFORE)
    verify_certificate(cert, AGENCY.verify_key, at=NOT_AFTER)


def test_default_moment_is_now() -> None:
    now = utcnow()
    current = _issue(not_before=now - DAY, not_after=now + DAY)
    verify_certificate(current, AGENCY.verify_key)
    lapsed = _issue(not_before=now - 3 * DAY, not_after=now - DAY)
    with pytest.raises(VerificationError, match="expired"):
        verify_certificate(lapsed, AGENCY.verify_key)
    future = _issue(not_before=now + DAY, not_after=now + 3 * DAY)
    with pytest.raises(VerificationError, match="not valid before"):
        verify_certificate(future, AGENCY.verify_key)


EDITS = {
    "officer": "Lt. Someone Else",
    "agency": "county-so",
    "device_id": "dev-8",
    "device_key": SigningKey(seed(0x12)).verify_key.to_text(),
    "not_after": "2099-01-01T00:00:00Z",
    "not_before": "2025-01-01T00:00:00Z",
    "type": "fieldsync-device-certificate/2",
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_edited_field_fails(cert: dict, name: str) -> None:
    cert[name] = EDITS[name]
    with pytest.raises(VerificationError):
        verify_certificate(cert, AGENCY.verify_key, at=DURING)


def test_every_single_character_edit_fails(cert: dict) -> None:
    survivors = []
    for what, edited in string_edits(cert):
        try:
            verify_certificate(edited, AGENCY.verify_key, at=DURING)
        except VerificationError:
            continue
        survivors.append(what)
    assert survivors == []


def test_missing_signature_fails(cert: dict) -> None:
    del cert["signature"]
    with pytest.raises(VerificationError):
        verify_certificate(cert, AGENCY.verify_key, at=DURING)


def test_read_certificate_does_not_check_the_signature(cert: dict) -> None:
    cert["officer"] = "edited"
    assert read_certificate(cert).officer == "edited"


GARBAGE = {
    "none": None,
    "text": "certificate",
    "number": 42,
    "list": [CERT],
    "empty": {},
    "wrong-type": {**CERT, "type": "x509"},
    "no-type": {k: v for k, v in CERT.items() if k != "type"},
    "no-device-key": {k: v for k, v in CERT.items() if k != "device_key"},
    "no-not-after": {k: v for k, v in CERT.items() if k != "not_after"},
    "no-issuer": {k: v for k, v in CERT.items() if k != "issuer_key"},
    "device-key-not-base64url": {**CERT, "device_key": "not a key!"},
    "device-key-short": {**CERT, "device_key": b64url(bytes(31))},
    "device-key-number": {**CERT, "device_key": 7},
    "time-with-space": {**CERT, "not_before": "2026-01-01 00:00:00Z"},
    "time-with-fraction": {**CERT, "not_after": "2027-01-01T00:00:00.5Z"},
    "time-with-offset": {**CERT, "not_after": "2027-01-01T00:00:00+00:00"},
    "time-date-only": {**CERT, "not_after": "2027-01-01"},
    "time-number": {**CERT, "not_after": 1798761600},
    "device-id-empty": {**CERT, "device_id": ""},
    "device-id-number": {**CERT, "device_id": 7},
    "officer-missing": {k: v for k, v in CERT.items() if k != "officer"},
    "agency-null": {**CERT, "agency": None},
}


@pytest.mark.parametrize("garbage", sorted(GARBAGE))
def test_read_certificate_on_garbage_raises_verification_error(garbage: str) -> None:
    with pytest.raises(VerificationError):
        read_certificate(GARBAGE[garbage])
    with pytest.raises(VerificationError):
        verify_certificate(GARBAGE[garbage], AGENCY.verify_key, at=DURING)


@pytest.mark.parametrize("when", ["2027-02-30T00:00:00Z", "2026-00-01T00:00:00Z", "2026-01-01T24:00:00Z"])
def test_impossible_date_raises_verification_error(when: str) -> None:
    with pytest.raises(VerificationError):
        read_certificate({**CERT, "not_after": when})


def test_issue_refuses_an_empty_window() -> None:
    with pytest.raises(ValueError):
        _issue(not_before=NOT_AFTER, not_after=NOT_BEFORE)
    with pytest.raises(ValueError):
        _issue(not_after=NOT_BEFORE)


def test_issue_refuses_naive_times() -> None:
    with pytest.raises(ValueError):
        _issue(not_before=NOT_BEFORE.replace(tzinfo=None), not_after=NOT_AFTER.replace(tzinfo=None))
