"""A laptop's `fieldsync` process killed (SIGKILL) in the middle of a write leaves nothing readable.

Covered file kinds: the database and its WAL and shared memory (a large
uncommitted transaction), and temporary files (large sorts, a temporary table
and VACUUM with a tiny page cache, TMPDIR and SQLITE_TMPDIR pointed at a
watched folder). The replica never uses a rollback journal: it is opened in
WAL mode before any write (tests/field_client/test_replica.py checks the mode).

The writer is its own process: it commits some edits, then opens one large
transaction of edits whose names carry a canary, and is killed inside it (the
WAL then holds the uncommitted pages). Nothing on disk — database, WAL, shared
memory, SQLite's temp folder — may hold the canary in any encoding, and on the
next open the replica is intact: the committed edits are there, none of the
killed transaction's are.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from field_client import highwater, state
from field_client.replica import DB_NAME, Replica

from .conftest import MakeLaptop
from .helpers import PASSPHRASE
from .test_replica import leaks

CANARY = "KILLCANARY-7f3a9e"

WRITER = textwrap.dedent(
    """
    import sys, time
    from field_client import edits
    from field_client.device import Device
    from field_client.replica import Replica

    home, passphrase, canary = sys.argv[1:4]
    rep = Replica.open(home, passphrase)
    device = Device(rep)
    for i in range(5):  # committed, one transaction each
        edits.create(device, "resources", {"kind": "vehicle", "name": f"committed unit {i}"})
    with rep.transaction():  # one large transaction, never committed
        for i in range(300):
            edits.create(device, "resources", {"kind": "vehicle", "name": f"{canary} {i}", "notes": canary * 30})
        print("inside", flush=True)
        time.sleep(120)
    """
)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_writer_killed_mid_transaction_leaves_nothing_readable(
    laptop: MakeLaptop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    home = lee.home
    secrets = [CANARY.encode(), lee.replica.secret("device_key") or b"?"]
    lee.replica.close()
    sqlite_tmp = tmp_path / "sqlite-tmp"
    sqlite_tmp.mkdir()
    monkeypatch.setenv("SQLITE_TMPDIR", str(sqlite_tmp))

    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home), PASSPHRASE, CANARY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "inside", proc.stderr.read() if proc.stderr else line
        assert (home / f"{DB_NAME}-wal").stat().st_size > 100_000  # the uncommitted pages reached the WAL
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL

    assert leaks(home, secrets) == []  # database, -wal, -shm: ciphertext only
    assert leaks(sqlite_tmp, secrets) == []

    with Replica.open(home, PASSPHRASE) as rep:  # integrity checks run at open
        names = sorted(r["name"] for r in state.list_records(rep, "resources"))
        assert names == [f"committed unit {i}" for i in range(5)]
        assert rep.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 5
        assert not any(CANARY in n for n in names)
        # the high-water mark follows commits only: the killed transaction's 300 seqs never reached it
        mark = highwater.read(home, rep.mac_key, rep.get("device_id"))
        assert mark is not None and mark.seq == rep.get("seq") == 5 and mark.hash == rep.get("prev")
    assert leaks(home, secrets) == []  # and recovery wrote nothing readable either


SPILLER = textwrap.dedent(
    """
    import sys
    from field_client import edits
    from field_client.device import Device
    from field_client.replica import Replica

    home, passphrase, canary = sys.argv[1:4]
    rep = Replica.open(home, passphrase)
    device = Device(rep)
    with rep.transaction():
        for i in range(600):
            edits.create(device, "resources", {"kind": "vehicle", "name": f"{canary} {i}", "notes": canary * 200})
    conn = rep.conn
    conn.execute("PRAGMA cache_size = -64")  # a tiny page cache: sorts and temp tables would spill to files
    while True:
        conn.execute('SELECT record_id, "values" FROM records ORDER BY "values" DESC, state').fetchall()
        conn.execute('CREATE TEMP TABLE IF NOT EXISTS spill AS SELECT * FROM changes ORDER BY wire')
        conn.execute("DROP TABLE spill")
        print("sorted", flush=True)
        conn.execute("VACUUM")
    """
)


def open_files(pid: int, folder: Path) -> dict[str, bytes]:
    """Contents of the files process ``pid`` holds open under ``folder``, unlinked ones included
    (read through /proc/PID/fd, which still reaches a deleted file)."""
    found: dict[str, bytes] = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            if target.removesuffix(" (deleted)").startswith(str(folder)):
                found[target] = fd.read_bytes()
        except OSError:
            continue  # closed meanwhile
    return found


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sorts_temp_tables_and_vacuum_killed_midway_leave_no_clear_temp_file(
    laptop: MakeLaptop, tmp_path: Path
) -> None:
    """Large sorts, a temporary table and VACUUM (which rebuilds the whole file through a temporary
    database) with a tiny page cache, SIGKILLed in the middle: with temp_store = MEMORY nothing
    spills, so neither TMPDIR/SQLITE_TMPDIR nor the home folder holds the canary in any encoding."""
    lee = laptop("SPD", "Sgt. Lee")
    home = lee.home
    secrets = [CANARY.encode(), lee.replica.secret("device_key") or b"?"]
    lee.replica.close()
    watched = tmp_path / "tmp"
    watched.mkdir()
    env = {**os.environ, "TMPDIR": str(watched), "SQLITE_TMPDIR": str(watched), "TEMP": str(watched)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SPILLER, str(home), PASSPHRASE, CANARY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        for _ in range(2):  # through a whole round, then into the next round's sorts or VACUUM
            line = proc.stdout.readline()
            assert line.strip() == "sorted", proc.stderr.read() if proc.stderr else line
        time.sleep(0.05)
        opened = open_files(proc.pid, watched)  # SQLite unlinks its temp files at once: look at open ones
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
    assert opened == {}, sorted(opened)  # no temporary file was open at all, deleted or not
    assert leaks(watched, secrets) == [] and list(watched.iterdir()) == []
    assert leaks(home, secrets) == []
    with Replica.open(home, PASSPHRASE) as rep:  # and the replica is intact
        assert len(state.list_records(rep, "resources")) == 600
