"""Verifying a change's whole chain: change -> device certificate -> agency key -> registry.

Rules this module owns:

- A change verifies only if its device certificate verifies against the
  agency key that issued it (per the registry, rotations included), the
  certificate names the change's device and was valid when the change was
  made (its hlc time), the device was not revoked before this seq, and the
  device key signed the change.
- Changes written by the hub itself (conflict resolutions, ``device == "hub"``)
  verify against the hub key in the registry, and nothing else does.
- Certificates are verified once and cached by their signature: a pull of a
  thousand changes from one laptop costs one certificate check.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crypto import Certificate, KeyRegistry, VerificationError, verify_change

from .changes import Change
from .errors import ProvenanceError
from .hlc import hlc_wall_ms

HUB_DEVICE = "hub"


def hlc_time(hlc: str) -> datetime:
    return datetime.fromtimestamp(hlc_wall_ms(hlc) / 1000, UTC)


class Verifier:
    def __init__(self, registry: KeyRegistry) -> None:
        self.registry = registry
        self._certs: dict[str, Certificate] = {}

    def certificate(self, cert: Any, *, at: datetime) -> Certificate:
        sig = cert.get("signature") if isinstance(cert, dict) else None
        cached = self._certs.get(sig) if isinstance(sig, str) else None
        if cached is None:
            cached = self.registry.verify_certificate(cert, at=at)
            self._certs[sig] = cached  # type: ignore[index]
        elif not cached.valid_at(at):
            raise VerificationError(
                "certificate was not valid when the change was made",
                subject=f"certificate of device {cached.device_id!r}",
            )
        return cached

    def verify(self, wire: Any, cert: Any | None) -> Change:
        """Return the verified change, or raise ProvenanceError with the reason."""
        change_id = wire.get("id") if isinstance(wire, dict) else None
        try:
            if not isinstance(wire, dict) or not isinstance(wire.get("hlc"), str):
                raise VerificationError("malformed change")
            at = hlc_time(wire["hlc"])
            if wire.get("device") == HUB_DEVICE:
                key = self.registry.hub_key_at(at)
            else:
                if cert is None:
                    raise VerificationError("no device certificate for this change")
                certificate = self.certificate(cert, at=at)
                if certificate.device_id != wire.get("device"):
                    raise VerificationError("certificate is for another device")
                revoked = self.registry.revocation(certificate.device_id)
                if revoked is not None and isinstance(wire.get("seq"), int) and wire["seq"] > revoked.after_seq:
                    raise VerificationError(
                        f"device was revoked after seq {revoked.after_seq} ({revoked.reason or 'no reason given'})"
                    )
                key = certificate.device_key
            return Change.from_verified(verify_change(wire, key))
        except (VerificationError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, VerificationError) else str(exc)
            subject = getattr(exc, "subject", None)
            if subject and not subject.startswith("change"):
                reason = f"{subject}: {reason}"
            raise ProvenanceError(reason, change_id=change_id) from None
