"""The outbox and the refused table (field_client/outbox.py): every statement on them, on a
real encrypted replica (no hub needed)."""

from __future__ import annotations

import ast
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import field_client
from crypto import FAST
from field_client import outbox
from field_client.outbox import TO_SEND, Status
from field_client.replica import Replica

from .helpers import PASSPHRASE


@pytest.fixture
def rep(tmp_path: Path) -> Iterator[Replica]:
    with Replica.create(tmp_path / "home", PASSPHRASE, cost=FAST) as made:
        yield made


def queue(rep: Replica, seq: int, record_id: str | None = None) -> dict[str, Any]:
    wire = {"id": str(uuid.uuid4()), "record_id": record_id or str(uuid.uuid4()), "seq": seq}
    with rep.transaction():
        outbox.queue(rep, seq, wire["id"], wire["record_id"], wire)
    return wire


def statuses(rep: Replica) -> dict[int, str]:
    return {r["seq"]: r["status"] for r in rep.rows("SELECT seq, status FROM outbox ORDER BY seq")}


def test_status_values_are_the_stored_strings() -> None:
    assert [s.value for s in Status] == ["pending", "held", "accepted", "rejected", "set_aside"]
    assert TO_SEND == (Status.PENDING, Status.HELD)


def test_a_queued_change_is_pending_with_its_wire_as_json(rep: Replica) -> None:
    wire = queue(rep, 1)
    (row,) = rep.rows("SELECT * FROM outbox")
    assert (row["seq"], row["change_id"], row["record_id"]) == (1, wire["id"], wire["record_id"])
    assert row["status"] == "pending"
    assert json.loads(row["wire"]) == wire and row["reason"] is None and row["details"] is None
    assert row["updated_at"]


def test_to_send_is_pending_and_held_in_seq_order(rep: Replica) -> None:
    wires = [queue(rep, seq) for seq in (3, 1, 2, 4)]
    with rep.transaction():
        outbox.mark(rep, 2, Status.HELD, "an earlier link is missing")
        outbox.mark(rep, 4, Status.ACCEPTED)
    rows = outbox.to_send(rep)
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert set(rows[0]) == {"seq", "change_id", "record_id", "wire"}
    assert {r["change_id"] for r in rows} == {w["id"] for w in wires[:3]}
    assert [r["seq"] for r in outbox.to_send(rep, 2)] == [1, 2]
    assert outbox.has_pending(rep) and outbox.count_pending(rep) == 3 and outbox.oldest_pending(rep) == 1
    assert outbox.pending_record_ids(rep) == {r["record_id"] for r in rows}


def test_an_empty_outbox_has_nothing_to_send(rep: Replica) -> None:
    assert outbox.to_send(rep) == [] and not outbox.has_pending(rep)
    assert outbox.count_pending(rep) == 0 and outbox.oldest_pending(rep) is None
    assert outbox.pending_record_ids(rep) == set()


def test_a_verdict_replaces_status_reason_and_details(rep: Replica) -> None:
    queue(rep, 1)
    with rep.transaction():
        outbox.mark(rep, 1, Status.REJECTED, "invalid", {"name": ["Too long."]})
    (row,) = rep.rows("SELECT status, reason, details FROM outbox")
    assert row == {"status": "rejected", "reason": "invalid", "details": json.dumps({"name": ["Too long."]})}
    with rep.transaction():
        outbox.mark(rep, 1, Status.ACCEPTED)
    (row,) = rep.rows("SELECT status, reason, details FROM outbox")
    assert row == {"status": "accepted", "reason": None, "details": None}
    with rep.transaction():
        outbox.mark(rep, 1, Status.SET_ASIDE, "stale", {})  # empty details are stored as NULL
    (row,) = rep.rows("SELECT status, reason, details FROM outbox")
    assert row == {"status": "set_aside", "reason": "stale", "details": None}


def test_requeue_after_puts_answered_entries_back_as_the_same_bytes(rep: Replica) -> None:
    for seq in range(1, 6):
        queue(rep, seq)
    before = {r["seq"]: r["wire"] for r in rep.rows("SELECT seq, wire FROM outbox")}
    with rep.transaction():
        outbox.mark(rep, 1, Status.ACCEPTED)
        outbox.mark(rep, 2, Status.ACCEPTED)
        outbox.mark(rep, 3, Status.REJECTED, "no", {"x": ["y"]})
        outbox.mark(rep, 4, Status.SET_ASIDE, "stale")
    with rep.transaction():
        assert outbox.requeue_after(rep, 1) == [2, 3]
    assert statuses(rep) == {1: "accepted", 2: "pending", 3: "pending", 4: "set_aside", 5: "pending"}
    assert rep.rows("SELECT reason, details FROM outbox WHERE seq = 3") == [{"reason": None, "details": None}]
    assert {r["seq"]: r["wire"] for r in rep.rows("SELECT seq, wire FROM outbox")} == before


def test_rejected_and_set_aside_entries_are_read_with_their_reasons(rep: Replica) -> None:
    wires = [queue(rep, seq) for seq in (1, 2, 3)]
    with rep.transaction():
        outbox.mark(rep, 1, Status.REJECTED, "first", {"name": ["Required."]})
        outbox.mark(rep, 2, Status.REJECTED, "second")
        outbox.mark(rep, 3, Status.SET_ASIDE, "stale")
    first, second = ({"change_id": w["id"], "record_id": w["record_id"]} for w in wires[:2])
    assert outbox.rejected(rep) == [
        {**first, "reason": "first", "details": {"name": ["Required."]}},
        {**second, "reason": "second", "details": {}},
    ]
    latest = outbox.latest_rejected(rep)
    assert [r["seq"] for r in latest] == [2, 1]  # newest first (same stamp: the later seq first)
    assert list(latest[0]) == ["seq", "change_id", "record_id", "reason", "details", "updated_at", "wire"]
    assert latest[1]["details"] == {"name": ["Required."]} and json.loads(latest[1]["wire"]) == wires[0]
    assert [r["seq"] for r in outbox.latest_rejected(rep, 1)] == [2]
    (aside,) = outbox.set_aside(rep)
    assert (aside["seq"], aside["reason"], json.loads(aside["wire"])) == (3, "stale", wires[2])


def test_a_refused_change_is_kept_as_received_in_arrival_order(rep: Replica) -> None:
    good = {"id": "c1", "record_id": "r1", "fields": {}}
    with rep.transaction():
        outbox.keep_refused(rep, good, "bad signature")
        outbox.keep_refused(rep, "not even a change", "malformed")
    assert [{k: r[k] for k in ("change_id", "record_id", "reason")} for r in outbox.refused(rep)] == [
        {"change_id": "c1", "record_id": "r1", "reason": "bad signature"},
        {"change_id": None, "record_id": None, "reason": "malformed"},
    ]
    assert list(outbox.refused(rep)[0]) == ["change_id", "record_id", "reason", "received_at"]
    kept = rep.rows("SELECT wire FROM refused ORDER BY id")
    assert [json.loads(r["wire"]) for r in kept] == [good, "not even a change"]


def test_no_other_module_spells_a_statement_on_the_outbox_or_refused_tables() -> None:
    """The outbox has one home: no string in another field_client module names the tables in SQL."""
    root = Path(field_client.__file__).parent
    for path in sorted(root.rglob("*.py")):
        if path.name in ("outbox.py", "replica.py"):  # replica.py: the schema's CREATE TABLE
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = " ".join(node.value.split()).lower()
                for table in ("outbox", "refused"):
                    for verb in (f"from {table}", f"into {table}", f"update {table}"):
                        assert verb not in text, (path.name, node.value)
