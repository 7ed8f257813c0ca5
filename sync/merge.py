"""The merge engine: pure functions from (record state, change) to outcome.

Rules this module owns:

- Per field, the version with the greatest (hlc, device) wins (change id
  breaks the tie no honest device can produce). Deletion is the pseudo-field
  ``_deleted`` under the same rule, so an edit concurrent with a delete is a
  conflict like any other, and whichever is later wins.
- Applying the same set of changes in any order, any number of times, gives
  the same state and the same conflicts: a record keeps every version of every
  field, sorted, so the winner is the last one and conflicts are pairs
  (:mod:`sync.conflicts`), found when the second of the pair arrives.
- A change already applied is a duplicate and changes nothing. Nothing is
  thrown away: every applied change stays in the record's history.
- A change for a record of another collection or another owning agency is
  refused (:class:`ChangeRejected`): a record's ``agency`` never changes.
- Inputs are never mutated; :func:`apply` returns a new :class:`RecordState`.
  No I/O: the hub and the client load a record, call :func:`apply`, store it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from .changes import DELETED, Change
from .conflicts import Conflict, Version, same_value
from .errors import ChangeRejected


def _key(v: Version) -> tuple[str, str, str]:
    return (v.hlc, v.device, v.change_id)


class RecordState(NamedTuple):
    """One record's merged state: every version of every field, sorted by (hlc, device).
    (A NamedTuple, like Change and Version: immutable and cheap to build per apply.)"""

    collection: str
    record_id: str
    agency: str
    history: Mapping[str, tuple[Version, ...]] = MappingProxyType({})

    def winner(self, name: str) -> Version | None:
        versions = self.history.get(name)
        return versions[-1] if versions else None

    @property
    def deleted(self) -> bool:
        w = self.winner(DELETED)
        return bool(w and w.value is True)

    @property
    def changed_at(self) -> str | None:
        """hlc of the newest change applied."""
        w = self.winner(DELETED)
        return w.hlc if w else None

    def values(self) -> dict[str, Any]:
        """Current disclosed values (withheld ones are left out)."""
        return {name: vs[-1].value for name, vs in self.history.items() if name != DELETED and not vs[-1].withheld}

    def withheld(self) -> dict[str, str]:
        return {name: vs[-1].digest for name, vs in self.history.items() if vs[-1].digest is not None}

    def seen(self) -> dict[str, str]:
        """The hlc of each field's current value: the ``base`` of the next local edit."""
        return {name: vs[-1].hlc for name, vs in self.history.items()}

    def change_ids(self) -> list[str]:
        """Every applied change, in clock order (each writes ``_deleted``)."""
        return [v.change_id for v in self.history.get(DELETED, ())]

    def holds(self, change: Change) -> bool:
        versions = self.history.get(DELETED, ())
        if not versions:
            return False
        probe, last = (change.hlc, change.device, change.id), versions[-1]
        if (last.hlc, last.device, last.change_id) < probe:
            return False  # (the usual case: changes come in clock order; no search)
        i = bisect_left(versions, probe, key=_key)
        return i < len(versions) and versions[i].change_id == change.id


class Outcome(NamedTuple):
    record: RecordState
    status: Literal["applied", "duplicate"]
    conflicts: tuple[Conflict, ...] = ()


def apply(record: RecordState | None, change: Change) -> Outcome:
    """Merge one verified change into a record's state."""
    if record is None:
        record = RecordState(change.collection, change.record_id, change.agency)
    elif record.collection != change.collection or record.record_id != change.record_id:
        raise ChangeRejected(f"record {change.record_id} is not a {change.collection} record", change_id=change.id)
    elif record.agency != change.agency:
        raise ChangeRejected(
            f"record belongs to agency {record.agency}, change names {change.agency}", change_id=change.id
        )
    if record.holds(change):
        return Outcome(record, "duplicate")

    history = dict(record.history)
    found: list[Conflict] = []
    collection, record_id, device = record.collection, record.record_id, change.device
    hlc, change_id, bases, values = change.hlc, change.id, change.base, change.values
    key = (hlc, device, change_id)  # every version this change writes sorts at it
    for name in change.written():
        base = bases.get(name)
        if name == DELETED:
            new = Version(hlc, device, change_id, base, change.deleted)
        elif name in values:
            new = Version(hlc, device, change_id, base, values[name])
        else:
            new = Version(hlc, device, change_id, base, None, change.withheld[name])
        versions = history.get(name, ())
        count = len(versions)
        last = versions[-1] if count else None
        at = (
            count
            if last is None or (last.hlc, last.device, last.change_id) < key
            else bisect_left(versions, key, key=_key)
        )
        # earlier versions this one overwrote without seeing them: those newer than its base
        for j in range(at - 1, -1, -1):
            old = versions[j]
            if base is not None and old.hlc <= base:
                break
            if old.device != device and _differ(old, new):
                found.append(Conflict(collection, record_id, name, new, old))
        # later versions that overwrote this one without seeing it
        for k in range(at, count):
            later = versions[k]
            if later.device != device and (later.base is None or later.base < new.hlc) and _differ(new, later):
                found.append(Conflict(collection, record_id, name, later, new))
        history[name] = (*versions, new) if at == count else (*versions[:at], new, *versions[at:])
    return Outcome(RecordState(collection, record_id, record.agency, history), "applied", tuple(found))


def _differ(a: Version, b: Version) -> bool:
    """Both values known and different (the inlined core of conflicts.in_conflict)."""
    if a.digest is not None or b.digest is not None:
        return False
    if type(a.value) is type(b.value) and a.value == b.value:
        return False
    return same_value(a, b) is False


@dataclass(slots=True)
class MergeState:
    """Records, conflicts and history held in memory: a replica without storage.

    The hub and the client keep the same things in their databases; this one
    serves tests, benchmarks and ``fieldsync verify``.
    """

    records: dict[str, RecordState] = field(default_factory=dict)
    conflicts: dict[str, Conflict] = field(default_factory=dict)
    history: list[Change] = field(default_factory=list)

    def apply(self, change: Change) -> Outcome:
        outcome = apply(self.records.get(change.record_id), change)
        if outcome.status == "applied":
            self.records[change.record_id] = outcome.record
            self.history.append(change)
            for conflict in outcome.conflicts:
                self.conflicts[conflict.id] = conflict
        return outcome

    def apply_all(self, changes: Iterable[Change]) -> None:
        for change in changes:
            self.apply(change)

    def view(self) -> dict[str, dict[str, Any]]:
        """Each record's current values, owner and deleted flag: what users see."""
        return {
            rid: {"collection": r.collection, "agency": r.agency, "deleted": r.deleted, **r.values()}
            for rid, r in self.records.items()
        }
