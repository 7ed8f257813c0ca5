"""Replicas linked in memory, so merge tests read like the scenario they tell.

Like h11's ``ConnectionPair`` or pycrdt's linked docs: a :class:`Network` is
the trust root (hub key and key registry) and the "real" time, an
:class:`Agency` has a key in that registry and issues certificates to its
devices, and each :class:`Device` is a replica with its own hybrid logical
clock (on a fake wall clock the test controls), its own signed feed and its
own :class:`sync.MergeState`. Every change a device makes goes through the
real path: :func:`sync.make_change` (signs), :func:`sync.validate_change`,
:class:`sync.Verifier` (the whole chain of keys), then the merge engine.

    spd = Agency.create("SPD")
    alice, bob = spd.device("alice"), spd.device("bob")
    unit = alice.create("resources", {"kind": "vehicle", "name": "Unit 12"})
    deliver(alice, bob)                      # bob now holds alice's changes
    a = alice.edit(unit.record_id, {"status": "deployed"})
    b = bob.edit(unit.record_id, {"status": "maintenance"})   # concurrent
    sync_all(alice, bob)
    assert alice.view() == bob.view()
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from crypto import (
    KeyRegistry,
    SigningKey,
    agency_entry,
    change_hash,
    hub_entry,
    issue_certificate,
    revocation_entry,
)
from sync import (
    HUB_DEVICE,
    Change,
    Clock,
    Conflict,
    MergeState,
    Outcome,
    RecordState,
    Verifier,
    make_change,
    validate_change,
    validate_values,
)

#: When the registry starts and certificates become valid.
START = datetime(2026, 11, 1, tzinfo=UTC)
#: Certificates issued by :meth:`Agency.device` are valid for a year from START.
CERT_DAYS = 365
#: The fake wall clock starts here (08:00 on the first day).
T0_MS = int((START + timedelta(hours=8)).timestamp() * 1000)

HOUR_MS = 3_600_000
_OWN = object()  # "what the device's own feed says"


def ms_of(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def hlc_text(wall_ms: int, counter: int = 0, node: str = "node") -> str:
    """A clock text built by hand (for changes dated on purpose)."""
    return f"{wall_ms:016d}-{counter:06d}-{node}"


def new_id() -> str:
    return str(uuid.uuid4())


def fixed_id(n: int, kind: int = 0) -> str:
    """A valid, lower-case UUID4 text that is the same on every run (for hypothesis)."""
    return str(uuid.UUID(int=(kind << 64) | n, version=4))


class FakeWall:
    """A wall clock in milliseconds that only moves when the test says so."""

    def __init__(self, ms: int = T0_MS) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, ms: int = 1) -> int:
        self.ms += ms
        return self.ms

    def set(self, ms: int) -> int:
        self.ms = ms
        return self.ms


class Network:
    """The hub's side of trust: its key, the key registry, and the time."""

    def __init__(self, *, tick_ms: int = 1000) -> None:
        self.hub_key = SigningKey.generate()
        self.entries: list[dict[str, Any]] = [hub_entry([], self.hub_key, at=START)]
        self.wall = FakeWall()
        #: how far the shared wall clock moves each time a device signs a change
        self.tick_ms = tick_ms
        self.agencies: dict[str, Agency] = {}
        self.certificates: dict[str, dict[str, Any]] = {}
        self.hub_seq, self.hub_prev = 0, None
        self._registry: tuple[int, KeyRegistry, Verifier] | None = None

    def append(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)

    @property
    def registry(self) -> KeyRegistry:
        return self._current()[1]

    @property
    def verifier(self) -> Verifier:
        """A verifier for the registry as it stands (a new one after each new entry)."""
        return self._current()[2]

    def _current(self) -> tuple[int, KeyRegistry, Verifier]:
        if self._registry is None or self._registry[0] != len(self.entries):
            registry = KeyRegistry.verify(list(self.entries))
            self._registry = (len(self.entries), registry, Verifier(registry))
        return self._registry

    def verify(self, wire: dict[str, Any]) -> Change:
        """Verify a wire change with the certificate of the device it names."""
        return self.verifier.verify(wire, self.certificates.get(wire.get("device")))

    def hub_wire(
        self,
        *,
        collection: str,
        record_id: str,
        agency: str,
        values: Mapping[str, Any],
        seen: Mapping[str, str | None] | None = None,
        key: SigningKey | None = None,
        hlc: str | None = None,
    ) -> dict[str, Any]:
        """A change signed by the hub itself (a conflict resolution)."""
        self.hub_seq += 1
        wire = make_change(
            key or self.hub_key,
            collection=collection,
            record_id=record_id,
            agency=agency,
            device=HUB_DEVICE,
            seq=self.hub_seq,
            prev=self.hub_prev,
            hlc=hlc or hlc_text(self.wall.advance(self.tick_ms), 0, HUB_DEVICE),
            values=values,
            seen=seen or {},
            resolution={"kind": "conflict", "resolves": f"{record_id}/status/a/b", "by": "Lt. Staff"},
        )
        self.hub_prev = change_hash(wire)
        return wire


