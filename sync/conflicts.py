"""What the engine reports for command staff: field conflicts and double bookings.

Rules this module owns:

- A :class:`Conflict` is a pair of versions of one field of one record, from
  two devices, with different values, where the later one (by (hlc, device))
  was written without seeing the earlier one: ``later.base < earlier.hlc``.
  The later one still wins; the conflict records both, with provenance.
  It is a property of the *set* of changes, so every replica that holds the
  same changes reports the same conflicts, whatever order they arrived in.
- When either value is withheld from this replica (an agreement shares only
  its digest), values cannot be compared and no conflict is reported here;
  the hub, which sees both values, reports it.
- A :class:`DoubleBooking` is two approved, live reservations of one resource
  whose [starts_at, ends_at) intervals overlap. Touching ends do not overlap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from crypto import canonical


class Version(NamedTuple):
    """One written value of one field, with who wrote it and what they had seen.
    (A NamedTuple: immutable, and cheap to build once per field per change.)"""

    hlc: str
    device: str
    change_id: str
    base: str | None
    value: Any = None
    digest: str | None = None  # set when the value is withheld from this replica

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.hlc, self.device, self.change_id)

    @property
    def withheld(self) -> bool:
        return self.digest is not None


def same_value(a: Version, b: Version) -> bool | None:
    """True/False when both values are known; None when either is withheld."""
    if a.withheld or b.withheld:
        return None
    if type(a.value) is type(b.value) and a.value == b.value:
        return True
    return canonical(a.value) == canonical(b.value)


def in_conflict(earlier: Version, later: Version) -> bool:
    """Did ``later`` overwrite ``earlier`` without having seen it?"""
    return (
        earlier.device != later.device
        and (later.base is None or later.base < earlier.hlc)
        and same_value(earlier, later) is False
    )


@dataclass(frozen=True, slots=True)
class Conflict:
    collection: str
    record_id: str
    field: str
    winner: Version
    loser: Version

    @property
    def id(self) -> str:
        return f"{self.record_id}/{self.field}/{self.loser.change_id}/{self.winner.change_id}"


@dataclass(frozen=True, slots=True, order=True)
class DoubleBooking:
    resource_id: str
    first: str  # reservation ids, first < second
    second: str
    overlap_start: str
    overlap_end: str

    @property
    def id(self) -> str:
        return f"{self.resource_id}/{self.first}/{self.second}"


def find_double_bookings(reservations: Iterable[Mapping[str, Any]]) -> list[DoubleBooking]:
    """Overlapping approved reservations per resource, in a stable order.

    Each item needs ``id``, ``resource_id``, ``starts_at``, ``ends_at``,
    ``state`` and ``deleted``; times are RFC 3339 UTC text, which sorts as time.
    """
    by_resource: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for r in reservations:
        if r.get("deleted") or r.get("state") != "approved":
            continue
        try:
            by_resource[r["resource_id"]].append((r["starts_at"], r["ends_at"], r["id"]))
        except KeyError:
            continue  # a reservation whose times are withheld from this replica
    found: list[DoubleBooking] = []
    for resource_id, spans in by_resource.items():
        spans.sort()
        open_spans: list[tuple[str, str, str]] = []
        for start, end, rid in spans:
            open_spans = [s for s in open_spans if s[1] > start]
            for o_start, o_end, o_id in open_spans:
                a, b = sorted((rid, o_id))
                found.append(DoubleBooking(resource_id, a, b, max(start, o_start), min(end, o_end)))
            open_spans.append((start, end, rid))
    return sorted(found)
