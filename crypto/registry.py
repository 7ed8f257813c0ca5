"""The hub's key registry: agency keys, rotations, device revocations, hub key.

Rules this module owns:

- The registry is an append-only list of signed entries. Entry ``i`` carries
  ``index = i`` and ``prev`` = hash of entry ``i-1`` (null for the first), so a
  client that pinned (size, head hash) at enrollment can tell that a later
  registry extends the one it pinned rather than rewriting it.
- ``agency``: a new agency and its first key, signed by that key (proof of
  possession). ``rotation``: signed by the agency's current key (the old one)
  *and* by the new one; the old key stays valid for what it signed before
  the rotation time. ``revocation``: signed by the agency's current key; it
  cuts the device's feed after ``after_seq``, and counts only for devices
  certified by that same agency (one agency cannot revoke another's laptops). ``hub``: the hub's own key,
  self-signed; it signs checkpoints and conflict resolutions, nothing else.
- :meth:`KeyRegistry.verify` checks every entry in order and returns the
  verified registry or raises :class:`VerificationError` naming the entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .canonical import signing_bytes
from .certificates import Certificate, read_certificate, verify_certificate
from .clock import format_time, parse_time
from .encoding import b64d, b64e
from .errors import CanonicalError, KeyFormatError, VerificationError
from .keys import SigningKey, VerifyKey
from .provider import SIGNATURE_BYTES, get_provider

_SIGNATURES = ("signature", "new_signature")


@dataclass(frozen=True, slots=True)
class KeyPeriod:
    """A key and the time it was current: [start, end], end None while current.

    The end is inclusive: signed times have one-second resolution, so the second
    of a rotation belongs to both keys (a laptop enrolled in that very second
    holds a certificate from the old key dated then, and it must verify).
    """

    key: VerifyKey
    start: datetime
    end: datetime | None = None

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment <= self.end)


@dataclass(frozen=True, slots=True)
class Revocation:
    agency: str
    device_id: str
    after_seq: int
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class RegistryHead:
    """What a client pins: how many entries, and the hash of the last one."""

    size: int
    head: str | None


@dataclass(slots=True)
class KeyRegistry:
    """A verified registry. Build it with :meth:`verify`, never by hand."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    agencies: dict[str, list[KeyPeriod]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    revocations: dict[tuple[str, str], Revocation] = field(default_factory=dict)
    hub_keys: list[KeyPeriod] = field(default_factory=list)

    # -- reading --------------------------------------------------------
    @property
    def head(self) -> RegistryHead:
        return RegistryHead(len(self.entries), entry_hash(self.entries[-1]) if self.entries else None)

    def current_key(self, agency: str) -> VerifyKey:
        periods = self.agencies.get(agency)
        if not periods:
            raise VerificationError(f"agency {agency!r} is not in the key registry")
        return periods[-1].key

    @property
    def hub_key(self) -> VerifyKey:
        if not self.hub_keys:
            raise VerificationError("the key registry names no hub key")
        return self.hub_keys[-1].key

    def hub_keys_at(self, moment: datetime) -> list[VerifyKey]:
        """The hub keys current at ``moment``, newest first (two in a rotation's second)."""
        keys = [period.key for period in reversed(self.hub_keys) if period.covers(moment)]
        if not keys:
            raise VerificationError("no hub key was current at that time")
        return keys

    def hub_key_at(self, moment: datetime) -> VerifyKey:
        return self.hub_keys_at(moment)[0]

    def verify_certificate(self, cert: Any, *, at: datetime | None = None) -> Certificate:
        """Verify a device certificate against the agency key that was current when it was issued."""
        parsed = read_certificate(cert)
        for period in self.agencies.get(parsed.agency, ()):
            if period.key == parsed.issuer_key:
                if not period.covers(parsed.not_before):
                    raise VerificationError(
                        "certificate was issued outside its agency key's period",
                        subject=f"certificate of device {parsed.device_id!r}",
                    )
                return verify_certificate(cert, period.key, at=at)
        raise VerificationError(
            f"certificate is not signed by any key of agency {parsed.agency!r}",
            subject=f"certificate of device {parsed.device_id!r}",
        )

    def revocation(self, device_id: str, agency: str | None = None) -> Revocation | None:
        """The revocation of a device by its own agency (``agency``: the one in its
        certificate). Without ``agency``, the first revocation naming the device."""
        if agency is not None:
            return self.revocations.get((agency, device_id))
        return next((r for (_, d), r in self.revocations.items() if d == device_id), None)

    # -- checking -------------------------------------------------------
    @classmethod
    def verify(cls, entries: list[dict[str, Any]], *, pinned: RegistryHead | None = None) -> KeyRegistry:
        """Check every entry and return the registry they describe."""
        reg = cls()
        if not isinstance(entries, list):
            raise VerificationError("registry must be a list of entries")
        prev: str | None = None
        for index, entry in enumerate(entries):
            subject = f"registry entry {index}"
            try:
                if not isinstance(entry, dict) or entry.get("index") != index:
                    raise VerificationError("entry is out of order or malformed")
                if entry.get("prev") != prev:
                    raise VerificationError("entry does not follow the one before it")
                reg._apply(entry)
                prev = entry_hash(entry)
            except (KeyFormatError, CanonicalError, KeyError, TypeError, ValueError) as exc:
                raise VerificationError(f"malformed entry: {exc}", subject=subject) from None
            except VerificationError as exc:
                raise VerificationError(exc.reason, subject=subject) from None
            reg.entries.append(entry)
        if pinned is not None and (
            pinned.size > len(entries) or (pinned.size and entry_hash(entries[pinned.size - 1]) != pinned.head)
        ):
            raise VerificationError(
                "key registry does not extend the one pinned at enrollment (rewritten or rolled back)"
            )
        return reg

    def _apply(self, entry: dict[str, Any]) -> None:
        kind = entry["type"]
        at = parse_time(entry["at"], what="at")
        if kind == "agency":
            code = entry["agency"]
            if code in self.agencies:
                raise VerificationError(f"agency {code!r} is registered twice")
            key = VerifyKey.from_text(entry["key"])
            _check(entry, "signature", key)
            self.agencies[code] = [KeyPeriod(key, at)]
            self.names[code] = str(entry["name"])
        elif kind == "rotation":
            code = entry["agency"]
            old = self.current_key(code)
            if VerifyKey.from_text(entry["old_key"]) != old:
                raise VerificationError("rotation does not start from the agency's current key")
            new = VerifyKey.from_text(entry["new_key"])
            if any(p.key == new for p in self.agencies[code]):
                raise VerificationError("rotation reuses an earlier key")
            if at < self.agencies[code][-1].start:
                raise VerificationError("rotation is dated before the key it replaces")
            _check(entry, "signature", old)
            _check(entry, "new_signature", new)
            last = self.agencies[code][-1]
            self.agencies[code][-1] = KeyPeriod(last.key, last.start, at)
            self.agencies[code].append(KeyPeriod(new, at))
        elif kind == "revocation":
            code = entry["agency"]
            _check(entry, "signature", self.current_key(code))
            after_seq = entry["after_seq"]
            if not isinstance(after_seq, int) or after_seq < 0:
                raise VerificationError("revocation needs a whole after_seq")
            device = str(entry["device_id"])
            if (code, device) in self.revocations:
                raise VerificationError(f"device {device!r} is revoked twice")
            self.revocations[(code, device)] = Revocation(code, device, after_seq, at, str(entry.get("reason", "")))
        elif kind == "hub":
            key = VerifyKey.from_text(entry["key"])
            if self.hub_keys:
                _check(entry, "previous_signature", self.hub_keys[-1].key)
                last = self.hub_keys[-1]
                self.hub_keys[-1] = KeyPeriod(last.key, last.start, at)
            _check(entry, "signature", key)
            self.hub_keys.append(KeyPeriod(key, at))
        else:
            raise VerificationError(f"unknown registry entry type {kind!r}")


