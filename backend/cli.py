"""``fieldsync-hub``: the hub administrator's command line.

Each command opens the app, calls one backend function, commits, and prints
a short answer; a HubError becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click
from flask import Flask
from sqlalchemy import make_url, select
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from crypto.clock import as_utc

from . import agencies, agreements, audit, create_app, enroll, jobs, keystore, schema, users
from .db import db
from .errors import HubError, NotFound, Unprocessable
from .models import Agency, AgencyKey, Agreement, Device, Equivocation, HubKey, LogHead

ACTOR = f"cli:{getpass.getuser()}"


def _app() -> Flask:
    return create_app()


def hub_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run inside an app context; turn hub errors into one clear line."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        app = _app()
        with app.app_context():
            try:
                result = fn(*args, **kwargs)
                db.session.commit()
                return result
            except HubError as exc:
                db.session.rollback()
                raise click.ClickException(exc.message) from None
            except (OperationalError, ProgrammingError) as exc:
                db.session.rollback()
                raise click.ClickException(_database_problem(exc)) from None
            finally:
                # a command run in-process (tests, benchmarks) must not leave its connections open
                db.session.remove()
                for engine in db.engines.values():
                    engine.dispose()

    return wrapper


def _database_problem(exc: DBAPIError) -> str:
    """One line for a database that is missing its tables or cannot be reached."""
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    if "no such table" in detail or ("relation" in detail and "does not exist" in detail):
        return f"the hub database at {_database()} is not initialized: run `fieldsync-hub init` first"
    return f"the hub database at {_database()} cannot be used ({detail}); check FIELDSYNC_DATABASE_URL"


def _database() -> str:
    """The database URL to show: never its password."""
    from flask import current_app

    return make_url(current_app.config["DATABASE_URL"]).render_as_string(hide_password=True)


def _emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    Console().print(table)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Administer a fieldsync hub: agencies and keys, devices, agreements, users, audit."""


