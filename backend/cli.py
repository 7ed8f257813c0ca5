"""``fieldsync-hub``: the hub administrator's command line.

Rules this module owns:

- Each command opens the app, calls library functions (backend.bootstrap,
  agencies, devices, enroll, agreements, users, audit, log, jobs), commits,
  and prints a short answer: text, or ``--json`` for lists. It holds no model
  query and calls no private name of another module
  (tests/backend/test_cli.py reads this module to hold it to that), so the
  admin pages and the CLI share one path.
- A HubError becomes one line on stderr and exit status 1; so does a database
  that is missing its tables or cannot be reached, naming the database
  without its password.
- Passwords come from the environment or a terminal prompt, never from an
  option (they would stay in the shell's history).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from flask import Flask
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from crypto.clock import as_utc

from . import agencies, agreements, audit, bootstrap, create_app, devices, enroll, jobs, keystore, log, users
from .db import db
from .errors import HubError, Unprocessable

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


def _password(variable: str, account: str, otherwise: str) -> str:
    """A new account's password: from ``variable`` (scripts), else asked twice in a terminal."""
    secret = os.environ.get(variable)
    if secret is None:
        if not sys.stdin.isatty():
            raise HubError(f"set {variable} or {otherwise}")
        secret = click.prompt(f"password for {account}", hide_input=True, confirmation_prompt=True)
    return secret


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

    def password() -> str:
        return _password("FIELDSYNC_ADMIN_PASSWORD", admin_name, "run init in a terminal to choose the admin password")

    done = bootstrap.initialize(admin_name, password, actor=ACTOR)
    if done.already:
        click.echo(f"hub already initialized; schema is up to date ({_database()})")
        return
    click.echo(f"hub initialized: database {_database()}")
    click.echo(f"key-encryption key: {done.kek_source}")
    click.echo(f"admin account: {done.admin}")


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
    click.echo(f"agency {code} created; key {keystore.current_agency_key(code).public_key[:16]}…")


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
    rows = [
        {"code": a.code, "name": a.name, "key": a.key, "devices": a.devices, "created_at": a.created_at.isoformat()}
        for a in agencies.overview()
    ]
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
    rows = [
        {
            "id": d.id,
            "agency": d.agency,
            "officer": d.officer,
            "status": d.status,
            "feed_seq": d.feed_seq,
            "last_seen_at": as_utc(d.last_seen_at).isoformat() if d.last_seen_at else None,
        }
        for d in devices.listing(agency_code)
    ]
    _emit(rows, as_json, ["id", "agency", "officer", "status", "feed_seq", "last_seen_at"])


@device.command("proof")
@click.argument("device_id")
@hub_command
def device_proof(device_id: str) -> None:
    """The proof a device was quarantined on: both signed changes at each seq where it equivocated
    (JSON, verifiable offline: each change carries its signature)."""
    click.echo(json.dumps(devices.proof(device_id), indent=2))


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
        for a in agreements.listing()
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
    password = _password("FIELDSYNC_USER_PASSWORD", name, "run in a terminal to choose the password")
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
    head = log.read_head()
    size, value = head.size, head.head
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
    rows = [
        {
            "name": job.name,
            "every_s": job.every_s,
            "last_outcome": job.last_outcome,
            "last_finished_at": job.last_finished_at.isoformat() if job.last_finished_at else None,
            "next_run_at": job.next_run_at.isoformat() if job.next_run_at else None,
            "runs": job.runs,
            "summary": job.summary,
            "help": job.help,
        }
        for job in jobs.status()
    ]
    _emit(rows, as_json, ["name", "every_s", "last_outcome", "last_finished_at", "next_run_at", "runs"])


@jobs_group.command("run")
@click.argument("name")
@hub_command
def jobs_run(name: str) -> None:
    """Run one job now (it then runs again one interval later)."""
    outcome, summary = jobs.run_now(name)
    if outcome != "ran":
        raise HubError(f"job {name} {outcome}: {summary}")
    click.echo(f"job {name} ran: {json.dumps(summary, default=str)}")


if __name__ == "__main__":  # pragma: no cover
    main()
