"""Scheduled jobs (backend/jobs.py): each due job runs once across every process on the database."""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update
from werkzeug.serving import make_server

from backend import create_app, jobs
from backend.db import db
from backend.models import AuditEntry, JobRun
from crypto.clock import as_utc, now


@pytest.fixture
def second_process(app: Flask) -> Iterator[Flask]:
    """Another hub process on the same database: its own app, engine and connections."""
    other = create_app({k: app.config[k] for k in ("DATABASE_URL", "KEK", "SECRET_KEY")} | {"TESTING": True})
    yield other
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A job that records each run (and takes a moment, so that racing processes overlap)."""
    ran: list[str] = []

    def run(moment: datetime) -> dict[str, Any]:
        ran.append(threading.current_thread().name)
        time.sleep(0.2)
        return {"at": moment.isoformat()}

    monkeypatch.setitem(jobs.JOBS, "count", jobs.Job("count", "AUDIT_VERIFY_INTERVAL", run, "test job"))
    return ran


def race(apps: list[Flask], moment: datetime, per_app: int = 3) -> list[str]:
    """``per_app`` threads in each app call run_due for the count job at the same moment."""
    start = threading.Barrier(len(apps) * per_app)
    outcomes: list[str] = []

    def worker(app: Flask) -> None:
        start.wait()
        outcomes.append(jobs.run_due(app, moment=moment, only="count")["count"])

    threads = [
        threading.Thread(target=worker, args=(app,), name=f"p{i}-t{j}")
        for i, app in enumerate(apps)
        for j in range(per_app)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


def test_a_due_job_runs_once_across_processes_and_threads(
    app: Flask, second_process: Flask, counted: list[str]
) -> None:
    moment = now()
    assert race([app, second_process], moment) == ["ran"] + ["skipped"] * 5
    assert len(counted) == 1
    # the same moment again: not due, nobody runs it
    assert race([app, second_process], moment + timedelta(seconds=5)) == ["skipped"] * 6
    # one interval later it is due again, and again runs once
    interval = app.config["AUDIT_VERIFY_INTERVAL"]
    assert race([second_process, app], moment + timedelta(seconds=interval)) == ["ran"] + ["skipped"] * 5
    assert len(counted) == 2
    with app.app_context():
        row = db.session.get(JobRun, "count")
        assert row is not None and row.runs == 2 and row.last_outcome == "ok"
        assert as_utc(row.next_run_at) == moment + timedelta(seconds=2 * interval)


def test_a_failing_job_waits_for_its_next_interval(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[datetime] = []

    def broken(moment: datetime) -> dict[str, Any]:
        calls.append(moment)
        raise RuntimeError("disk full")

    monkeypatch.setitem(jobs.JOBS, "broken", jobs.Job("broken", "JOB_TICK", broken, "always fails"))
    moment = now()
    assert jobs.run_due(app, moment=moment, only="broken") == {"broken": "failed"}
    assert jobs.run_due(app, moment=moment + timedelta(seconds=1), only="broken") == {"broken": "skipped"}
    assert len(calls) == 1  # not retried by every tick of every process
    with app.app_context():
        row = db.session.get(JobRun, "broken")
        assert row is not None and row.last_outcome == "failed"
        assert "disk full" in (row.last_summary or {})["error"]
    tick = app.config["JOB_TICK"]
    assert jobs.run_due(app, moment=moment + timedelta(seconds=tick), only="broken") == {"broken": "failed"}


def test_forcing_a_job_still_claims_it(app: Flask, counted: list[str]) -> None:
    moment = now()
    assert jobs.run_due(app, moment=moment, only="count") == {"count": "ran"}
    assert jobs.run_due(app, moment=moment, only="count", force=True) == {"count": "ran"}
    assert jobs.run_due(app, moment=moment, only="count") == {"count": "skipped"}
    assert len(counted) == 2


def test_the_audit_job_alerts_on_a_broken_chain(app: Flask, hub: Any, caplog: pytest.LogCaptureFixture) -> None:
    hub.agency("SPD")
    hub.agency("CSO")
    hub.agreement("SPD", "CSO", ["resources"])  # audited
    moment = now()
    assert jobs.run_due(app, moment=moment, only="audit-verify") == {"audit-verify": "ran"}
    with app.app_context():
        row = db.session.get(JobRun, "audit-verify")
        assert row is not None and row.last_summary is not None and row.last_summary["ok"] is True
        first = db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).first()
        assert first is not None
        db.session.execute(update(AuditEntry).where(AuditEntry.seq == first.seq).values(actor="someone else"))
        db.session.commit()
    with caplog.at_level(logging.ERROR, logger="fieldsync.hub"):
        later = moment + timedelta(seconds=app.config["AUDIT_VERIFY_INTERVAL"])
        assert jobs.run_due(app, moment=later, only="audit-verify") == {"audit-verify": "ran"}
    assert any("ALERT" in r.getMessage() and "audit log chain is broken" in r.getMessage() for r in caplog.records)
    with app.app_context():
        row = db.session.get(JobRun, "audit-verify")
        assert row is not None and row.last_summary is not None and row.last_summary["ok"] is False
        alert = db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert alert is not None and (alert.action, alert.outcome) == ("audit.broken", "broken")
        assert "altered" in " ".join(alert.details["problems"])


def test_a_served_hub_starts_its_scheduler_on_the_first_request(app: Flask, counted: list[str]) -> None:
    served = create_app(
        {k: app.config[k] for k in ("DATABASE_URL", "KEK", "SECRET_KEY")}
        | {"TESTING": True, "SCHEDULER": True, "JOB_TICK": 1}
    )
    server = make_server("127.0.0.1", 0, served, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)
        assert counted == []  # nothing runs before a request: workers start it after gunicorn's fork
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/healthz", timeout=10) as answer:
            assert answer.status == 200
        deadline = time.monotonic() + 20
        while not counted and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(counted) == 1
    finally:
        server.shutdown()
        thread.join(timeout=10)
        scheduler = served.extensions["fieldsync_scheduler"]
        scheduler.stop()
        with served.app_context():
            db.session.remove()
            db.engine.dispose()


def test_the_session_job_purges_idle_web_sessions(app: Flask) -> None:
    from backend.models import WebSession

    moment = now()
    idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    with app.app_context():
        for sid, seen in (("a" * 64, moment - idle - timedelta(minutes=1)), ("b" * 64, moment)):
            db.session.add(WebSession(id=sid, user_id=None, data={}, created_at=seen, last_seen_at=seen))
        db.session.commit()
    assert jobs.run_due(app, moment=moment, only="sessions-purge") == {"sessions-purge": "ran"}
    with app.app_context():
        assert [s.id for s in db.session.scalars(select(WebSession))] == ["b" * 64]
        row = db.session.get(JobRun, "sessions-purge")
        assert row is not None and row.last_summary == {"purged": 1}
