"""Verifying a change's whole chain: change -> device certificate -> agency key -> registry.

Rules this module owns:

- A change verifies only if its device certificate verifies against the
  agency key that issued it (per the registry, rotations included), the
  certificate names the change's device and was valid when the change was
  made (its hlc time), the device was not revoked before this seq, and the
  device key signed the change.
- Changes written by the hub itself (conflict resolutions, ``device == "hub"``)
  verify against the hub key in the registry, and nothing else does. A hub
  change must carry its signed ``resolution`` (what it resolves, which staff
  member chose it); a device's change must not, so no laptop can pass its own
  edit off as a staff decision.
- Certificates are verified once and cached by their signature: a pull of a
  thousand changes from one laptop costs one certificate check. A Verifier
  belongs to one registry: build a new one when the registry grows (a new
  revocation must not be missed by a stale cache).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from crypto import Certificate, KeyRegistry, VerificationError, VerifiedChange, verify_change

from .changes import Change
from .errors import ProvenanceError
from .hlc import hlc_wall_ms

HUB_DEVICE = "hub"


def hlc_time(hlc: str) -> datetime:
    return datetime.fromtimestamp(hlc_wall_ms(hlc) / 1000, UTC)


class _Trusted(NamedTuple):
    """A verified certificate, with its window and revocation cut as integers."""

    wire: dict[str, Any]  # exactly what was verified: a cache hit must match it whole
    certificate: Certificate
    not_before_ms: int
    not_after_ms: int
    after_seq: int | None


class Verifier:
    def __init__(self, registry: KeyRegistry) -> None:
        self.registry = registry
        self._certs: dict[str, _Trusted] = {}

    def _trusted(self, cert: Any, at_ms: int) -> _Trusted:
        sig = cert.get("signature") if isinstance(cert, dict) else None
        trusted = self._certs.get(sig) if isinstance(sig, str) else None
        if trusted is not None and trusted.wire != cert:
            trusted = None  # same signature, other content: verify it afresh (and fail)
        if trusted is None:
            at = datetime.fromtimestamp(at_ms / 1000, UTC)
            certificate = self.registry.verify_certificate(cert, at=at)
            revoked = self.registry.revocation(certificate.device_id, certificate.agency)
            trusted = _Trusted(
                dict(cert),
                certificate,
                int(certificate.not_before.timestamp() * 1000),
                int(certificate.not_after.timestamp() * 1000),
                revoked.after_seq if revoked else None,
            )
            self._certs[sig] = trusted  # type: ignore[index]
        elif not trusted.not_before_ms <= at_ms <= trusted.not_after_ms:
            raise VerificationError(
                "certificate was not valid when the change was made",
                subject=f"certificate of device {trusted.certificate.device_id!r}",
            )
        return trusted

    def certificate(self, cert: Any, *, at: datetime) -> Certificate:
        """Verify a device certificate (cached) for a moment."""
        return self._trusted(cert, int(at.timestamp() * 1000)).certificate

    def _verify_hub_change(self, wire: dict[str, Any], at_ms: int) -> VerifiedChange:
        keys = self.registry.hub_keys_at(datetime.fromtimestamp(at_ms / 1000, UTC))
        for key in keys[:-1]:
            try:
                return verify_change(wire, key)
            except VerificationError:
                continue
        return verify_change(wire, keys[-1])

    def verify(self, wire: Any, cert: Any | None) -> Change:
        """Return the verified change, or raise ProvenanceError with the reason."""
        return Change.from_verified(self.verify_signed(wire, cert))

    def verify_signed(self, wire: Any, cert: Any | None) -> VerifiedChange:
        """:meth:`verify`'s whole chain, without building the :class:`Change` (a caller that
        needs only the hash: field_client.verifier). Raises ProvenanceError likewise."""
        try:
            if type(wire) is not dict or type(wire.get("hlc")) is not str:
                raise VerificationError("malformed change")
            at_ms = hlc_wall_ms(wire["hlc"])
            if wire.get("device") == HUB_DEVICE:
                if "resolution" not in wire:
                    raise VerificationError("a hub change must name the resolution it carries")
                return self._verify_hub_change(wire, at_ms)
            else:
                if "resolution" in wire:
                    raise VerificationError("only the hub signs resolutions")
                if cert is None:
                    raise VerificationError("no device certificate for this change")
                trusted = self._trusted(cert, at_ms)
                if trusted.certificate.device_id != wire.get("device"):
                    raise VerificationError("certificate is for another device")
                seq = wire.get("seq")
                if type(seq) is not int:
                    raise VerificationError("seq must be a whole number")
                if trusted.after_seq is not None and seq > trusted.after_seq:
                    revoked = self.registry.revocation(trusted.certificate.device_id, trusted.certificate.agency)
                    raise VerificationError(
                        f"device was revoked after seq {trusted.after_seq} "
                        f"({(revoked and revoked.reason) or 'no reason given'})"
                    )
                key = trusted.certificate.device_key
            return verify_change(wire, key)
        except (VerificationError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, VerificationError) else str(exc)
            subject = getattr(exc, "subject", None)
            if subject and not subject.startswith("change"):
                reason = f"{subject}: {reason}"
            change_id = wire.get("id") if isinstance(wire, dict) else None
            raise ProvenanceError(reason, change_id=change_id) from None
