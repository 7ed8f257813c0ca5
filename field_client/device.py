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
  the clock step back; once that transaction commits, the high-water mark
  outside the database follows (field_client.highwater).
- The laptop signs a new change only while its feed is open: not while its
  replica is older than its high-water mark (restored from an old copy, not
  yet resynced: `fieldsync sync` first), and never again once seqs it signed
  on a newer copy are lost (``feed_burned``: re-enroll).
"""

from __future__ import annotations

from typing import Any

from crypto import KeyRegistry, RegistryHead, SigningKey, entry_hash
from sync import Clock, Verifier

from . import highwater, settings
from .errors import FeedClosed, HighWaterInvalid, NotEnrolled
from .replica import Replica
from .syncstate import SyncState


def enroll_into(replica: Replica, *, hub_url: str, key: SigningKey, answer: dict[str, Any]) -> None:
    """Store what enrollment returned, in one transaction."""
    registry = answer["registry"]
    KeyRegistry.verify(registry).verify_certificate(answer["certificate"])
    kept = SyncState(replica)
    with replica.transaction():
        replica.set_secret("device_key", bytes(key))
        kept.hub_url = hub_url.rstrip("/")
        kept.device_id = answer["device_id"]
        kept.agency = answer["agency"]
        kept.officer = answer["officer"]
        kept.certificate = answer["certificate"]
        kept.registry = registry
        kept.pinned = {"size": len(registry), "head": entry_hash(registry[-1]) if registry else None}
        kept.clock = str(Clock(answer["device_id"], last=None).observe(answer["hub_time"]))
        kept.seq = 0
        kept.prev = None
        kept.cursor = 0


class Device:
    """The enrolled laptop, read from its replica."""

    def __init__(self, replica: Replica, *, max_drift_ms: int | None = None) -> None:
        seed = replica.secret("device_key")
        kept = SyncState(replica)
        device_id = kept.device_id
        if seed is None or device_id is None:
            raise NotEnrolled("this replica is not enrolled yet: run `fieldsync enroll`")
        self.replica = replica
        self.sync_state = kept
        self.key = SigningKey(seed)
        self.device_id: str = device_id
        self.agency: str = kept.agency  # type: ignore[assignment]  # written at enrollment with device_id
        self.officer: str = kept.officer  # type: ignore[assignment]
        self.hub_url: str = kept.hub_url  # type: ignore[assignment]
        self.certificate: dict[str, Any] = kept.certificate  # type: ignore[assignment]
        self.max_drift_ms = settings.max_clock_drift_ms() if max_drift_ms is None else max_drift_ms
        self._registry: KeyRegistry | None = None

    @property
    def pinned(self) -> RegistryHead:
        p = self.sync_state.pinned
        return RegistryHead(p["size"], p["head"])  # type: ignore[index]  # written at enrollment

    def registry(self) -> KeyRegistry:
        if self._registry is None:
            self._registry = KeyRegistry.verify(self.sync_state.registry, pinned=self.pinned)  # type: ignore[arg-type]
        return self._registry

    def replace_registry(self, entries: list[dict[str, Any]]) -> KeyRegistry:
        """Adopt a newer registry if, and only if, it extends the pinned one."""
        registry = KeyRegistry.verify(entries, pinned=self.pinned)
        self.sync_state.registry = entries
        self._registry = registry
        return registry

    def verifier(self) -> Verifier:
        return Verifier(self.registry())

    # -- the device's own feed --------------------------------------------------------
    def mark(self) -> highwater.Mark | None:
        """The high-water mark beside the replica (raises HighWaterInvalid if tampered with)."""
        return highwater.read(self.replica.home, self.replica.mac_key, self.device_id)

    def record_feed(self, seq: int, prev: str | None) -> None:
        """Store the feed's new head (inside the caller's transaction); the high-water mark
        follows once the transaction commits."""
        self.sync_state.seq = seq
        self.sync_state.prev = prev
        home, key, mark = self.replica.home, self.replica.mac_key, highwater.Mark(self.device_id, seq, prev)
        self.replica.after_commit("highwater", lambda: highwater.write(home, key, mark))

    def check_can_sign(self) -> None:
        """Raise FeedClosed unless signing the next seq is safe (see the module's rules)."""
        burned = self.sync_state.feed_burned
        if burned:
            raise FeedClosed(
                f"this laptop may not sign changes any more: seqs {burned['from']}..{burned['to']} of its feed "
                "were signed on a newer copy of this replica that is gone, so signing them again would be "
                "two different changes under one number. Reads and pulls still work; ask your administrator "
                "to revoke this device and re-enroll the laptop for new edits."
            )
        try:
            mark = self.mark()
        except HighWaterInvalid as exc:
            raise FeedClosed(str(exc)) from None
        seq = self.sync_state.seq
        if mark is not None and mark.seq > seq:
            raise FeedClosed(
                f"this replica is older than its high-water mark (it holds seq {seq}, this laptop signed up to "
                f"{mark.seq}): it was restored from an old copy or lost its last writes. Nothing was written; "
                "run `fieldsync sync` first, which resyncs it from the hub."
            )

    def clock(self) -> Clock:
        return Clock(self.device_id, last=self.sync_state.clock, max_drift_ms=self.max_drift_ms)
