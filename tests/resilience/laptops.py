"""Helpers of the fault tests: laptops enrolled through any URL, offline work, and the checks
every fault test ends with (nothing lost, nothing twice, every replica equal to the hub).

Nothing here imports ``backend``: the hub is read from its database and driven by its CLI.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from field_client import edits
from field_client.device import Device
from field_client.replica import Replica
from tests.e2e.conftest import ENROLLED, FIELDSYNC, PASSPHRASE, Hub, Officer, hub_view, replica_view

Shares = dict[tuple[str, str], tuple[set[str], set[str]]]
FAKETIME_LIB = next(  # Debian's multiarch folder: x86_64-linux-gnu, aarch64-linux-gnu...
    iter(sorted(Path("/usr/lib").glob("*-linux-gnu/faketime/libfaketime.so.1"))),
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
)


def enroll(hub: Hub, url: str, agency: str, name: str, home: Path) -> Officer:
    """A token from ``hub``, then ``fieldsync enroll --hub URL`` (the hub's own, or a proxy's)."""
    token = hub.admin("device", "token", agency, "--officer", name).stdout.strip()
    person = Officer(name, agency, home)
    out = person.run("enroll", "--hub", url, "--token", token).stdout
    found = ENROLLED.search(out)
    assert found and found["agency"] == agency, out
    person.device_id = found["device"]
    return person


def offline_edits(person: Officer, vehicles: int, updates: int = 2) -> int:
    """``vehicles`` resources added and each updated ``updates`` times, signed into the outbox
    through the same library as the CLI (fast: one passphrase derivation). Returns the count."""
    with Replica.open(person.home, PASSPHRASE) as rep:
        device = Device(rep)
        for n in range(vehicles):
            unit = edits.create(device, "resources", {"kind": "vehicle", "name": f"{person.name} unit {n}"})
            for step in range(updates):
                edits.update(device, unit["id"], {"notes": f"{person.name} log {n}.{step}"})
    return vehicles * (1 + updates)


def start_sync(person: Officer, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(FIELDSYNC), "--home", str(person.home), "sync", *args],
        env=env or person.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process ended first ({proc.returncode})")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


def kill_hub(hub: Hub) -> None:
    """SIGKILL the hub's server process (no cleanup of any kind), and forget it."""
    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGKILL)
    hub.proc.wait(10)
    assert hub.proc.returncode == -signal.SIGKILL
    hub.stop()  # only closes its log file now


def pending(person: Officer) -> int:
    """Changes in the outbox not yet acknowledged by the hub (what `fieldsync status` counts)."""
    rows = person.replica_rows("SELECT count(*) AS n FROM outbox WHERE status IN ('pending', 'held')")
    return int(rows[0]["n"])


def cursor(person: Officer) -> int:
    """The replica's committed cursor (read with the passphrase, even while a sync runs)."""
    with Replica.open(person.home, PASSPHRASE) as rep:
        return int(rep.get("cursor", 0))


def replica_change_ids(person: Officer) -> list[str]:
    return [row["change_id"] for row in person.replica_rows("SELECT change_id FROM changes")]


def assert_log_exact(hub: Hub, person: Officer, count: int) -> None:
    """The hub's log holds each of the officer's (device, seq) exactly once, and exactly 1..count."""
    rows = hub.query("SELECT device_seq, change_id FROM log WHERE device = ?", (person.device_id,))
    seqs = Counter(row["device_seq"] for row in rows)
    twice = sorted(seq for seq, n in seqs.items() if n > 1)
    assert not twice, f"applied twice: device seqs {twice[:10]}"
    assert sorted(seqs) == list(range(1, count + 1)), f"{len(seqs)} of {count} changes in the hub's log"
    assert len({row["change_id"] for row in rows}) == count


def assert_converged(
    hub: Hub, people: list[Officer], shares: Shares | None = None, collections: tuple[str, ...] = ("resources",)
) -> None:
    """Every laptop, synced once more, has nothing pending and holds exactly what the hub shows its
    agency of ``collections``, each change once."""
    for person in people:
        report = json.loads(person.run("sync", "--json").stdout)
        assert not report["rejected"] and not report["refused"], report
        for collection in collections:
            mine = replica_view(person.list(collection[:-1], deleted=True))
            theirs = hub_view(hub, person.agency, collection, shares or {})
            assert mine == theirs, f"{person} differs from the hub in {collection}"
        ids = replica_change_ids(person)
        assert len(ids) == len(set(ids)), f"{person} holds a change twice"
        assert pending(person) == 0, person


def faketime_env(person: Officer, shift: str) -> dict[str, str]:
    """The officer's environment with the process clock shifted by ``shift`` (``-6h``, ``+10d``)."""
    assert FAKETIME_LIB.exists(), "libfaketime missing: `make faketime` (Debian package faketime)"
    return person.env | {
        "LD_PRELOAD": str(FAKETIME_LIB),
        "FAKETIME": shift,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # timeouts keep real time
    }


def audit(hub: Hub, action: str) -> list[dict[str, Any]]:
    rows = hub.query("SELECT actor, action, object, outcome, details FROM audit_log WHERE action = ?", (action,))
    for row in rows:
        row["details"] = json.loads(row["details"]) if isinstance(row["details"], str) else row["details"]
    return rows
