"""Attacks on the audit log itself: an entry edited, deleted or inserted behind the hub's back is named,
raises the alarm, and the hub keeps auditing (see test_attacks.py)."""

# ruff: noqa: F811 - the hub fixtures of tests/backend/conftest.py are imported, then named as arguments
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from backend import audit, jobs
from backend.db import db
from backend.models import AuditEntry, JobRun
from tests.backend.conftest import app, database_url, hub, live  # noqa: F401 - fixtures
from tests.backend.helpers import Hub, sign_as

from .adversary import (
    accepted,
    partners,
    push,
)

EXE = Path(sys.executable).with_name("fieldsync-hub")
HUB_CLI = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "backend.cli"]


# -- 9. the audit log itself ---------------------------------------------------------------------


def _hub_cli(app: Flask, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
    env.update(FIELDSYNC_INSTANCE=app.instance_path, FIELDSYNC_DATABASE_URL=app.config["DATABASE_URL"])
    return subprocess.run(
        [*HUB_CLI, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False
    )


def _sql(app: Flask, statement: str, **params: Any) -> None:
    with app.app_context():
        db.session.execute(text(statement), params)
        db.session.commit()
        db.session.remove()


def _problems(app: Flask) -> list[str]:
    with app.app_context():
        problems = audit.verify().problems
        db.session.remove()
    return problems


@pytest.mark.parametrize("tamper", ["edited", "deleted", "inserted"])
def test_a_tampered_audit_log_is_named_and_raises_an_alarm(app: Flask, hub: Hub, live: str, tamper: str) -> None:
    lee, _, _ = partners(hub, live)
    forged = sign_as(lee)
    forged["fields"]["name"]["value"] = "Unit 99"
    assert push(live, lee, forged)[0]["status"] == "rejected"  # the evidence someone wants gone
    assert accepted(push(live, lee, lee.create()))
    hub.token("SPD", "Ofc. Pat")  # one more entry after it
    with app.app_context():
        (target,) = db.session.scalars(select(AuditEntry.seq).where(AuditEntry.action == "change.rejected"))
        size = len(list(db.session.scalars(select(AuditEntry.seq))))
        db.session.remove()
    if tamper == "edited":  # the rejection now blames someone else
        _sql(app, "UPDATE audit_log SET actor = 'device:someone-else' WHERE seq = :s", s=target)
        expected = [f"entry {target} was altered: its content no longer matches its hash"]
    elif tamper == "deleted":
        _sql(app, "DELETE FROM audit_log WHERE seq = :s", s=target)
        expected = [
            f"entries {target}..{target} are missing (deleted)",
            f"entry {target + 1} does not follow the entry before it (an entry was removed or inserted)",
        ]
    else:  # a well-formed entry (right prev, right hash) slipped in after the last one, behind the head's back
        with app.app_context():
            last = db.session.get(AuditEntry, size)
            assert last is not None
            row = {c.name: getattr(last, c.name) for c in AuditEntry.__table__.columns}
            row |= {
                "seq": size + 1,
                "actor": "user:mallory",
                "action": "user.add",
                "object": "backdoor",
                "prev": last.hash,
            }
            body = {
                k: row[k] for k in ("seq", "at", "actor", "agency", "action", "object", "outcome", "details", "prev")
            }
            row["hash"] = audit._hash(body)
            db.session.execute(AuditEntry.__table__.insert().values(**row))
            db.session.commit()
            db.session.remove()
        expected = [
            f"the log ends at entry {size + 1} but its head records {size} entries "
            "(entries were deleted at the end, or the head was edited)"
        ]
    assert _problems(app) == expected
    if tamper == "edited":  # the administrator's command names it and fails (one process is enough)
        cli = _hub_cli(app, "audit", "verify")
        assert cli.returncode == 1 and cli.stdout == ""
        assert cli.stderr.splitlines() == [*expected, f"Error: audit log is NOT intact: 1 problem(s) in {size} entries"]
    # the scheduled check raises the alarm: an audit entry of its own, and the job's outcome
    assert jobs.run_due(app, only="audit-verify", force=True) == {"audit-verify": "ran"}
    with app.app_context():
        alarm = db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        run = db.session.get(JobRun, "audit-verify")
        assert alarm is not None and (alarm.action, alarm.outcome, alarm.actor) == (
            "audit.broken",
            "broken",
            "hub:scheduler",
        )
        assert alarm.details["problems"] == expected
        assert run is not None and run.last_summary is not None and run.last_summary["ok"] is False
        db.session.remove()
    # the alarm is itself a sound link: the break is still named, and nothing else is
    if tamper == "inserted":  # the alarm links to the head the hub wrote, past the intruder
        expected = [f"entries {size + 1}..{size + 1} were inserted: entry {size + 2} links to entry {size}"]
    after = _problems(app)
    assert after == expected
    # and the hub keeps working: attacks after the tampering are still refused and audited
    second = sign_as(lee)
    second["signature"] = "A" * 86
    assert push(live, lee, second)[0]["status"] == "rejected"
    with app.app_context():
        last = db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert last is not None and (last.action, last.object) == ("change.rejected", second["id"])
        db.session.remove()
    assert _problems(app) == after
