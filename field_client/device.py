"""This laptop's identity: device key, certificate, pinned registry, clock and feed.

Rules this module owns:

- The device key is generated on the laptop at enrollment and stored only
  inside the encrypted replica; the hub sees its public half.
- The key registry is pinned at enrollment (size and head hash); a later
  registry is accepted only if it extends the pinned one (crypto.registry).
- A remote clock more than ``FIELDSYNC_MAX_CLOCK_DRIFT`` seconds ahead of this
  laptop's (default 24 h, the hub's setting of the same name) is refused.
- The clock's last value and the feed's (seq, prev) are stored with every
  change in the same transaction, so a crash can neither reuse a seq nor let
  the clock step back.
"""

from __future__ import annotations

import os
from typing import Any

from crypto import KeyRegistry, RegistryHead, SigningKey, entry_hash
from sync import Clock, Verifier
from sync.hlc import DEFAULT_MAX_DRIFT_MS

from .errors import ClientError, NotEnrolled
from .replica import Replica


def enroll_into(replica: Replica, *, hub_url: str, key: SigningKey, answer: dict[str, Any]) -> None:
    """Store what enrollment returned, in one transaction."""
    registry = answer["registry"]
    KeyRegistry.verify(registry).verify_certificate(answer["certificate"])
    with replica.transaction():
        replica.set_secret("device_key", bytes(key))
        for name, value in {
            "hub_url": hub_url.rstrip("/"),
            "device_id": answer["device_id"],
            "agency": answer["agency"],
            "officer": answer["officer"],
            "certificate": answer["certificate"],
            "registry": registry,
            "pinned": {"size": len(registry), "head": entry_hash(registry[-1]) if registry else None},
            "clock": str(Clock(answer["device_id"], last=None).observe(answer["hub_time"])),
            "seq": 0,
            "prev": None,
            "cursor": 0,
        }.items():
            replica.set(name, value)


def configured_max_drift_ms() -> int:
    """``FIELDSYNC_MAX_CLOCK_DRIFT`` (whole seconds) in milliseconds, or the default."""
    raw = os.environ.get("FIELDSYNC_MAX_CLOCK_DRIFT")
    if raw is None or not raw.strip():
        return DEFAULT_MAX_DRIFT_MS
    try:
        seconds = int(raw)
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise ClientError(f"FIELDSYNC_MAX_CLOCK_DRIFT must be a whole number of seconds above 0, not {raw!r}")
    return seconds * 1000


class Device:
    """The enrolled laptop, read from its replica."""

    def __init__(self, replica: Replica, *, max_drift_ms: int | None = None) -> None:
        seed = replica.secret("device_key")
        if seed is None or replica.get("device_id") is None:
            raise NotEnrolled("this replica is not enrolled yet: run `fieldsync enroll`")
        self.replica = replica
        self.key = SigningKey(seed)
        self.device_id: str = replica.get("device_id")
        self.agency: str = replica.get("agency")
        self.officer: str = replica.get("officer")
        self.hub_url: str = replica.get("hub_url")
        self.certificate: dict[str, Any] = replica.get("certificate")
        self.max_drift_ms = configured_max_drift_ms() if max_drift_ms is None else max_drift_ms
        self._registry: KeyRegistry | None = None

    @property
    def pinned(self) -> RegistryHead:
        p = self.replica.get("pinned")
        return RegistryHead(p["size"], p["head"])

    def registry(self) -> KeyRegistry:
        if self._registry is None:
            self._registry = KeyRegistry.verify(self.replica.get("registry"), pinned=self.pinned)
        return self._registry

    def replace_registry(self, entries: list[dict[str, Any]]) -> KeyRegistry:
        """Adopt a newer registry if, and only if, it extends the pinned one."""
        registry = KeyRegistry.verify(entries, pinned=self.pinned)
        self.replica.set("registry", entries)
        self._registry = registry
        return registry

    def verifier(self) -> Verifier:
        return Verifier(self.registry())

    def clock(self) -> Clock:
        return Clock(self.device_id, last=self.replica.get("clock"), max_drift_ms=self.max_drift_ms)
