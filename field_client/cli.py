"""``fieldsync``: the officer's command line, a thin layer over field_client.

Each command opens the replica, calls one library function and turns a
domain error into one clear line on stderr with a non-zero exit status.

The arguments' own checks and the one-line error rule are in field_client.arguments.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

import click
import sqlcipher3

from crypto import SigningKey
from crypto.errors import CryptoError
from sync import SyncError

from . import agent, edits, hubtrust, inputs, overview, recovery, replica, settings, state
from .arguments import OneLineErrors, check_home, check_hub, check_token, first_missing, one_line
from .bundle import verify_bundle
from .device import Device, enroll_into
from .errors import ClientError, EditRefused
from .transport import HubClient

COLLECTION_OF = {"resource": "resources", "contact": "contacts", "reservation": "reservations"}
COLUMNS = {
    "resources": ["id", "agency", "kind", "name", "status", "quantity"],
    "contacts": ["id", "agency", "name", "role", "phone", "radio", "jurisdiction"],
    "reservations": ["id", "agency", "resource_id", "starts_at", "ends_at", "state"],
}


def passphrase(confirm: bool = False) -> str:
    value = settings.passphrase()
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise click.ClickException("set FIELDSYNC_PASSPHRASE or run in a terminal to type the passphrase")
    return str(click.prompt("Replica passphrase", hide_input=True, confirmation_prompt=confirm))


def describe(exc: EditRefused) -> str:
    """One line: the refusal, then each field's messages."""

    def flat(messages: Any) -> str:
        if isinstance(messages, dict):
            return ", ".join(
                f"{k}.{flat(v)}" if isinstance(v, dict) else f"{k}: {flat(v)}" for k, v in messages.items()
            )
        return "; ".join(map(str, messages)) if isinstance(messages, list) else str(messages)

    return f"{exc}: {flat(exc.messages)}" if exc.messages else str(exc)


def clear_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EditRefused as exc:
            raise click.ClickException(one_line(describe(exc))) from None
        except (ClientError, SyncError, CryptoError, ValueError) as exc:
            raise click.ClickException(one_line(str(exc))) from None
        except sqlcipher3.DatabaseError as exc:  # a page that fails its HMAC, read after the open's checks
            raise click.ClickException(
                one_line(
                    f"the replica is damaged ({exc}); nothing more was written. Keep the folder as it is for "
                    "recovery and tell your administrator (`fieldsync check` reports what is wrong)"
                )
            ) from None
        except OSError as exc:  # the home folder or a file named on the command line: unreadable, full disk...
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(one_line(f"{where}{exc.strerror or exc}")) from None

    return wrapper


@contextmanager
def opened(ctx: click.Context) -> Iterator[Device]:
    rep = replica.Replica.open(ctx.obj["home"], passphrase())
    try:
        device = Device(rep)
        closed = overview.feed_closed(device)
        if closed and ctx.info_name not in ("sync", "status", "add", "update", "delete"):  # these say it themselves
            click.echo(f"WARNING: {closed}", err=True)
        yield device
    finally:
        rep.close()


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    default=settings.home,
    callback=check_home,
    show_default="$FIELDSYNC_HOME or ~/.fieldsync",
    help="Folder of this laptop's encrypted replica.",
)
@click.pass_context
def main(ctx: click.Context, home: str) -> None:
    """fieldsync for officers: shared resources and contacts, offline first."""
    ctx.obj = {"home": home}


