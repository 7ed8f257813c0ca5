"""Sorting a short table by a column, server-side: ``?sort=KEY&dir=asc|desc`` from a plain link.

The column headers are links (``sort_th`` in templates/web/_macros.html), so sorting
works without JavaScript, like the records list. Only the keys a table declares are
accepted; anything else falls back to the table's default order, never reaches SQL or
``getattr``. For tables that are read whole anyway (the dashboard's devices, the admin
lists of devices and users) the rows are sorted here; the long, paged tables (records,
audit log) sort in SQL with keyset paging instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Sort:
    key: str
    dir: str  # "asc" or "desc"

    @property
    def descending(self) -> bool:
        return self.dir == "desc"


def choose(args: Mapping[str, str], allowed: Mapping[str, str], default: str) -> Sort:
    """The sort asked for in ``args``; ``allowed`` maps each key to its natural direction
    (the one a first click gives, e.g. newest first for a time)."""
    key = args.get("sort", "")
    if key not in allowed:
        return Sort(default, allowed[default])
    direction = args.get("dir", "")
    return Sort(key, direction if direction in ("asc", "desc") else allowed[key])


def sort_rows(
    rows: Iterable[T], sort: Sort, keys: Mapping[str, Callable[[T], Any]], tiebreak: Callable[[T], Any]
) -> list[T]:
    """``rows`` ordered by ``keys[sort.key]``, ties by ``tiebreak``; a missing value (None,
    e.g. never synced) sorts as the smallest, so it comes last on a newest-first sort."""
    value = keys[sort.key]

    def key(row: T) -> tuple[bool, Any, Any]:
        v = value(row)
        if isinstance(v, str):
            v = v.casefold()
        return (v is not None, v if v is not None else 0, tiebreak(row))

    return sorted(rows, key=key, reverse=sort.descending)
