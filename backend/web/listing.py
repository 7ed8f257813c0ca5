"""The merged-records list: filters, sorting and keyset pages on indexed columns.

Filters: collection, agency, status (``deleted`` shows tombstones, which are
otherwise hidden) and free text (a case-insensitive substring of the record's
current text values, or its exact id). Sorts: last update (default, newest
first), title, collection, agency, status; each with the record id as
tie-break, so keyset paging never skips or repeats a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from sync.schemas import COLLECTIONS, RESERVATION_STATES, RESOURCE_STATUSES

from ..db import db
from ..models import Agency, Record
from . import paging

PAGE_SIZE = 50
STATUSES = (*RESOURCE_STATUSES, *RESERVATION_STATES, "deleted")
SORTS: dict[str, tuple[ColumnElement[Any], type]] = {
    "updated": (Record.updated_at, datetime),  # type: ignore[dict-item]
    "title": (Record.title, str),  # type: ignore[dict-item]
    "collection": (Record.collection, str),  # type: ignore[dict-item]
    "agency": (Record.agency, str),  # type: ignore[dict-item]
    "status": (Record.status, str),  # type: ignore[dict-item]
}


@dataclass
class Filters:
    collection: str = ""
    agency: str = ""
    status: str = ""
    q: str = ""
    sort: str = "updated"
    dir: str = "desc"
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: Any) -> Filters:
        """Unknown values are dropped with a message, never passed to SQL."""
        f = cls(
            collection=args.get("collection", "").strip(),
            agency=args.get("agency", "").strip(),
            status=args.get("status", "").strip(),
            q=args.get("q", "").strip()[:200],
            sort=args.get("sort", "updated"),
            dir=args.get("dir", ""),
        )
        if f.collection and f.collection not in COLLECTIONS:
            f.errors.append(f"unknown collection {f.collection!r}")
            f.collection = ""
        if f.status and f.status not in STATUSES:
            f.errors.append(f"unknown status {f.status!r}")
            f.status = ""
        if f.agency and len(f.agency) > 32:
            f.errors.append("unknown agency")
            f.agency = ""
        if f.sort not in SORTS:
            f.sort = "updated"
        if f.dir not in ("asc", "desc"):
            f.dir = "desc" if f.sort == "updated" else "asc"
        return f

    def conditions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.collection:
            where.append(Record.collection == self.collection)
        if self.agency:
            where.append(Record.agency == self.agency)
        if self.status == "deleted":
            where.append(Record.deleted.is_(True))
        else:
            where.append(Record.deleted.is_(False))
            if self.status:
                where.append(Record.status == self.status)
        if self.q:
            where.append(Record.search.contains(self.q.casefold(), autoescape=True) | (Record.record_id == self.q))
        return where


def page(filters: Filters, *, after: str | None, before: str | None, limit: int = PAGE_SIZE) -> paging.Page:
    column, kind = SORTS[filters.sort]
    where = filters.conditions()
    result = paging.fetch(
        select(Record).where(*where),
        (column, Record.record_id),
        (kind, str),
        descending=filters.dir == "desc",
        after=after,
        before=before,
        limit=limit,
        session=db.session,
        key_of=lambda r: (getattr(r, column.key), r.record_id),  # type: ignore[attr-defined]
    )
    total = db.session.scalar(select(func.count()).select_from(Record).where(*where)) or 0
    result.summary = f"{total:,} record matches" if total == 1 else f"{total:,} records match"
    return result


def agencies() -> list[Agency]:
    return list(db.session.scalars(select(Agency).order_by(Agency.code)))
