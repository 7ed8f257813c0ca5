"""A damaged replica file is detected and reported, never silently used, and left as it was.

Real SQLCipher replicas: bytes flipped in page 1, in a middle page, in the last
page, a truncated file, a wrong passphrase, and a damaged WAL. Every
``fieldsync`` command that opens the file (run in-process with click's runner,
so a traceback would fail the test) exits non-zero with one clear line that
says "damaged" (or "wrong passphrase": the header's key check tells the two
apart), writes nothing, and leaves every file byte for byte as it was.
``fieldsync check`` runs PRAGMA cipher_integrity_check and integrity_check.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlcipher3

from field_client import edits, highwater, replica, state
from field_client.replica import DB_NAME, HEADER_NAME, Replica
from tests.backend.helpers import Hub

from .conftest import MakeLaptop
from .helpers import VEHICLE, Laptop
from .test_cli import Officer

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
PAGE = replica.CIPHER.page_size  # a new replica's pages
COMMANDS = [["status"], ["resource", "list"], ["resource", "add", "--kind", "vehicle", "--name", "x"], ["sync"]]


def filled(laptop: MakeLaptop) -> Laptop:
    """A laptop whose replica spans many pages, closed (its WAL checkpointed into the file)."""
    lee = laptop()
    with lee.replica.transaction():
        for i in range(120):
            edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}", "notes": "n" * 900})
    lee.replica.close()
    return lee


def fingerprint(home: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(home.iterdir()) if p.is_file()}


def flip(offset: Callable[[int], int]) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        data = bytearray(db.read_bytes())
        data[offset(len(data))] ^= 0x5A
        db.write_bytes(bytes(data))

    return damage


def truncate(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) - PAGE - 1000])


DAMAGE = {
    "page-1": flip(lambda size: 2000),
    "middle-page": flip(lambda size: (size // PAGE // 2) * PAGE + 1500),
    "last-page": flip(lambda size: size - PAGE + 700),
    "truncated": truncate,
}


@sqlite_only
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_every_command_refuses_a_damaged_replica_and_leaves_it_as_it_was(laptop: MakeLaptop, kind: str) -> None:
    lee = filled(laptop)
    DAMAGE[kind](lee.home / DB_NAME)
    before = fingerprint(lee.home)
    cli = Officer(lee.home)
    for args in COMMANDS:
        line = cli.fails(*args)
        assert "damaged" in line and "wrong passphrase" not in line, (args, line)
        assert fingerprint(lee.home) == before, args  # nothing written, no -wal/-shm left behind
    detail = cli.run("check")
    assert detail.exit_code != 0 and "Error: the replica is damaged" in detail.stderr, detail.output
    assert "DAMAGED:" in detail.stderr and "Traceback" not in detail.output
    if kind in ("middle-page", "last-page"):  # the page's HMAC is what fails
        assert "HMAC verification failed for page" in detail.stderr, detail.stderr
    assert fingerprint(lee.home) == before


@sqlite_only
def test_a_wrong_passphrase_is_told_apart_from_damage(laptop: MakeLaptop) -> None:
    lee = filled(laptop)
    before = fingerprint(lee.home)
    cli = Officer(lee.home)
    for args in [*COMMANDS, ["check"]]:
        line = cli.fails(*args, passphrase="not the passphrase")
        assert line == "Error: wrong passphrase", (args, line)
    assert fingerprint(lee.home) == before
    ok = cli.run("check")
    assert ok.exit_code == 0 and "replica ok" in ok.stdout, ok.output


@sqlite_only
def test_a_damaged_middle_page_is_never_read_as_partial_data(laptop: MakeLaptop) -> None:
    """A connection already past the open's checks (the officer's page keeps one) reads a page
    damaged under it: SQLCipher's page HMAC makes the read raise, it never returns fewer rows."""
    lee = filled(laptop)
    lee.reopen()
    key = lee.replica._key
    assert key is not None
    with lee.replica.clone() as other:
        assert len(state.list_records(other, "resources")) == 120
    lee.replica.close()
    flip(lambda size: (size // PAGE // 2) * PAGE + 1500)(lee.home / DB_NAME)
    with Replica._connect(lee.home, key, lee.replica.cipher) as raw:
        tables = [r[0] for r in raw.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert {"records", "changes", "outbox"} <= set(tables)
        with pytest.raises(sqlcipher3.DatabaseError, match="malformed"):
            for table in tables:  # whichever table holds the page: reading it raises
                raw.conn.execute(f'SELECT * FROM "{table}"').fetchall()


@sqlite_only
def test_a_damaged_wal_loses_nothing_silently(hub: Hub, live: str, laptop: MakeLaptop, tmp_path: Path) -> None:
    """SQLite drops a WAL's frames from the first damaged one on, as if the last transactions never
    committed: the replica looks healthy but older. The high-water mark tells: no edit is signed
    (it would reuse a seq), reads warn, and the next sync rebuilds the replica from the hub."""
    lee = laptop(hub_url=live)
    edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()
    lee.reopen()  # closed and opened: seq 1 is in replica.db itself, the WAL starts empty
    later = [edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})["id"] for i in (2, 3)]
    lee.sync()  # the hub holds seq 1..3; seq 2 and 3 are only in the open replica's WAL
    crashed = tmp_path / "crashed"  # the folder as a crash (power cut) leaves it
    crashed.mkdir()
    for name in (DB_NAME, f"{DB_NAME}-wal", HEADER_NAME, highwater.NAME):
        shutil.copy2(lee.home / name, crashed / name)
    wal = crashed / f"{DB_NAME}-wal"
    assert wal.stat().st_size > 10 * PAGE
    flip(lambda size: 32 + 24 + 100)(wal)  # inside the first frame's page

    cli = Officer(crashed)
    line = cli.fails("resource", "add", "--kind", "vehicle", "--name", "would reuse seq 2")
    assert "older than its high-water mark" in line and "seq 1" in line, line
    listed = cli.run("resource", "list", "--json")
    assert listed.exit_code == 0 and "WARNING: this replica is older than its high-water mark" in listed.stderr
    assert "EDITS STOPPED" in cli.ok("status").stdout
    done = cli.ok("sync")
    assert "RESTORED REPLICA" in done.stderr, done.output
    ids = {r["id"] for r in cli.json("resource", "list")}
    assert set(later) <= ids  # rebuilt from the hub
    cli.ok("resource", "add", "--kind", "vehicle", "--name", "Unit 4")
    assert "pushed 1 (1 accepted" in cli.ok("sync").stdout  # seq 4, not a second seq 2
