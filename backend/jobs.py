"""Scheduled jobs: run once across every hub process that shares the database.

Rules this module owns:

- Several hub processes (gunicorn workers, several machines) each run an
  APScheduler ``BackgroundScheduler`` that wakes every ``JOB_TICK`` seconds and
  calls :func:`run_due`. Whichever process first *claims* a due job runs it;
  the others see it claimed and skip it. The claim is one conditional UPDATE
  of the job's ``job_runs`` row (``... WHERE name = :name AND next_run_at <=
  :now``): PostgreSQL's row lock makes a second claimer wait and then match
  nothing; on SQLite every transaction is ``BEGIN IMMEDIATE`` (backend/db.py),
  so claims queue. So a job runs once per interval, never twice, whatever the
  number of processes.
- The claim commits before the job runs: a job that fails (or a process
  killed while running one) is retried at its next interval, not by every
  process at once. Each run's outcome is kept on its row (``fieldsync-hub
  jobs list``).
- The scheduler starts on a process's first request, never at import or in
  ``create_app``: gunicorn forks workers after loading the app, and threads do
  not survive a fork; the administrator's CLI commands never start one.
  ``FIELDSYNC_SCHEDULER=0`` turns it off; test configs run no scheduler unless
  they ask for one.
- Jobs are small functions ``job(now) -> summary`` registered in :data:`JOBS`
  with their interval setting; they run in an app context with a fresh
  session and write through the same services as everything else.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from crypto.clock import as_utc
from crypto.clock import now as hub_now

from . import audit
from .db import db
from .errors import NotFound
from .models import JobRun

logger = logging.getLogger("fieldsync.hub")
WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    interval_setting: str  # a setting in backend.settings, in seconds
    run: Callable[[datetime], dict[str, Any]]
    help: str


def verify_audit_chain(moment: datetime) -> dict[str, Any]:
    """Walk the audit chain; a break is an alert in the hub's log, an ``audit.broken`` entry of its
    own (at every run while the chain stays broken) and this job's outcome (``fieldsync-hub jobs list``).
    The audit page and ``fieldsync-hub audit verify`` (exit 1) show the same break to an administrator."""
    report = audit.verify()
    if not report.ok:
        logger.error("ALERT: the audit log chain is broken: %s", "; ".join(report.problems[:3]))
        audit.record(
            "audit.broken",
            actor="hub:scheduler",
            outcome="broken",
            details={"entries": report.size, "problems": report.problems[:20]},
        )
    return {"entries": report.size, "ok": report.ok, "problems": len(report.problems)}


def purge_web_sessions(moment: datetime) -> dict[str, Any]:
    """Delete web sessions idle past the limit, logged-in or not (the banner's visitors too)."""
    from .auth import sessions

    return {"purged": sessions.purge_idle(current_app._get_current_object())}  # type: ignore[attr-defined]


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "audit-verify",
            "AUDIT_VERIFY_INTERVAL",
            verify_audit_chain,
            "re-verify the whole audit hash chain; alert when it is broken",
        ),
        Job(
            "sessions-purge",
            "SESSION_PURGE_INTERVAL",
            purge_web_sessions,
            "delete web sessions idle past FIELDSYNC_SESSION_IDLE_MINUTES",
        ),
    )
}


def register(job: Job) -> None:
    """Add a job (other hub modules register theirs at import)."""
    JOBS[job.name] = job


def _claim(name: str, moment: datetime, interval: int) -> bool:
    """Take the job for this run, or learn that another process has it (or it is not due)."""
    claimed = db.session.execute(
        update(JobRun)
        .where(JobRun.name == name, JobRun.next_run_at <= moment)
        .values(next_run_at=moment + timedelta(seconds=interval), last_started_at=moment, worker=WORKER)
    ).rowcount
    if claimed == 0 and db.session.get(JobRun, name) is None:
        try:
            with db.session.begin_nested():
                db.session.add(
                    JobRun(
                        name=name,
                        next_run_at=moment + timedelta(seconds=interval),
                        last_started_at=moment,
                        worker=WORKER,
                        runs=0,
                    )
                )
            claimed = 1
        except IntegrityError:  # another process created it first, and so has this run
            claimed = 0
    db.session.commit()
    return bool(claimed)