@main.command()
@click.option("--hub", required=True, callback=check_hub, help="Hub address, e.g. https://hub.example.org")
@click.option("--token", required=True, callback=check_token, help="One-time enrollment token from your administrator.")
@click.pass_context
@clear_errors
def enroll(ctx: click.Context, hub: str, token: str) -> None:
    """Enroll this laptop with the hub (once)."""
    home = ctx.obj["home"]
    if replica.exists(home):
        raise click.ClickException(f"this laptop is already enrolled (replica in {home})")
    secret = passphrase(confirm=True)
    key = SigningKey.generate()
    created = first_missing(Path(home))  # what a failed enrollment must take away again, parents included
    try:
        # the replica first: a passphrase it refuses must not spend the one-time token at the hub
        with replica.Replica.create(home, secret) as rep:
            answer = HubClient(hub).enroll(token, key.verify_key.to_text())
            enroll_into(rep, hub_url=hub, key=key, answer=answer)
    except BaseException:
        for name in (replica.DB_NAME, replica.HEADER_NAME, replica.DB_NAME + "-wal", replica.DB_NAME + "-shm"):
            Path(home, name).unlink(missing_ok=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    click.echo(f"enrolled as {answer['officer']} of {answer['agency']}; device {answer['device_id']}")


def _coerce(collection: str, assignments: tuple[str, ...], clear: tuple[str, ...]) -> dict[str, Any]:
    """Turn --set FIELD=VALUE text into the field's JSON type (field_client.inputs); --clear FIELD into null."""
    texts: dict[str, str] = {}
    for item in assignments:
        name, sep, text = item.partition("=")
        if not sep:
            raise EditRefused(f"--set takes FIELD=VALUE, got {inputs.shown(item)}")
        texts[name] = text
    values = inputs.parse_texts(collection, texts)
    for name in clear:
        values[name] = None
    return values


def _print_record(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        click.echo(f"{record.get('collection', '')[:-1]} {record['id']}")
        for key, value in record.items():
            if key not in ("id", "collection"):
                click.echo(f"  {key}: {value}")


def _list(ctx: click.Context, collection: str, as_json: bool, deleted: bool) -> None:
    with opened(ctx) as device:
        rows = state.list_records(device.replica, collection, include_deleted=deleted)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*COLUMNS[collection], title=f"{collection} ({len(rows)})")
    for row in rows:
        table.add_row(*(str(row.get(c, "")) if row.get(c) is not None else "" for c in COLUMNS[collection]))
    Console().print(table)


def _collection_group(noun: str) -> click.Group:
    collection = COLLECTION_OF[noun]

    @click.group(name=noun, help=f"Add, change and list {collection}.")
    def group() -> None:
        pass

    set_option = click.option("--set", "assignments", multiple=True, metavar="FIELD=VALUE", help="Set any field.")
    clear_option = click.option("--clear", multiple=True, metavar="FIELD", help="Empty a field.")
    json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

    if collection == "resources":
        named = [
            click.option("--kind", help="vehicle, equipment, personnel, facility, training, other"),
            click.option("--name"),
            click.option("--status", help="available, deployed, maintenance, out_of_service"),
        ]
    elif collection == "contacts":
        named = [
            click.option("--name"),
            click.option("--role", help="liaison, point_of_contact, commander, other"),
            click.option("--phone"),
            click.option("--email"),
        ]
    else:
        named = [
            click.option("--resource", "resource_id", help="Id of the resource to book."),
            click.option("--starts", "starts_at", help="UTC start, e.g. 2026-11-23T08:00:00Z"),
            click.option("--ends", "ends_at", help="UTC end"),
            click.option("--purpose"),
            click.option("--state", help="requested, approved, declined, cancelled"),
        ]

    def with_options(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed([*named, set_option, clear_option, json_option]):
            fn = option(fn)
        return fn

    @group.command("add")
    @with_options
    @click.pass_context
    @clear_errors
    def add(
        ctx: click.Context, assignments: tuple[str, ...], clear: tuple[str, ...], as_json: bool, **named_values: Any
    ) -> None:
        """Add a record (signed and queued for the next sync)."""
        values = {k: v for k, v in named_values.items() if v is not None} | _coerce(collection, assignments, clear)
        with opened(ctx) as device:
            _print_record(edits.create(device, collection, values), as_json)

    @group.command("update")
    @click.argument("record_id")
    @with_options
    @click.pass_context
    @clear_errors
    def update(
        ctx: click.Context,
        record_id: str,
        assignments: tuple[str, ...],
        clear: tuple[str, ...],
        as_json: bool,
        **named_values: Any,
    ) -> None:
        """Change fields of a record."""
        values = {k: v for k, v in named_values.items() if v is not None} | _coerce(collection, assignments, clear)
        with opened(ctx) as device:
            _print_record(edits.update(device, record_id, values), as_json)

    @group.command("list")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
    @click.option("--deleted", is_flag=True, help="Include deleted records.")
    @click.pass_context
    @clear_errors
    def list_(ctx: click.Context, as_json: bool, deleted: bool) -> None:
        """List records this laptop holds (its own agency's and what agreements share)."""
        _list(ctx, collection, as_json, deleted)

    return group


for _noun in COLLECTION_OF:
    main.add_command(_collection_group(_noun))


@main.command()
@click.argument("record_id")
@click.pass_context
@clear_errors
def delete(ctx: click.Context, record_id: str) -> None:
    """Delete a record of your agency."""
    with opened(ctx) as device:
        edits.delete(device, record_id)
    click.echo(f"deleted {record_id}")


@main.command("sync")
@click.option("--watch", is_flag=True, help="Keep syncing; retry with backoff while the hub is unreachable.")
@click.option(
    "--interval",
    default=60,
    show_default=True,
    type=click.IntRange(1, 86400),
    help="Seconds between syncs with --watch.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@clear_errors
def sync_command(ctx: click.Context, watch: bool, interval: int, as_json: bool) -> None:
    """Push this laptop's changes, then pull what the hub has."""
    with opened(ctx) as device:
        if watch:
            from .watch import run_watch

            run_watch(device, interval=interval)
            return
        report = _sync_once(device, as_json)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    click.echo(
        f"pushed {report.pushed} ({report.accepted} accepted, {len(report.rejected)} refused by the hub); "
        f"pulled {report.pulled} ({report.applied} new)"
    )
    for item in report.rejected:
        click.echo(f"  REFUSED by the hub: change {item['id']} on {item['record_id']}: {item['reason']}", err=True)
    for item in report.refused:
        click.echo(f"  NOT APPLIED (failed verification): change {item['id']}: {item['reason']}", err=True)
    if report.restored is not None:
        click.echo(recovery.describe(report.restored), err=True)


def _sync_once(device: Device, quiet: bool) -> agent.SyncReport:
    client = agent.client_for(device)
    if quiet or not sys.stderr.isatty():
        return agent.sync(device, client)
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("pulling", total=None)
        return agent.sync(device, client, progress=lambda done, total: bar.update(task, completed=done, total=total))


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@clear_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """Pending changes, last sync, conflicts, refusals."""
    with opened(ctx) as device:
        info = overview.status(device)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['officer']} ({info['agency']}), device {info['device_id']}, hub {info['hub']}")
    click.echo(f"pending changes: {info['pending']}")
    click.echo(f"last successful sync: {info['last_sync_at'] or 'never'}")
    if info["last_sync_error"]:
        click.echo(f"last sync failed: {info['last_sync_error']}")
    click.echo(f"conflicts: {info['conflicts']}; double bookings: {info['double_bookings']}")
    for item in info["rejected"]:
        click.echo(f"refused by the hub: change {item['change_id']} on {item['record_id']}: {item['reason']}")
    for item in info["refused"]:
        click.echo(f"not applied (failed verification): change {item['change_id']}: {item['reason']}")
    if info["hub_alarm"]:
        alarm = info["hub_alarm"]
        click.echo(f"HUB ALARM ({alarm['kind']}, since {alarm['detected_at']}): {alarm['message']}")
        click.echo(
            "  sync is stopped until `fieldsync accept-hub --size N --head HEAD`, with your administrator's values"
        )
    for reset in info["hub_resets"]:
        cp = reset["checkpoint"]
        click.echo(
            f"hub history accepted after a {reset['alarm']['kind']} alarm on {reset['accepted_at']}: "
            f"size {cp['size']} head {cp['head']}"
        )
    if info["restored"]:
        click.echo(recovery.describe(info["restored"]))
    if info["feed_closed"]:
        click.echo(f"EDITS STOPPED: {info['feed_closed']}")
    for item in info["set_aside"]:
        click.echo(f"set aside: change {item['change_id']} (seq {item['seq']}) on {item['record_id']}")
        click.echo(f"  {item['reason']}")


@main.command("accept-hub")
@click.option("--size", required=True, type=click.IntRange(0), help="Log size the administrator read on the hub.")
@click.option("--head", required=True, help="Log head the administrator read on the hub (`fieldsync-hub log head`).")
@click.pass_context
@clear_errors
def accept_hub(ctx: click.Context, size: int, head: str) -> None:
    """After a ROLLBACK or FORK alarm: accept the hub's history as it now is, with the size and
    head your administrator read on the hub itself. Recorded in the replica (see `status`)."""
    with opened(ctx) as device:
        record = hubtrust.accept_hub(device, agent.client_for(device), size=size, head=head)
    click.echo(
        f"accepted the hub's history at size {size} head {head} after the {record['alarm']['kind']} alarm; "
        f"{len(record['requeued'])} of this laptop's changes queued again; the next sync pulls everything again"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Check the replica file: SQLCipher's page HMACs, SQLite's integrity, the high-water mark."""
    try:
        result = replica.check(ctx.obj["home"], passphrase())
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for problem in result["problems"]:
            click.echo(f"DAMAGED: {problem}", err=True)
        if result["ok"]:
            click.echo(f"replica ok: {result['pages']} pages, every page's HMAC and the database structure check out")
    if not result["ok"]:
        count = len(result["problems"])
        raise click.ClickException(f"the replica is damaged ({count} problem(s)); keep the folder as it is")


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@clear_errors
def conflicts(ctx: click.Context, as_json: bool) -> None:
    """Conflicts and double bookings this laptop knows of, with both sides."""
    with opened(ctx) as device:
        found = overview.conflicts(device)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for c in found["conflicts"]:
        winner, loser = c["winner"], c["loser"]
        settled = f" - resolved by {c['resolved_by']} (hub-signed)" if c.get("resolved_by") else ""
        click.echo(
            f"{c['collection']} {c['record_id']} field {c['field']}: {winner['value']!r} (kept, device "
            f"{winner['device']}) over {loser['value']!r} (device {loser['device']}){settled}"
        )
    for b in found["double_bookings"]:
        settled = f" - resolved by {b['resolved_by']} (hub-signed)" if b.get("resolved_by") else ""
        click.echo(
            f"double booking of resource {b['resource_id']}: reservations {b['first']} and {b['second']} "
            f"overlap {b['overlap_start']} .. {b['overlap_end']}{settled}"
        )
    if not found["conflicts"] and not found["double_bookings"]:
        click.echo("no conflicts")


@main.command()
@click.option(
    "--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="Port on 127.0.0.1; 0 = a free one."
)
@click.option("--no-browser", is_flag=True, help="Only print the address; do not open the browser.")
@click.option(
    "--sync-every",
    default=60,
    show_default=True,
    type=click.IntRange(0, 86400),
    help="Seconds between automatic syncs (retrying with backoff while the hub is unreachable); 0 = only on Sync now.",
)
@click.pass_context
@clear_errors
def ui(ctx: click.Context, port: int, no_browser: bool, sync_every: int) -> None:
    """The officer's local web app on 127.0.0.1: works with no link; syncs when asked (or every minute)."""
    from .ui.serve import serve

    home = ctx.obj["home"]
    if not replica.exists(home):
        raise click.ClickException(f"no replica in {home}: run `fieldsync enroll` first")
    rep = None
    if settings.passphrase() is not None or sys.stdin.isatty():
        rep = replica.Replica.open(home, passphrase())
        try:
            Device(rep)
        except ClientError:
            rep.close()
            raise
    else:
        click.echo("no terminal to type the passphrase in: the page will ask for it")
    serve(rep, home=home, port=port, browser=not no_browser, sync_every=sync_every, echo=lambda m: click.echo(m))


@main.command()
@click.argument("bundle_path", metavar="BUNDLE.json", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@clear_errors
def verify(bundle_path: str, as_json: bool) -> None:
    """Verify a provenance bundle offline: who wrote each value, and that nothing was altered."""
    try:
        bundle = json.loads(Path(bundle_path).read_text())
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
        raise click.ClickException(f"cannot read {bundle_path}: {type(exc).__name__}: {exc}") from None
    report = verify_bundle(bundle)
    if as_json:
        click.echo(json.dumps({"ok": report.ok, **report.__dict__}, indent=2))
    if not report.ok:  # nothing of an unverified bundle is shown as if it were a finding
        problems = "; ".join(f"FAILED: {problem}" for problem in report.problems)
        raise click.ClickException(f"bundle does NOT verify ({len(report.problems)} problem(s)): {problems}")
    if not as_json:
        esc = inputs.escape_controls  # a bundle is a file from elsewhere: nothing in it drives the terminal
        click.echo(esc(f"{report.collection} {report.record_id} (agency {report.agency}): {report.changes} changes"))
        for f in report.fields:
            value = "(withheld)" if f["withheld"] else f["value"]
            click.echo(esc(f"  {f['field']} = {value!r}  by {f['written_by']}, device {f['device']}, at {f['hlc']}"))
        click.echo("bundle verifies: every change is signed by a certified device of its agency")


if __name__ == "__main__":  # pragma: no cover
    main()