class Agency:
    """An agency: its key in the registry, and the devices it certified."""

    def __init__(self, network: Network, code: str, name: str) -> None:
        self.network, self.code, self.name = network, code, name
        self.key = SigningKey.generate()
        network.append(agency_entry(network.entries, self.key, agency=code, name=name, at=START))
        network.agencies[code] = self
        self.devices: list[Device] = []

    @classmethod
    def create(cls, code: str, *, network: Network | None = None, name: str | None = None) -> Agency:
        """A new agency, in ``network`` (or in a network of its own)."""
        return cls(network or Network(), code, name or f"{code} police department")

    def device(
        self,
        officer: str = "officer",
        *,
        skew_ms: int = 0,
        not_before: datetime = START,
        not_after: datetime = START + timedelta(days=CERT_DAYS),
        max_drift_ms: int | None = None,
        issuer: SigningKey | None = None,
        device_id: str | None = None,
    ) -> Device:
        """Enroll a laptop: a device key, an id and a certificate signed by this agency
        (or by ``issuer``, to forge one)."""
        key = SigningKey.generate()
        device_id = device_id or new_id()
        cert = issue_certificate(
            issuer or self.key,
            device_id=device_id,
            device_key=key.verify_key,
            agency=self.code,
            officer=officer,
            not_before=not_before,
            not_after=not_after,
        )
        device = Device(self, officer, key, device_id, cert, skew_ms=skew_ms, max_drift_ms=max_drift_ms)
        self.network.certificates[device_id] = cert
        self.devices.append(device)
        return device

    def revoke(self, device: Device, *, after_seq: int, reason: str = "laptop reported lost") -> None:
        self.network.append(
            revocation_entry(
                self.network.entries,
                self.key,
                agency=self.code,
                device_id=device.id,
                after_seq=after_seq,
                at=datetime.fromtimestamp(self.network.wall.ms / 1000, UTC).replace(microsecond=0),
                reason=reason,
            )
        )


