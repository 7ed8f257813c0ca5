"""Pull: what an agency may see after its cursor, with what it needs to verify it.

Rules this module owns:

- The log head (size S) is read first; every entry up to S is committed
  (backend/log.py), so the answer covers (cursor, S] with no hole.
- Visible: the agency's own records, reservations of its own resources (it
  decides them, so it sees them whole), and records of agencies whose
  agreement shares that collection with it. Fields an agreement withholds leave the hub
  as digests only (crypto.withhold); the value is in no part of the answer.
- ``next_cursor`` advances past invisible entries too; ``more`` says whether
  entries remain after it. The answer carries the certificates of the devices
  that wrote the changes, the registry size (a client refreshes its registry
  when it grew) and the hub's signed checkpoint of (S, head).
- A page costs O(limit), not O(log): each way of being visible (own, reservations
  of own resources, one per sharing agency) is read by its own index in seq order,
  at most ``limit`` entries each, and the page is the first ``limit`` of their union.
- The answer is JSON built by joining text (:meth:`Page.body`): a change that
  needs no withholding leaves as the text the log stores (read as text, never
  parsed: the hub wrote it from a verified change, so it is a JSON object); only
  a change that may hold a withheld field is parsed, reduced and serialised
  again. "May hold" errs one way only: a text naming no withheld field (as
  ``"name"``) and holding no backslash (so no escaped key) cannot hold one; any
  other is parsed. The parsed form (:meth:`Page.answer`) is the same JSON, keys
  and values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Text, and_, cast, func, select, union

from crypto import withhold

from . import agreements, log
from .db import db
from .errors import Conflict
from .models import Device, LogEntry, RegistryEntry


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


_LOG = LogEntry.__table__


def _withheld(text: str, names: frozenset[str]) -> str:
    """The change ``text`` with the fields ``names`` reduced to their digests. orjson (a page may
    hold hundreds of such changes): the text is one the hub wrote from a verified change, whose
    numbers are all within 2**53 (crypto.canonical); what orjson refuses the standard library does."""
    try:
        change = orjson.loads(text)
    except orjson.JSONDecodeError:
        change = json.loads(text)
    reduced = withhold(change, names)
    try:
        return orjson.dumps(reduced).decode()
    except orjson.JSONEncodeError:
        return _dumps(reduced)


def _may_name(text: str, names: frozenset[str]) -> bool:
    """Whether the JSON ``text`` may hold a key in ``names``. Without a backslash every JSON
    string in a text is written as its characters, so a key ``notes`` shows as ``"notes"``;
    a text with any escape is taken to name them all."""
    return "\\" in text or any(f'"{name}"' in text for name in names)


@dataclass(frozen=True)
class Page:
    """One pull answer; ``changes`` are (seq, the change's JSON text as it leaves the hub)."""

    changes: list[tuple[int, str]]
    certificates: dict[str, Any]
    next_cursor: int
    more: bool
    registry_size: int
    checkpoint: dict[str, Any]

    def body(self) -> bytes:
        """The answer as JSON: ``{changes: [{seq, change}], certificates, next_cursor, more,
        registry_size, checkpoint}``, the change texts spliced in as they are."""
        changes = ",".join([f'{{"seq":{seq},"change":{text}}}' for seq, text in self.changes])
        return (
            f'{{"changes":[{changes}],"certificates":{_dumps(self.certificates)},'
            f'"next_cursor":{self.next_cursor},"more":{_dumps(self.more)},'
            f'"registry_size":{self.registry_size},"checkpoint":{_dumps(self.checkpoint)}}}\n'
        ).encode()

    def answer(self) -> dict[str, Any]:
        """The same answer parsed."""
        return {
            "changes": [{"seq": seq, "change": json.loads(text)} for seq, text in self.changes],
            "certificates": self.certificates,
            "next_cursor": self.next_cursor,
            "more": self.more,
            "registry_size": self.registry_size,
            "checkpoint": self.checkpoint,
        }


def page(agency: str, cursor: int, limit: int) -> Page:
    head = log.read_head()
    size, head_hash = head.size, head.head
    if cursor > size:
        raise Conflict(
            f"cursor {cursor} is beyond this hub's log ({size} entries): the hub was restored from an older "
            "copy or this is another hub",
            details={"size": size},
        )
    shares = agreements.shares_to(agency)
    visible = [
        _LOG.c.agency == agency,
        and_(_LOG.c.collection == "reservations", _LOG.c.resource_agency == agency),
    ] + [
        and_(_LOG.c.agency == owner, _LOG.c.collection.in_(sorted(s.collections)))
        for owner, s in shares.items()
        if s.collections
    ]
    # One OR over the whole (cursor, S] would make the database gather every visible entry
    # of the rest of the log and sort it, per page. Each way of being visible instead is an
    # index range read in seq order that stops after ``limit`` entries; UNION drops an entry
    # visible two ways (an own reservation of an own resource).
    first = union(
        *[
            select(branch.c.seq)
            for branch in (
                select(_LOG.c.seq)
                .where(_LOG.c.seq > cursor, _LOG.c.seq <= size, condition)
                .order_by(_LOG.c.seq)
                .limit(limit)
                .subquery()
                for condition in visible
            )
        ]
    )
    # the table's columns, not the ORM's: a page is a thousand rows, read as plain tuples
    # (the ORM's row loading cost more than the query); the change as the text the log
    # stores (JSON on PostgreSQL keeps it as written)
    rows = db.session.execute(
        select(_LOG.c.seq, _LOG.c.agency, _LOG.c.resource_agency, _LOG.c.device, cast(_LOG.c.wire, Text))
        .where(_LOG.c.seq.in_(first))
        .order_by(_LOG.c.seq)
        .limit(limit)
    ).all()
    next_cursor = rows[-1][0] if len(rows) == limit else size
    changes = []
    device_ids = set()
    for seq, owner, resource_agency, device, wire in rows:
        device_ids.add(device)
        if owner != agency and resource_agency != agency:
            share = shares.get(owner)
            if share is not None and share.withhold and _may_name(wire, share.withhold):
                wire = _withheld(wire, share.withhold)
        changes.append((seq, wire))
    certificates = (
        {d.id: d.certificate for d in db.session.scalars(select(Device).where(Device.id.in_(device_ids)))}
        if device_ids
        else {}
    )
    return Page(
        changes=changes,
        certificates=certificates,
        next_cursor=next_cursor,
        more=next_cursor < size,
        registry_size=db.session.execute(select(func.count()).select_from(RegistryEntry.__table__)).scalar_one(),
        checkpoint=log.checkpoint(size, head_hash),
    )


def pull(agency: str, cursor: int, limit: int) -> dict[str, Any]:
    """:func:`page`, parsed."""
    return page(agency, cursor, limit).answer()


def visible_to(agency: str, owner: str, collection: str) -> bool:
    return agreements.can_see(owner, agency, collection)