def _finish(name: str, outcome: str, summary: dict[str, Any]) -> None:
    row = db.session.get(JobRun, name)
    if row is not None:
        row.last_outcome = outcome
        row.last_summary = summary
        row.last_finished_at = hub_now()
        row.runs = (row.runs or 0) + 1
    db.session.commit()


def run_due(
    app: Flask, *, moment: datetime | None = None, only: str | None = None, force: bool = False
) -> dict[str, str]:
    """Run every due job this process manages to claim; answer job name -> outcome (ran/failed/skipped).

    ``force`` makes the job due now first (``fieldsync-hub jobs run``); it is still claimed, so a
    scheduler running the same job at that moment does not run it a second time.
    """
    outcomes: dict[str, str] = {}
    with app.app_context():
        for job in list(JOBS.values()):
            if only is not None and job.name != only:
                continue
            at = moment or hub_now()
            if force:
                db.session.execute(update(JobRun).where(JobRun.name == job.name).values(next_run_at=at))
            if not _claim(job.name, at, int(app.config[job.interval_setting])):
                outcomes[job.name] = "skipped"
                continue
            try:
                summary = job.run(at)
            except Exception as exc:
                db.session.rollback()
                logger.exception("scheduled job %s failed", job.name)
                _finish(job.name, "failed", {"error": f"{type(exc).__name__}: {exc}"[:500]})
                outcomes[job.name] = "failed"
            else:
                _finish(job.name, "ok", summary)
                outcomes[job.name] = "ran"
            finally:
                db.session.remove()
    return outcomes


def runs() -> list[JobRun]:
    return list(db.session.scalars(select(JobRun).order_by(JobRun.name)))


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One registered job as ``fieldsync-hub jobs list`` shows it (its run row's fields, or none yet)."""

    name: str
    every_s: Any  # the interval setting as configured, in seconds
    last_outcome: str | None
    last_finished_at: datetime | None
    next_run_at: datetime | None
    runs: int
    summary: dict[str, Any] | None
    help: str


def status() -> list[JobStatus]:
    """Every registered job, its interval (this app's setting) and its last run."""
    seen = {row.name: row for row in runs()}
    out = []
    for job in JOBS.values():
        row = seen.get(job.name)
        out.append(
            JobStatus(
                job.name,
                current_app.config[job.interval_setting],
                row.last_outcome if row else None,
                as_utc(row.last_finished_at) if row and row.last_finished_at else None,
                as_utc(row.next_run_at) if row else None,
                row.runs if row else 0,
                row.last_summary if row else None,
                job.help,
            )
        )
    return out


def run_now(name: str) -> tuple[str, dict[str, Any] | None]:
    """Run one job now, claimed like any run (``fieldsync-hub jobs run``): its outcome and summary."""
    if name not in JOBS:
        raise NotFound(f"no job {name!r}; jobs: {', '.join(JOBS)}")
    outcome = run_due(current_app._get_current_object(), only=name, force=True)[name]  # type: ignore[attr-defined]
    summary = next((row.last_summary for row in runs() if row.name == name), None)
    return outcome, summary


class _Scheduler:
    """One BackgroundScheduler per process, started once, on the first request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: Any = None

    def start(self, app: Flask) -> None:
        if self._started is not None:
            return
        with self._lock:
            if self._started is not None:
                return
            from apscheduler.schedulers.background import BackgroundScheduler

            scheduler = BackgroundScheduler(daemon=True)
            scheduler.add_job(
                run_due,
                "interval",
                args=[app],
                seconds=int(app.config["JOB_TICK"]),
                id="fieldsync-jobs",
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now(),
            )
            scheduler.start()
            self._started = scheduler
            logger.info("scheduler started in %s (tick %s s)", WORKER, app.config["JOB_TICK"])

    def stop(self) -> None:
        """Stop this process's scheduler, waiting for a running job to finish."""
        with self._lock:
            if self._started is not None:
                self._started.shutdown(wait=True)
                self._started = None


def init_app(app: Flask) -> None:
    if not app.config.get("SCHEDULER"):
        return
    scheduler = _Scheduler()
    app.extensions["fieldsync_scheduler"] = scheduler

    @app.before_request
    def _start_scheduler() -> None:
        scheduler.start(app)