# -- writing entries (the hub's side) --------------------------------------
def entry_hash(entry: dict[str, Any]) -> str:
    return b64e(get_provider().hash(signing_bytes("registry", _body(entry))))


def _body(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in (*_SIGNATURES, "previous_signature")}


def _check(entry: dict[str, Any], name: str, key: VerifyKey) -> None:
    signature = b64d(entry.get(name, ""), length=SIGNATURE_BYTES, what=name)
    try:
        key.verify(signing_bytes("registry", _body(entry)), signature)
    except VerificationError:
        raise VerificationError(f"{name} does not verify") from None


def _sign(entry: dict[str, Any], **signers: SigningKey) -> dict[str, Any]:
    message = signing_bytes("registry", _body(entry))
    return {**entry, **{name: b64e(key.sign(message)) for name, key in signers.items()}}


def _start(entries: list[dict[str, Any]], kind: str, at: datetime) -> dict[str, Any]:
    return {
        "type": kind,
        "index": len(entries),
        "prev": entry_hash(entries[-1]) if entries else None,
        "at": format_time(at),
    }


def agency_entry(
    entries: list[dict[str, Any]], key: SigningKey, *, agency: str, name: str, at: datetime
) -> dict[str, Any]:
    body = {**_start(entries, "agency", at), "agency": agency, "name": name, "key": key.verify_key.to_text()}
    return _sign(body, signature=key)


def rotation_entry(
    entries: list[dict[str, Any]], old: SigningKey, new: SigningKey, *, agency: str, at: datetime
) -> dict[str, Any]:
    body = {
        **_start(entries, "rotation", at),
        "agency": agency,
        "old_key": old.verify_key.to_text(),
        "new_key": new.verify_key.to_text(),
    }
    return _sign(body, signature=old, new_signature=new)


def revocation_entry(
    entries: list[dict[str, Any]],
    agency_key: SigningKey,
    *,
    agency: str,
    device_id: str,
    after_seq: int,
    at: datetime,
    reason: str = "",
) -> dict[str, Any]:
    body = {
        **_start(entries, "revocation", at),
        "agency": agency,
        "device_id": device_id,
        "after_seq": after_seq,
        "reason": reason,
    }
    return _sign(body, signature=agency_key)


def hub_entry(
    entries: list[dict[str, Any]], key: SigningKey, *, at: datetime, previous: SigningKey | None = None
) -> dict[str, Any]:
    body = {**_start(entries, "hub", at), "key": key.verify_key.to_text()}
    signers = {"signature": key}
    if previous is not None:
        signers["previous_signature"] = previous
    return _sign(body, **signers)
