"""A laptop SIGKILLed while it pulls a large feed, then synced again (the pull side of
tests/e2e/test_killed_sync.py, across agencies, with a withheld field).

The sheriff's laptop pulls 1,200 police changes shared under an agreement that withholds
``notes`` (pages of 20: the hub's ``FIELDSYNC_PULL_LIMIT``, so that the pull lasts long
enough to be cut). It is killed as soon as its committed cursor shows part of the feed. At
that moment the replica must be exactly consistent with its cursor: it holds the changes of
the log up to the cursor and nothing after it (whole pages are committed with the cursor
after them in one transaction; ``FIELDSYNC_PULL_COMMIT=20`` makes that every page here).
The next sync applies exactly the rest, once each, and the replica equals what the hub
shows the sheriff's office.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable

from tests.e2e.conftest import Hub, Officer

from .laptops import assert_converged, cursor, offline_edits, replica_change_ids, start_sync, wait_until

VEHICLES = 400  # x3 = 1,200 changes
SHARES = {("SPD", "CSO"): ({"resources"}, {"notes"})}


def test_laptop_killed_mid_pull_resumes_at_a_consistent_cursor(
    hub_process: Hub, officer: Callable[[str, str], Officer]
) -> None:
    hub_process.admin(
        "agreement", "add", "--from", "SPD", "--to", "CSO", "--collections", "resources", "--withhold", "notes"
    )
    writer = officer("SPD", "Sgt. Lee")
    reader = officer("CSO", "Dep. Cole")
    total = offline_edits(writer, VEHICLES)
    writer.sync()
    log = hub_process.query("SELECT seq, change_id FROM log ORDER BY seq")
    assert len(log) == total

    hub_process.stop()  # pages of 20, each committed on its own: a kill lands between two commits
    hub_process.env["FIELDSYNC_PULL_LIMIT"] = "20"
    hub_process.start()
    reader.env["FIELDSYNC_PULL_COMMIT"] = "20"
    proc = start_sync(reader)
    try:
        wait_until(lambda: cursor(reader) > 0, timeout=90, what="the first pull page", proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    at = cursor(reader)
    assert 0 < at < log[-1]["seq"], f"killed at cursor {at}: not mid-pull"

    # what the replica holds is exactly the log up to its cursor: no change after it, none missing
    held = replica_change_ids(reader)
    assert sorted(held) == sorted(row["change_id"] for row in log if row["seq"] <= at)

    report = json.loads(reader.run("sync", "--json").stdout)
    assert report["applied"] == total - len(held)  # the rest, each once
    assert report["cursor"] == log[-1]["seq"] == cursor(reader)
    ids = replica_change_ids(reader)
    assert len(ids) == len(set(ids)) == total
    assert_converged(hub_process, [writer, reader], SHARES)
    assert all("notes" not in r and r["withheld"] == ["notes"] for r in reader.list("resource"))