@main.command()
@click.option("--admin", "admin_name", default="admin", show_default=True, help="Name of the first admin account.")
@hub_command
def init(admin_name: str) -> None:
    """Create the database, the keys and the first admin account (safe to re-run: applies migrations)."""
    from flask import current_app

    instance = Path(current_app.instance_path)
    config_file = instance / "config.py"
    if not current_app.config.get("SECRET_KEY") and not config_file.exists():
        fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"SECRET_KEY = {secrets.token_urlsafe(48)!r}\n")
    kek_source = keystore.ensure_kek()
    schema.upgrade()
    if db.session.get(LogHead, 1) is None:
        db.session.add(LogHead(id=1, size=0, head=None))
    if db.session.scalar(select(HubKey)) is not None:
        db.session.commit()
        click.echo(f"hub already initialized; schema is up to date ({_database()})")
        return
    password = os.environ.get("FIELDSYNC_ADMIN_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise HubError("set FIELDSYNC_ADMIN_PASSWORD or run init in a terminal to choose the admin password")
        password = click.prompt(f"password for {admin_name}", hide_input=True, confirmation_prompt=True)
    keystore.create_hub_key()
    users.add_user(admin_name, "admin", password, actor=ACTOR)
    audit.record("hub.init", actor=ACTOR, details={"kek": "environment" if kek_source == "FIELDSYNC_KEK" else "file"})
    click.echo(f"hub initialized: database {_database()}")
    click.echo(f"key-encryption key: {kek_source}")
    click.echo(f"admin account: {admin_name}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Development server. Production: gunicorn "backend:create_app()"."""
    _app().run(host=host, port=port, debug=False, use_reloader=False, threaded=True)


# -- agencies -------------------------------------------------------------
@main.group()
def agency() -> None:
    """Agencies and their keys."""


@agency.command("create")
@click.argument("code")
@click.option("--name", required=True, help="Full name, e.g. 'Springfield Police Department'.")
@hub_command
def agency_create(code: str, name: str) -> None:
    """Create an agency and its key."""
    if not name.strip():
        raise Unprocessable("--name must not be empty")
    agencies.create(code, name, actor=ACTOR)
    click.echo(f"agency {code} created; key {keystore._current_row(code).public_key[:16]}…")


@agency.command("rotate-key")
@click.argument("code")
@hub_command
def agency_rotate(code: str) -> None:
    """Rotate an agency's key (the new key is signed by the old; old signatures stay valid)."""
    row = agencies.rotate_key(code, actor=ACTOR)
    click.echo(f"agency {code} key rotated; new key {row.public_key[:16]}…")


@agency.command("list")
@click.option("--json", "as_json", is_flag=True)
@hub_command
def agency_list(as_json: bool) -> None:
    """List agencies."""
    rows = []
    for a in db.session.scalars(select(Agency).order_by(Agency.code)):
        key = db.session.scalar(select(AgencyKey).where(AgencyKey.agency == a.code, AgencyKey.retired_at.is_(None)))
        devices = db.session.query(Device).filter(Device.agency == a.code).count()
        rows.append(
            {
                "code": a.code,
                "name": a.name,
                "key": key.public_key if key else None,
                "devices": devices,
                "created_at": as_utc(a.created_at).isoformat(),
            }
        )
    _emit(rows, as_json, ["code", "name", "key", "devices"])


# -- devices --------------------------------------------------------------
@main.group()
def device() -> None:
    """Enrollment tokens, devices, revocation."""


@device.command("token")
@click.argument("agency_code", metavar="AGENCY")
@click.option("--officer", required=True, help="Officer the laptop is issued to.")
@click.option("--ttl", type=click.IntRange(60, 30 * 86400), default=None, help="Seconds the token stays valid.")
@hub_command
def device_token(agency_code: str, officer: str, ttl: int | None) -> None:
    """Print a one-time enrollment token."""
    click.echo(enroll.issue_token(agency_code, officer, actor=ACTOR, ttl=ttl))


@device.command("revoke")
@click.argument("device_id")
@click.option("--reason", default="", help="Why (lost, stolen, reassigned...).")
@hub_command
def device_revoke(device_id: str, reason: str) -> None:
    """Revoke a device: the hub refuses it at once; its feed is cut at its last accepted change."""
    dev = enroll.revoke(device_id, actor=ACTOR, reason=reason)
    click.echo(f"device {dev.id} ({dev.officer}, {dev.agency}) revoked after seq {dev.revoked_after_seq}")


@device.command("list")
@click.option("--agency", "agency_code", default=None)
@click.option("--json", "as_json", is_flag=True)
@hub_command
def device_list(agency_code: str | None, as_json: bool) -> None:
    """List devices."""
    query = select(Device).order_by(Device.agency, Device.enrolled_at)
    if agency_code:
        query = query.where(Device.agency == agency_code)
    rows = [
        {
            "id": d.id,
            "agency": d.agency,
            "officer": d.officer,
            "status": d.status,
            "feed_seq": d.feed_seq,
            "last_seen_at": as_utc(d.last_seen_at).isoformat() if d.last_seen_at else None,
        }
        for d in db.session.scalars(query)
    ]
    _emit(rows, as_json, ["id", "agency", "officer", "status", "feed_seq", "last_seen_at"])


@device.command("proof")
@click.argument("device_id")
@hub_command
def device_proof(device_id: str) -> None:
    """The proof a device was quarantined on: both signed changes at each seq where it equivocated
    (JSON, verifiable offline: each change carries its signature)."""
    if db.session.get(Device, device_id) is None:
        raise NotFound(f"no device {device_id}")
    found = db.session.scalars(
        select(Equivocation).where(Equivocation.device == device_id).order_by(Equivocation.id)
    ).all()
    proof = [
        {
            "seq": e.seq,
            "detected_at": as_utc(e.detected_at).isoformat(),
            "held": e.held,
            "offered": e.offered,
        }
        for e in found
    ]
    click.echo(json.dumps(proof, indent=2))


# -- agreements -------------------------------------------------------------
@main.group()
def agreement() -> None:
    """Sharing agreements between agencies."""


@agreement.command("add")
@click.option("--from", "from_agency", required=True, help="Agency whose records are shared.")
@click.option("--to", "to_agency", required=True, help="Agency that may see them.")
@click.option("--collections", required=True, help="Comma-separated: resources,contacts,reservations.")
@click.option(
    "--withhold",
    multiple=True,
    help="A field the receiving agency sees only as a digest (repeatable, or comma-separated).",
)
@click.option(
    "--write", multiple=True, help="A field the receiving agency may change (repeatable, or comma-separated)."
)
@hub_command
def agreement_add(
    from_agency: str, to_agency: str, collections: str, withhold: tuple[str, ...], write: tuple[str, ...]
) -> None:
    """Let one agency see (and optionally write) another's records."""
    chosen = _items((collections,))
    agreements.add(from_agency, to_agency, chosen, _items(withhold), _items(write), actor=ACTOR)
    click.echo(f"agreement added: {to_agency} sees {from_agency}'s {', '.join(chosen)}")


def _items(values: tuple[str, ...]) -> list[str]:
    """``--withhold notes --withhold phone`` and ``--withhold notes,phone`` mean the same."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


@agreement.command("remove")
@click.option("--from", "from_agency", required=True)
@click.option("--to", "to_agency", required=True)
@hub_command
def agreement_remove(from_agency: str, to_agency: str) -> None:
    """End an agreement (already-pulled copies stay on laptops; nothing new is shared)."""
    agreements.remove(from_agency, to_agency, actor=ACTOR)
    click.echo(f"agreement from {from_agency} to {to_agency} removed")


@agreement.command("list")
@click.option("--json", "as_json", is_flag=True)
@hub_command
def agreement_list(as_json: bool) -> None:
    """List agreements."""
    rows = [
        {
            "from": a.from_agency,
            "to": a.to_agency,
            "collections": ",".join(a.collections),
            "withhold": ",".join(a.withhold),
            "write": ",".join(a.write),
        }
        for a in db.session.scalars(select(Agreement).order_by(Agreement.from_agency, Agreement.to_agency))
    ]
    _emit(rows, as_json, ["from", "to", "collections", "withhold", "write"])


# -- users & audit ------------------------------------------------------------
@main.group()
def user() -> None:
    """Web view accounts."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(users.ROLES), required=True)
@hub_command
def user_add(name: str, role: str) -> None:
    """Add a staff or admin account (password from FIELDSYNC_USER_PASSWORD, else prompted)."""
    password = os.environ.get("FIELDSYNC_USER_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise HubError("set FIELDSYNC_USER_PASSWORD or run in a terminal to choose the password")
        password = click.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    users.add_user(name, role, password, actor=ACTOR)
    click.echo(f"user {name} added ({role})")


@user.command("remove")
@click.argument("name")
@hub_command
def user_remove(name: str) -> None:
    """Remove an account; its web sessions end at once."""
    users.remove_user(name, actor=ACTOR)
    click.echo(f"user {name} removed")


@user.command("list")
@click.option("--json", "as_json", is_flag=True)
@hub_command
def user_list(as_json: bool) -> None:
    """List web view accounts."""
    rows = [
        {"name": u.name, "role": u.role, "created_at": as_utc(u.created_at).isoformat()} for u in users.list_users()
    ]
    _emit(rows, as_json, ["name", "role", "created_at"])


@main.group("audit")
def audit_group() -> None:
    """The hash-chained audit log."""


@audit_group.command("verify")
@hub_command
def audit_verify() -> None:
    """Check that no audit entry was edited, removed or inserted."""
    report = audit.verify()
    if not report.ok:
        for problem in report.problems:
            click.echo(problem, err=True)
        raise HubError(f"audit log is NOT intact: {len(report.problems)} problem(s) in {report.size} entries")
    click.echo(f"audit log intact: {report.size} entries")


# -- the change log ------------------------------------------------------------
@main.group("log")
def log_group() -> None:
    """The change log that laptops pull, and its signed head."""


@log_group.command("head")
@click.option("--json", "as_json", is_flag=True)
@hub_command
def log_head(as_json: bool) -> None:
    """The log's size and head hash, as the hub signs them in every checkpoint.

    After a restore from backup (or a move) laptops that saw a longer or another history stop
    with ROLLBACK or FORK; read these values here, on the hub itself, and give them to each
    officer for `fieldsync accept-hub --size N --head HEAD`."""
    head = db.session.get(LogHead, 1)
    size, value = (head.size, head.head) if head is not None else (0, None)
    if as_json:
        click.echo(json.dumps({"size": size, "head": value}))
    else:
        click.echo(f"size {size} head {value}")


# -- scheduled jobs -----------------------------------------------------------
@main.group("jobs")
def jobs_group() -> None:
    """Scheduled jobs (each runs once per interval across all hub processes)."""


@jobs_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@hub_command
def jobs_list(as_json: bool) -> None:
    """Every job, its interval and its last run."""
    from flask import current_app

    seen = {row.name: row for row in jobs.runs()}
    rows = []
    for job in jobs.JOBS.values():
        row = seen.get(job.name)
        rows.append(
            {
                "name": job.name,
                "every_s": current_app.config[job.interval_setting],
                "last_outcome": row.last_outcome if row else None,
                "last_finished_at": as_utc(row.last_finished_at).isoformat() if row and row.last_finished_at else None,
                "next_run_at": as_utc(row.next_run_at).isoformat() if row else None,
                "runs": row.runs if row else 0,
                "summary": row.last_summary if row else None,
                "help": job.help,
            }
        )
    _emit(rows, as_json, ["name", "every_s", "last_outcome", "last_finished_at", "next_run_at", "runs"])


@jobs_group.command("run")
@click.argument("name")
@hub_command
def jobs_run(name: str) -> None:
    """Run one job now (it then runs again one interval later)."""
    from flask import current_app

    if name not in jobs.JOBS:
        raise NotFound(f"no job {name!r}; jobs: {', '.join(jobs.JOBS)}")
    outcome = jobs.run_due(current_app._get_current_object(), only=name, force=True)[name]  # type: ignore[attr-defined]
    summary = next((row.last_summary for row in jobs.runs() if row.name == name), None)
    if outcome != "ran":
        raise HubError(f"job {name} {outcome}: {summary}")
    click.echo(f"job {name} ran: {json.dumps(summary, default=str)}")


if __name__ == "__main__":  # pragma: no cover
    main()