class Device:
    """One laptop: a replica with its own clock, feed and merge state."""

    def __init__(
        self,
        agency: Agency,
        officer: str,
        key: SigningKey,
        device_id: str,
        cert: dict[str, Any],
        *,
        skew_ms: int = 0,
        max_drift_ms: int | None = None,
    ) -> None:
        self.agency, self.officer, self.key, self.id, self.cert = agency, officer, key, device_id, cert
        self.network = agency.network
        self.skew_ms = skew_ms
        extra = {} if max_drift_ms is None else {"max_drift_ms": max_drift_ms}
        self.clock = Clock(device_id, now_ms=lambda: self.network.wall.ms + self.skew_ms, **extra)
        self.seq = 0
        self.prev: str | None = None
        self.state = MergeState()
        self.made: list[Change] = []  # this device's own changes, in feed order

    def __repr__(self) -> str:
        return f"Device({self.officer!r}, {self.agency.code})"

    def restore_image(self) -> Device:
        """A second laptop restored from an image of this one: same key, id and
        certificate, same feed position, its own future (an equivocation waiting)."""
        twin = Device(self.agency, self.officer, self.key, self.id, self.cert, skew_ms=self.skew_ms)
        twin.clock = Clock(self.id, last=self.clock.last, now_ms=lambda: self.network.wall.ms + twin.skew_ms)
        twin.seq, twin.prev = self.seq, self.prev
        twin.state = copy_state(self.state)
        twin.made = list(self.made)
        return twin

    # -- making changes -------------------------------------------------
    def wire(
        self,
        collection: str,
        record_id: str,
        values: Mapping[str, Any],
        *,
        deleted: bool = False,
        agency: str | None = None,
        seen: Mapping[str, str | None] | None = None,
        hlc: str | None = None,
        seq: int | None = None,
        prev: Any = _OWN,
        key: SigningKey | None = None,
        change_id: str | None = None,
    ) -> dict[str, Any]:
        """Sign a wire change and advance this device's feed (nothing is verified
        or applied). Every argument after ``values`` overrides what an honest
        device would put there, for tests that forge or misdate changes."""
        if hlc is None:
            self.network.wall.advance(self.network.tick_ms)
            hlc = str(self.clock.now())
        if seen is None:
            record = self.state.records.get(record_id)
            seen = record.seen() if record else {}
        wire = make_change(
            key or self.key,
            collection=collection,
            record_id=record_id,
            agency=agency or self._owner(record_id),
            device=self.id,
            seq=self.seq + 1 if seq is None else seq,
            prev=self.prev if prev is _OWN else prev,
            hlc=hlc,
            values=values,
            seen=seen,
            deleted=deleted,
            change_id=change_id,
        )
        self.seq, self.prev = wire["seq"], change_hash(wire)
        return wire

    def sign(self, collection: str, record_id: str, values: Mapping[str, Any], **overrides: Any) -> Change:
        """Sign, check the envelope, and verify through the whole chain of keys."""
        wire = self.wire(collection, record_id, values, **overrides)
        validate_change(wire)
        change = self.network.verifier.verify(wire, self.cert)
        self.made.append(change)
        return change

    def create(self, collection: str, values: Mapping[str, Any], *, record_id: str | None = None) -> Change:
        validate_values(collection, dict(values), creating=True)
        change = self.sign(collection, record_id or new_id(), values, agency=self.agency.code, seen={})
        self._apply_own(change)
        return change

    def edit(self, record_id: str, values: Mapping[str, Any], **overrides: Any) -> Change:
        change = self.sign(self.record(record_id).collection, record_id, values, **overrides)
        self._apply_own(change)
        return change

    def delete(self, record_id: str, **overrides: Any) -> Change:
        change = self.sign(self.record(record_id).collection, record_id, {}, deleted=True, **overrides)
        self._apply_own(change)
        return change

    def _apply_own(self, change: Change) -> None:
        outcome = self.state.apply(change)
        assert outcome.status == "applied", outcome

    def _owner(self, record_id: str) -> str:
        record = self.state.records.get(record_id)
        return record.agency if record else self.agency.code

    # -- receiving ------------------------------------------------------
    def receive(self, changes: Iterable[Change]) -> list[Outcome]:
        """Merge remote changes: their clocks into ours, their values into our state."""
        outcomes = []
        for change in changes:
            self.clock.observe(change.hlc)
            outcomes.append(self.state.apply(change))
        return outcomes

    # -- reading --------------------------------------------------------
    def record(self, record_id: str) -> RecordState:
        return self.state.records[record_id]

    def values(self, record_id: str) -> dict[str, Any]:
        return self.record(record_id).values()

    def view(self) -> dict[str, dict[str, Any]]:
        return self.state.view()

    @property
    def change_ids(self) -> set[str]:
        return {c.id for c in self.state.history}

    @property
    def conflicts(self) -> dict[str, Conflict]:
        return self.state.conflicts


def missing(src: Device, dst: Device) -> list[Change]:
    held = dst.change_ids
    return [c for c in src.state.history if c.id not in held]


def deliver(src: Device, *dsts: Device) -> None:
    """Send everything ``src`` holds that each of ``dsts`` lacks (one direction)."""
    for dst in dsts:
        dst.receive(missing(src, dst))


def sync_pair(a: Device, b: Device) -> None:
    """A full two-way sync of two replicas."""
    deliver(a, b)
    deliver(b, a)


def sync_all(*devices: Device) -> None:
    """Every replica ends up holding every change any of them holds."""
    for a in devices:
        for b in devices:
            if a is not b:
                deliver(a, b)


def replay(changes: Iterable[Change]) -> MergeState:
    """A fresh replica that applied ``changes`` in the given order."""
    state = MergeState()
    state.apply_all(changes)
    return state


def copy_state(state: MergeState) -> MergeState:
    """A copy that can be applied to without touching ``state`` (records are immutable)."""
    return MergeState(dict(state.records), dict(state.conflicts), list(state.history))


def merged(a: MergeState, b: MergeState) -> MergeState:
    """Replica ``a`` after it received everything ``b`` holds."""
    out = copy_state(a)
    out.apply_all(b.history)
    return out


@dataclass
class Fingerprint:
    """Everything a replica would show or store, in a comparable form."""

    records: dict[str, RecordState] = field(default_factory=dict)
    conflicts: dict[str, Any] = field(default_factory=dict)
    history: frozenset[str] = frozenset()

    @classmethod
    def of(cls, state: MergeState) -> Fingerprint:
        return cls(dict(state.records), dict(state.conflicts), frozenset(c.id for c in state.history))


def reservation_rows(state: MergeState) -> list[dict[str, Any]]:
    """Reservations as :func:`sync.find_double_bookings` wants them (with their ids)."""
    return [{"id": rid, **row} for rid, row in state.view().items() if row["collection"] == "reservations"]
