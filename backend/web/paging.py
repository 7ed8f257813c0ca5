"""Keyset paging: pages of a sorted query that cost the same at row 10 and row 100,000.

A page is fetched by ``WHERE (sort_key, tiebreak) > (last seen)`` on an index,
never by ``OFFSET`` (which reads and throws away every earlier row). Cursors
are the (sort value, tiebreak) of a page's edge, in base64url JSON; a cursor
that does not parse is a 400, never a 500. "Previous" runs the same query in
the opposite direction and reverses the rows.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from ..errors import BadRequest


def encode(values: tuple[Any, ...]) -> str:
    out = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(out, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(cursor: str, kinds: tuple[type, ...]) -> tuple[Any, ...]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError
        out: list[Any] = []
        for value, kind in zip(raw, kinds, strict=True):
            if kind is datetime:
                out.append(datetime.fromisoformat(value))
            elif isinstance(value, kind) and not isinstance(value, bool):
                out.append(value)
            else:
                raise ValueError
        return tuple(out)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise BadRequest("this page link is damaged: start again from the first page") from None


@dataclass
class Page:
    rows: list[Any]
    before: str | None  # cursor for the previous page
    after: str | None  # cursor for the next page
    summary: str = ""
    after_first: bool = False  # on a page reached by "previous": a first page exists before


def fetch(
    query: Select[Any],
    keys: tuple[ColumnElement[Any], ...],
    kinds: tuple[type, ...],
    *,
    descending: bool,
    after: str | None,
    before: str | None,
    limit: int,
    session: Any,
    key_of: Any,
) -> Page:
    """One page of ``query`` ordered by ``keys``; ``key_of(row)`` gives a row's key tuple."""
    backwards = before is not None
    cursor = decode(before, kinds) if backwards else (decode(after, kinds) if after else None)
    forward_desc = descending != backwards  # walking back on a descending sort walks up
    if cursor is not None:
        edge = tuple_(*keys)
        query = query.where(edge < tuple_(*cursor) if forward_desc else edge > tuple_(*cursor))
    order = [k.desc() if forward_desc else k.asc() for k in keys]
    rows = list(session.execute(query.order_by(*order).limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        prev_cursor = encode(key_of(rows[0])) if more and rows else None
        next_cursor = encode(key_of(rows[-1])) if rows else None
    else:
        prev_cursor = encode(key_of(rows[0])) if cursor is not None and rows else None
        next_cursor = encode(key_of(rows[-1])) if more and rows else None
    return Page(rows, prev_cursor, next_cursor, after_first=backwards and not more)
