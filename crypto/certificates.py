"""Device certificates: an agency key vouches for one laptop's device key.

Rules this module owns:

- A certificate binds ``device_key`` to ``device_id``, ``agency`` and
  ``officer`` for ``[not_before, not_after]`` and names its issuer by the
  agency key's text form (``issuer_key``); the agency key signs the canonical
  form under the ``certificate`` domain.
- :func:`verify_certificate` checks the signature against the agency key it is
  given, that the issuer named is that key, and that the moment asked about
  (now, or when a change was made) lies inside the validity window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .canonical import signing_bytes
from .clock import format_time, parse_time, utcnow
from .encoding import b64d, b64e
from .errors import CanonicalError, KeyFormatError, VerificationError
from .keys import SigningKey, VerifyKey
from .provider import SIGNATURE_BYTES

TYPE = "fieldsync-device-certificate/1"
_FIELDS = ("type", "device_id", "device_key", "agency", "officer", "not_before", "not_after", "issuer_key")


@dataclass(frozen=True, slots=True)
class Certificate:
    """A verified device certificate."""

    device_id: str
    device_key: VerifyKey
    agency: str
    officer: str
    not_before: datetime
    not_after: datetime
    issuer_key: VerifyKey

    def valid_at(self, moment: datetime) -> bool:
        return self.not_before <= moment <= self.not_after


def issue_certificate(
    agency_key: SigningKey,
    *,
    device_id: str,
    device_key: VerifyKey,
    agency: str,
    officer: str,
    not_before: datetime,
    not_after: datetime,
) -> dict[str, Any]:
    """Sign a device certificate with the agency key."""
    if not_after <= not_before:
        raise ValueError("a certificate must end after it starts")
    body = {
        "type": TYPE,
        "device_id": device_id,
        "device_key": device_key.to_text(),
        "agency": agency,
        "officer": officer,
        "not_before": format_time(not_before),
        "not_after": format_time(not_after),
        "issuer_key": agency_key.verify_key.to_text(),
    }
    return {**body, "signature": b64e(agency_key.sign(signing_bytes("certificate", body)))}


def read_certificate(cert: Any) -> Certificate:
    """Parse a certificate's fields without checking its signature."""
    subject = f"certificate of device {cert.get('device_id')!r}" if isinstance(cert, dict) else "certificate"
    try:
        if not isinstance(cert, dict) or cert.get("type") != TYPE:
            raise VerificationError("not a fieldsync device certificate")
        for name in ("device_id", "agency", "officer"):
            if not isinstance(cert.get(name), str) or not cert[name]:
                raise VerificationError(f"certificate has no {name}")
        return Certificate(
            device_id=cert["device_id"],
            device_key=VerifyKey.from_text(cert["device_key"]),
            agency=cert["agency"],
            officer=cert["officer"],
            not_before=parse_time(cert["not_before"], what="not_before"),
            not_after=parse_time(cert["not_after"], what="not_after"),
            issuer_key=VerifyKey.from_text(cert["issuer_key"]),
        )
    except (KeyFormatError, KeyError, TypeError) as exc:
        raise VerificationError(f"malformed certificate: {exc}", subject=subject) from None
    except VerificationError as exc:
        raise VerificationError(exc.reason, subject=subject) from None


def verify_certificate(cert: Any, agency_key: VerifyKey, *, at: datetime | None = None) -> Certificate:
    """Return the certificate if ``agency_key`` signed it and it is valid at ``at`` (default now)."""
    parsed = read_certificate(cert)
    subject = f"certificate of device {parsed.device_id!r}"
    if parsed.issuer_key != agency_key:
        raise VerificationError("certificate was issued by another key", subject=subject)
    try:
        body = {name: cert[name] for name in _FIELDS}
        message = signing_bytes("certificate", body)
        signature = b64d(cert.get("signature", ""), length=SIGNATURE_BYTES, what="signature")
        agency_key.verify(message, signature)
    except (KeyFormatError, CanonicalError) as exc:
        raise VerificationError(str(exc), subject=subject) from None
    except VerificationError as exc:
        raise VerificationError(exc.reason, subject=subject) from None
    moment = at or utcnow()
    if moment < parsed.not_before:
        raise VerificationError(f"certificate is not valid before {cert['not_before']}", subject=subject)
    if moment > parsed.not_after:
        raise VerificationError(f"certificate expired at {cert['not_after']}", subject=subject)
    return parsed
