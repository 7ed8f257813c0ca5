"""The outbox (this laptop's signed changes, waiting for or answered by the hub) and the
``refused`` table (changes pulled from the hub that this laptop would not apply).

Rules this module owns:

- Every statement on the ``outbox`` and ``refused`` tables is here; the
  edits, the push, recovery, accept-hub and the officer's views call these
  functions. None opens a transaction: each runs inside the caller's, so an
  entry lands with the change it queues or the verdict it records.
- A change is queued as :attr:`Status.PENDING` in the transaction that signs
  it, under its feed seq: seq order is signing order, and the hub is sent
  changes in that order (it accepts a feed only link by link).
- :data:`TO_SEND` is what a push sends: pending, and held (the hub lacked an
  earlier link; sent again at the next sync). Accepted and rejected entries
  are kept as the record of what the hub decided; set-aside entries (a
  replica restored from an old copy, field_client.recovery) are kept and
  shown, and never sent.
- A verdict replaces the entry's status, reason and details (JSON, or NULL
  when there are none) and stamps ``updated_at``.
- Requeuing (accept-hub, after a ROLLBACK or FORK) puts the very same signed
  bytes back as pending: nothing is signed again, so no seq is reused.
- A refused pulled change is kept with its reason and its wire as received,
  in arrival order, and never deleted: it is evidence for the administrator.
- Status values are the strings stored in the replica (its schema and the
  rows already written do not change).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from crypto.clock import stamp

from .replica import Replica


class Status(StrEnum):
    """An outbox entry's status; the value is the text stored in ``outbox.status``."""

    PENDING = "pending"
    HELD = "held"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SET_ASIDE = "set_aside"


TO_SEND = (Status.PENDING, Status.HELD)


def _status_in(*statuses: Status) -> str:
    """``status IN (...)`` of these statuses, as SQL text (the values are this module's constants)."""
    return "status IN (" + ", ".join(f"'{status.value}'" for status in statuses) + ")"


_TO_SEND_SQL = _status_in(*TO_SEND)
_ANSWERED_SQL = _status_in(Status.ACCEPTED, Status.REJECTED)


# -- queue and send ---------------------------------------------------------------------
def queue(replica: Replica, seq: int, change_id: str, record_id: str, wire: dict[str, Any]) -> None:
    """Queue a newly signed change as pending, under its feed seq."""
    replica.conn.execute(
        "INSERT INTO outbox(seq, change_id, record_id, wire, status, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        (seq, change_id, record_id, json.dumps(wire), Status.PENDING.value, stamp()),
    )


def to_send(replica: Replica, limit: int | None = None) -> list[dict[str, Any]]:
    """Entries to send (pending or held) in seq order, at most ``limit``: seq, change_id,
    record_id and wire (the JSON text)."""
    sql = f"SELECT seq, change_id, record_id, wire FROM outbox WHERE {_TO_SEND_SQL} ORDER BY seq"
    if limit is None:
        return replica.rows(sql)
    return replica.rows(sql + " LIMIT ?", (limit,))


def has_pending(replica: Replica) -> bool:
    """Whether anything is left to send."""
    return bool(replica.rows(f"SELECT 1 FROM outbox WHERE {_TO_SEND_SQL} LIMIT 1"))


def count_pending(replica: Replica) -> int:
    return int(replica.conn.execute(f"SELECT count(*) FROM outbox WHERE {_TO_SEND_SQL}").fetchone()[0])


def oldest_pending(replica: Replica) -> int | None:
    """The lowest seq still to send, or None."""
    oldest = replica.conn.execute(f"SELECT min(seq) FROM outbox WHERE {_TO_SEND_SQL}").fetchone()[0]
    return None if oldest is None else int(oldest)


def pending_record_ids(replica: Replica) -> set[str]:
    """Records with edits the hub has not accepted yet (a page marks them "not synced yet")."""
    rows = replica.conn.execute(f"SELECT DISTINCT record_id FROM outbox WHERE {_TO_SEND_SQL}")
    return {row[0] for row in rows}


# -- verdicts -------------------------------------------------------------------------------
def mark(replica: Replica, seq: int, status: Status, reason: str | None = None, details: Any = None) -> None:
    """Record a verdict on the entry at ``seq`` (see the module's rules)."""
    replica.conn.execute(
        "UPDATE outbox SET status = ?, reason = ?, details = ?, updated_at = ? WHERE seq = ?",
        (status.value, reason, json.dumps(details) if details else None, stamp(), seq),
    )


def requeue_after(replica: Replica, seq: int) -> list[int]:
    """Put every accepted or rejected entry after ``seq`` back as pending, the same signed
    bytes; returns their seqs in order."""
    requeued = [
        int(r["seq"])
        for r in replica.rows(f"SELECT seq FROM outbox WHERE {_ANSWERED_SQL} AND seq > ? ORDER BY seq", (seq,))
    ]
    replica.conn.execute(
        f"UPDATE outbox SET status = ?, reason = NULL, details = NULL, updated_at = ?"
        f" WHERE {_ANSWERED_SQL} AND seq > ?",
        (Status.PENDING.value, stamp(), seq),
    )
    return requeued


# -- what the officer reads -------------------------------------------------------------
def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "details": json.loads(row["details"]) if row["details"] else {}}


def rejected(replica: Replica) -> list[dict[str, Any]]:
    """Entries the hub rejected, in seq order: change_id, record_id, reason and details
    (decoded: field -> messages, as ``sync --json`` reports them)."""
    return [
        _decoded(row)
        for row in replica.rows(
            "SELECT change_id, record_id, reason, details FROM outbox WHERE status = ? ORDER BY seq",
            (Status.REJECTED.value,),
        )
    ]


def latest_rejected(replica: Replica, limit: int | None = None) -> list[dict[str, Any]]:
    """Entries the hub rejected, newest first, at most ``limit``: seq, change_id, record_id,
    reason, details (decoded), updated_at and wire (the JSON text)."""
    sql = (
        "SELECT seq, change_id, record_id, reason, details, updated_at, wire FROM outbox"
        " WHERE status = ? ORDER BY updated_at DESC, seq DESC"
    )
    rows = replica.rows(sql + (f" LIMIT {int(limit)}" if limit else ""), (Status.REJECTED.value,))
    return [_decoded(row) for row in rows]


def set_aside(replica: Replica) -> list[dict[str, Any]]:
    """Entries set aside by recovery, in seq order: seq, change_id, record_id, reason, wire."""
    return replica.rows(
        "SELECT seq, change_id, record_id, reason, wire FROM outbox WHERE status = ? ORDER BY seq",
        (Status.SET_ASIDE.value,),
    )


# -- changes refused from the hub -----------------------------------------------------
def keep_refused(replica: Replica, wire: Any, reason: str) -> None:
    """Keep a pulled change this laptop refused, as received (``wire`` may be anything)."""
    replica.conn.execute(
        "INSERT INTO refused(change_id, record_id, wire, reason, received_at) VALUES (?, ?, ?, ?, ?)",
        (
            wire.get("id") if isinstance(wire, dict) else None,
            wire.get("record_id") if isinstance(wire, dict) else None,
            json.dumps(wire),
            reason,
            stamp(),
        ),
    )


def refused(replica: Replica) -> list[dict[str, Any]]:
    """Every refused pulled change, in arrival order: change_id, record_id, reason, received_at."""
    return replica.rows("SELECT change_id, record_id, reason, received_at FROM refused ORDER BY id")
