"""A laptop's `fieldsync` process killed (SIGKILL) in the middle of a write leaves nothing readable.

The writer is its own process: it commits some edits, then opens one large
transaction of edits whose names carry a canary, and is killed inside it (the
WAL then holds the uncommitted pages). Nothing on disk — database, WAL, shared
memory, SQLite's temp folder — may hold the canary in any encoding, and on the
next open the replica is intact: the committed edits are there, none of the
killed transaction's are.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from field_client import state
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
    assert leaks(home, secrets) == []  # and recovery wrote nothing readable either
