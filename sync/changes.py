"""The change: one officer's signed edit of one record.

Rules this module owns:

- A :class:`Change` is the engine's frozen view of a verified wire change: the
  header, the disclosed values, and the digests of withheld fields. The wire
  dict itself (with salts) travels unchanged and is kept in ``wire``.
- Every change writes the pseudo-field ``_deleted``: True for a tombstone,
  False for an edit, so delete-versus-edit is decided and reported by the same
  last-writer-wins rule as any field. ``base`` carries ``_deleted`` too.
- :func:`make_change` is the only way fieldsync builds a new change: it salts
  every value, stamps ``base`` from what the author saw, and signs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

from crypto import SigningKey, VerifiedChange, new_salt, sign_change

DELETED = "_deleted"


class Change(NamedTuple):
    """A verified change. A NamedTuple rather than a frozen dataclass: it is just
    as immutable, and much cheaper to build (once per change pulled or pushed),
    which keeps the verify path close to the signature's cost."""

    id: str
    collection: str
    record_id: str
    agency: str
    device: str
    seq: int
    prev: str | None
    hlc: str
    base: Mapping[str, str | None]
    values: Mapping[str, Any]
    withheld: Mapping[str, str]
    deleted: bool
    hash: str
    wire: Mapping[str, Any]

    @classmethod
    def from_verified(cls, verified: VerifiedChange) -> Change:
        wire = verified.change
        values, withheld = {}, {}
        for name, entry in wire["fields"].items():
            if "digest" in entry:
                withheld[name] = entry["digest"]
            else:
                values[name] = entry["value"]
        g = wire.__getitem__
        return cls(
            g("id"),
            g("collection"),
            g("record_id"),
            g("agency"),
            g("device"),
            g("seq"),
            g("prev"),
            g("hlc"),
            g("base"),
            values,
            withheld,
            g("deleted"),
            verified.hash,
            wire,
        )

    def written(self) -> tuple[str, ...]:
        """Every field this change writes, ``_deleted`` included."""
        return (*self.values, *self.withheld, DELETED)


def make_change(
    key: SigningKey,
    *,
    collection: str,
    record_id: str,
    agency: str,
    device: str,
    seq: int,
    prev: str | None,
    hlc: str,
    values: Mapping[str, Any],
    seen: Mapping[str, str | None],
    deleted: bool = False,
    change_id: str | None = None,
    resolution: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build and sign a wire change.

    ``seen`` maps each field to the hlc of the value the author saw (what the
    author's replica held); ``base`` is taken from it for every written field.
    ``resolution`` (``{kind, resolves, by}``) is for the hub's own changes only:
    it is signed with the header and names the staff member who decided.
    """
    if deleted and values:
        raise ValueError("a delete carries no values")
    written = (*values, DELETED)
    wire = {
        "id": change_id or str(uuid.uuid4()),
        "collection": collection,
        "record_id": record_id,
        "agency": agency,
        "device": device,
        "seq": seq,
        "prev": prev,
        "hlc": hlc,
        "base": {name: seen.get(name) for name in written},
        "fields": {name: {"salt": new_salt(), "value": value} for name, value in values.items()},
        "deleted": deleted,
    }
    if resolution is not None:
        wire["resolution"] = dict(resolution)
    return sign_change(wire, key)


def resolution_of(wire: Mapping[str, Any]) -> Mapping[str, str] | None:
    """The signed ``{kind, resolves, by}`` of a hub change (None for a device's change)."""
    found = wire.get("resolution")
    return found if isinstance(found, dict) else None
