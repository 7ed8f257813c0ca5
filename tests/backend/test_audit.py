"""The hash-chained audit log (backend.audit): tampering with the database is caught.

Entries are written through ``audit.record``; the tampering is done behind the
hub's back, with SQL on its tables, the way someone with database access would.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text, update

from backend import audit
from backend.db import db
from backend.models import AuditEntry, AuditHead

N = 6
EXE = Path(sys.executable).with_name("fieldsync-hub")
CLI = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "backend.cli"]


def _fill(app: Flask, n: int = N) -> None:
    with app.app_context():
        for i in range(1, n + 1):
            audit.record(
                f"test.action{i % 3}",
                actor=f"cli:tester{i}",
                agency="SPD" if i % 2 else None,
                object=f"object-{i}",
                outcome="ok" if i != 2 else "refused",
                details={"i": i, "note": "ünïcode ✓", "nested": {"list": [i, None, True]}},
            )
        db.session.commit()


def _sql(app: Flask, statement: Any, **params: Any) -> None:
    with app.app_context():
        db.session.execute(text(statement) if isinstance(statement, str) else statement, params)
        db.session.commit()


def _verify(app: Flask) -> audit.AuditReport:
    with app.app_context():
        return audit.verify()


def test_untouched_log_verifies(app: Flask) -> None:
    assert _verify(app).ok and _verify(app).size == 0
    _fill(app)
    report = _verify(app)
    assert report.ok, report.problems
    assert report.size == N
    with app.app_context():
        entries = list(db.session.scalars(db.select(AuditEntry).order_by(AuditEntry.seq)))
        head = db.session.get(AuditHead, 1)
        assert [e.seq for e in entries] == list(range(1, N + 1))
        assert entries[0].prev is None
        assert all(b.prev == a.hash for a, b in itertools.pairwise(entries))
        assert head is not None and (head.size, head.head) == (N, entries[-1].hash)
        assert entries[1].outcome == "refused" and entries[0].details["nested"] == {"list": [1, None, True]}


def test_entry_is_written_in_the_callers_transaction(app: Flask) -> None:
    _fill(app, 2)
    with app.app_context():
        audit.record("test.rolled_back", actor="cli:tester")
        db.session.rollback()
        audit.record("test.kept", actor="cli:tester")
        db.session.commit()
    report = _verify(app)
    assert report.ok and report.size == 3
    with app.app_context():
        assert db.session.scalar(db.select(AuditEntry.action).where(AuditEntry.seq == 3)) == "test.kept"


@pytest.mark.parametrize(
    "column, value",
    [
        ("actor", "cli:mallory"),
        ("at", "2020-01-01T00:00:00Z"),
        ("outcome", "refused"),
        ("agency", None),
        ("action", "test.harmless"),
        ("object", "object-X"),
    ],
)
def test_an_edited_field_is_caught(app: Flask, column: str, value: Any) -> None:
    _fill(app)
    _sql(app, f"UPDATE audit_log SET {column} = :value WHERE seq = 3", value=value)
    assert _verify(app).problems == ["entry 3 was altered: its content no longer matches its hash"]


def test_edited_details_are_caught(app: Flask) -> None:
    _fill(app)
    table = AuditEntry.__table__
    _sql(app, update(table).where(table.c.seq == 3).values(details={"i": 3, "note": "nothing to see"}))
    assert _verify(app).problems == ["entry 3 was altered: its content no longer matches its hash"]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(app: Flask) -> None:
    _fill(app)
    with app.app_context():
        entry = db.session.get(AuditEntry, 3)
        assert entry is not None
        body = audit._body(entry) | {"actor": "cli:mallory"}
        forged = audit._hash(body)
    _sql(app, "UPDATE audit_log SET actor = 'cli:mallory', hash = :h WHERE seq = 3", h=forged)
    assert _verify(app).problems == ["entry 4 does not follow the entry before it (an entry was removed or inserted)"]


def test_a_deleted_entry_is_reported_missing(app: Flask) -> None:
    _fill(app)
    _sql(app, "DELETE FROM audit_log WHERE seq = 4")
    report = _verify(app)
    assert report.problems[0] == "entries 4..4 are missing (deleted)"
    assert "entry 5 does not follow the entry before it (an entry was removed or inserted)" in report.problems
    assert report.size == N - 1


def test_deleted_entries_in_the_middle_name_the_range(app: Flask) -> None:
    _fill(app)
    _sql(app, "DELETE FROM audit_log WHERE seq IN (2, 3)")
    assert _verify(app).problems[0] == "entries 2..3 are missing (deleted)"


def test_deleted_first_entry_is_caught(app: Flask) -> None:
    _fill(app)
    _sql(app, "DELETE FROM audit_log WHERE seq = 1")
    problems = _verify(app).problems
    assert problems[0] == "entries 1..1 are missing (deleted)"


@pytest.mark.parametrize("kept", [N - 1, N - 3, 0])
def test_entries_deleted_at_the_end_are_caught_by_the_head(app: Flask, kept: int) -> None:
    _fill(app)
    _sql(app, "DELETE FROM audit_log WHERE seq > :kept", kept=kept)
    report = _verify(app)
    assert report.problems == [
        f"the log ends at entry {kept} but its head records {N} entries "
        "(entries were deleted at the end, or the head was edited)"
    ]


def test_an_entry_appended_behind_the_heads_back_is_caught(app: Flask) -> None:
    """A well-formed entry N+1 (right prev, right hash) that skipped the head."""
    _fill(app)
    with app.app_context():
        last = db.session.get(AuditEntry, N)
        assert last is not None
        forged = AuditEntry(
            seq=N + 1, at=last.at, actor="cli:mallory", agency=None, action="user.add",
            object="backdoor", outcome="ok", details={}, prev=last.hash,
        )  # fmt: skip
        forged.hash = audit._hash(audit._body(forged))
        row = {c.name: getattr(forged, c.name) for c in AuditEntry.__table__.columns}
    _sql(app, AuditEntry.__table__.insert().values(**row))
    assert _verify(app).problems == [
        f"the log ends at entry {N + 1} but its head records {N} entries "
        "(entries were deleted at the end, or the head was edited)"
    ]


def test_an_edited_head_is_caught(app: Flask) -> None:
    _fill(app)
    _sql(app, "UPDATE audit_head SET size = :n WHERE id = 1", n=N + 2)
    assert len(_verify(app).problems) == 1
    _sql(app, "UPDATE audit_head SET size = :n, head = 'forged' WHERE id = 1", n=N)
    assert "head records" in _verify(app).problems[0]


def test_recording_continues_the_chain_after_a_verify(app: Flask) -> None:
    _fill(app, 3)
    assert _verify(app).ok
    _fill(app, 2)
    report = _verify(app)
    assert report.ok and report.size == 5


# -- the command line ----------------------------------------------------------------------
def _cli_verify(app: Flask) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
    env.update(FIELDSYNC_INSTANCE=app.instance_path, FIELDSYNC_DATABASE_URL=app.config["DATABASE_URL"])
    return subprocess.run(
        [*CLI, "audit", "verify"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_audit_verify_reports_tampering(app: Flask) -> None:
    _fill(app)
    ok = _cli_verify(app)
    assert (ok.returncode, ok.stdout.strip(), ok.stderr) == (0, f"audit log intact: {N} entries", "")

    _sql(app, "UPDATE audit_log SET actor = 'cli:mallory' WHERE seq = 3")
    _sql(app, "DELETE FROM audit_log WHERE seq = :n", n=N)
    bad = _cli_verify(app)
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "entry 3 was altered: its content no longer matches its hash",
        f"the log ends at entry {N - 1} but its head records {N} entries "
        "(entries were deleted at the end, or the head was edited)",
        f"Error: audit log is NOT intact: 2 problem(s) in {N - 1} entries",
    ]
