"""A laptop whose replica file is put back from an old copy resyncs cleanly and re-sends nothing stale.

Real hub process, ``fieldsync`` CLI. The officer's replica (``replica.db`` and
``replica.json``) is copied aside, more edits are made and pushed, and the old
copy is put back; the high-water mark (``highwater.json``) stays. The laptop
refuses to sign until it has synced; the sync sends none of the stale outbox
(the hub already holds it, same seq and hash), rebuilds the laptop's records
from the hub, and continues the feed from the hub's head, so the next edit is
accepted and the device is never quarantined. The case where edits made after
the backup never reached the hub (burned seqs) is tests/field_client/test_highwater.py's.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Hub

from .hubcopy import refused

FILES = ("replica.db", "replica.json")


def test_a_replica_put_back_from_an_old_copy_resyncs_from_the_hub(
    hub_process: Hub, officer: Any, tmp_path: Path
) -> None:
    hub = hub_process
    lee = officer("SPD", "lee")
    first = lee.add("resource", kind="vehicle", name="Unit 1")  # seq 1, pending in the backup
    backup = tmp_path / "backup"
    backup.mkdir()
    for name in FILES:  # the CLI closed the replica: its WAL is checkpointed into replica.db
        shutil.copy2(lee.home / name, backup / name)
    second = lee.add("resource", kind="vehicle", name="Unit 2, after the backup")
    lee.sync()
    for name in FILES:
        shutil.copy2(backup / name, lee.home / name)

    err = refused(lee.run("resource", "add", "--kind", "vehicle", "--name", "would reuse seq 2", check=False))
    assert "older than its high-water mark" in err and "seq 1" in err, err
    assert "EDITS STOPPED" in lee.run("status").stdout

    done = lee.sync()
    assert "RESTORED REPLICA" in done.stderr and "no stale edit was re-sent" in done.stderr, done.stderr
    assert done.stdout.startswith("pushed 0 "), done.stdout
    assert {r["id"] for r in lee.list("resource")} == {first, second}  # rebuilt from the hub
    third = lee.add("resource", kind="vehicle", name="Unit 3, after the resync")
    lee.sync()
    links = hub.query("SELECT seq, status FROM feed_links WHERE device = ? ORDER BY seq", (lee.device_id,))
    assert links == [{"seq": seq, "status": "accepted"} for seq in (1, 2, 3)]
    assert hub.query("SELECT status FROM devices WHERE id = ?", (lee.device_id,)) == [{"status": "active"}]
    assert hub.query("SELECT count(*) AS n FROM equivocations") == [{"n": 0}]
    assert {first, second, third} <= {r["record_id"] for r in hub.records()}
    assert lee.status()["restored"]["already_on_hub"] == [1]
