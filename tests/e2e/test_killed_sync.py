"""A `fieldsync sync` process killed (SIGKILL) mid-push and mid-pull resumes on the next run.

The hub is its own process; each officer's sync is a real `fieldsync sync`
process, killed at growing delays until a kill lands in the middle (some of
the work done, not all). After every kill the next complete sync must leave
the laptop exactly where an uninterrupted one would: every change pushed once,
every change pulled once, the replica equal to the hub's merged view.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from field_client import edits
from field_client.device import Device
from field_client.replica import Replica

from .conftest import FIELDSYNC, PASSPHRASE, Hub, Officer, hub_view, replica_view

pytestmark = pytest.mark.slow
CHANGES = 1_200  # three push batches of 500, 500, 200
PULL_PAGE = 20  # the pull side's pages (the hub's FIELDSYNC_PULL_LIMIT) and commits


def offline_edits(person: Officer, count: int) -> None:
    """``count`` signed edits in the officer's outbox, made through the same library as the CLI."""
    with Replica.open(person.home, PASSPHRASE) as rep:
        device = Device(rep)
        for n in range(count // 6):  # a shift's work: vehicles added, each updated five times
            unit = edits.create(device, "resources", {"kind": "vehicle", "name": f"{person.name} unit {n}"})
            for step in range(5):
                edits.update(device, unit["id"], {"notes": f"log entry {step}"})


def kill_mid_way(person: Officer, progress: Callable[[], int], total: int) -> int:
    """Start `fieldsync sync` and SIGKILL it as soon as ``progress()`` shows part of the work done.

    Returns the progress at the kill. Fails if the sync finished (or died) before a kill could land.
    """
    before = progress()
    proc = subprocess.Popen(
        [str(FIELDSYNC), "--home", str(person.home), "sync"],
        env=person.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if before < progress() < total:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        proc.wait(timeout=30)
    stderr = ""
    if proc.stderr is not None:
        stderr = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"sync ended ({proc.returncode}) before the kill: {stderr}"
    at = progress()
    assert before < at < total, f"killed at {at} of {total}"
    return at


def test_a_killed_sync_resumes_without_loss_or_repeats(
    hub_process: Hub, officer: Callable[[str, str], Officer]
) -> None:
    writer = officer("SPD", "Sgt. Lee")
    reader = officer("SPD", "Cpl. Diaz")
    offline_edits(writer, CHANGES)

    def pushed() -> int:
        return len(hub_process.query("SELECT seq FROM log"))

    kill_mid_way(writer, pushed, CHANGES)
    assert writer.status()["pending"] > 0  # the kill left work for the next run
    writer.sync()
    assert writer.status()["pending"] == 0
    log = hub_process.query("SELECT change_id FROM log")
    assert len(log) == CHANGES == len({row["change_id"] for row in log})  # each change once

    def pulled() -> int:  # the replica's committed cursor, read while the sync process runs
        with Replica.open(reader.home, PASSPHRASE) as rep:
            return int(rep.get("cursor", 0))

    # a pull of 1,200 changes now takes well under a second: pages of 20 (60 of them), each
    # committed on its own, give a kill the time to land between two commits
    hub_process.stop()
    hub_process.env["FIELDSYNC_PULL_LIMIT"] = str(PULL_PAGE)
    hub_process.start()
    reader.env["FIELDSYNC_PULL_COMMIT"] = str(PULL_PAGE)
    kill_mid_way(reader, pulled, CHANGES)
    reader.sync()
    rows = reader.replica_rows("SELECT change_id FROM changes")
    assert len(rows) == CHANGES == len({row["change_id"] for row in rows})
    shares: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for person in (writer, reader):
        person.sync()
        assert replica_view(person.list("resource", deleted=True)) == hub_view(hub_process, "SPD", "resources", shares)
