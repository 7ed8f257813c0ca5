"""Laptops whose clocks are wrong: hours behind or ahead still sync and merge; days ahead is refused.

The `fieldsync` processes run under libfaketime (LD_PRELOAD, ``FAKETIME="-6h"``...): their whole
wall clock is shifted, as on a laptop set to the wrong time or zone; the hub keeps real time.

- Requests are signed in hub time (field_client/transport.py learns the offset from the hub's
  ``X-Fieldsync-Hub-Time`` header, re-signing once after a skew refusal), so a laptop hours off
  can sync at all; the hub's freshness window and nonce check are unchanged: a replayed request
  and a request signed with a stale time are still refused.
- Merge follows the hybrid logical clocks: a laptop 6 h behind that pulled an edit and then
  edits the same field wins (its clock observed the hub's); a concurrent edit from it, made
  without seeing the other, loses to the later real-time one and is a conflict for staff. A
  laptop 3 h ahead wins a concurrent edit (its clock is later), and an edit made after pulling
  its change wins over it again.
- A laptop 10 days ahead (over MAX_CLOCK_DRIFT, 24 h) is refused with a reason the officer
  sees; nothing of it is merged, its outbox is kept, and the refusal is in the audit log.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import requests

from crypto import b64e, sign_request
from field_client.device import Device
from field_client.replica import Replica
from field_client.transport import HUB_TIME_HEADER, HubClient
from tests.e2e.conftest import PASSPHRASE, Hub, Officer

from .laptops import assert_converged, audit, faketime_env, pending

PULL = "/api/v1/sync/pull?cursor=0"


def refusals(hub: Hub, person: Officer) -> list[dict[str, object]]:
    return [row for row in audit(hub, "request.refused") if row["actor"] == f"device:{person.device_id}"]


def notes(person: Officer, record_id: str) -> str:
    return str(next(r for r in person.list("resource") if r["id"] == record_id)["notes"])


def conflict_values(hub: Hub, record_id: str) -> list[tuple[str, str]]:
    return sorted(
        (c["winner"]["value"], c["loser"]["value"])
        for c in hub.conflicts()
        if c["record_id"] == record_id and c["field"] == "notes"
    )


def test_laptops_hours_off_sync_and_merge_by_their_clocks(
    hub_process: Hub, officer: Callable[[str, str], Officer]
) -> None:
    base = officer("SPD", "Sgt. Lee")  # the hub's own time
    behind = officer("SPD", "Cpl. Diaz")
    ahead = officer("SPD", "Ofc. Kim")
    behind.env = faketime_env(behind, "-6h")
    ahead.env = faketime_env(ahead, "+3h")

    unit = base.add("resource", kind="vehicle", name="Unit 12", notes="n0")
    base.sync()
    behind.sync()  # refused as stale once (audited), then re-signed in hub time
    assert notes(behind, unit) == "n0"
    assert len(refusals(hub_process, behind)) == 1
    behind.sync()  # the offset it learned is kept: no second refusal
    assert len(refusals(hub_process, behind)) == 1

    # 6 h behind, but it saw n0: its edit is later by its clock and wins, with no conflict
    behind.update("resource", unit, notes="after pulling")
    behind.sync()
    base.sync()
    assert notes(base, unit) == "after pulling"
    assert conflict_values(hub_process, unit) == []

    # concurrent: neither saw the other; the laptop behind carries the clock of the last thing it
    # saw, so the edit made later in real time wins, and the pair is a conflict for command staff
    behind.update("resource", unit, notes="behind, concurrent")
    base.update("resource", unit, notes="base, concurrent")
    behind.sync()
    base.sync()
    assert conflict_values(hub_process, unit) == [("base, concurrent", "behind, concurrent")]

    # 3 h ahead: its concurrent edit is later by the clocks and wins; one made after pulling it wins again
    ahead.sync()
    base.update("resource", unit, notes="base, second round")
    ahead.update("resource", unit, notes="ahead, concurrent")
    base.sync()
    ahead.sync()
    base.sync()
    assert notes(base, unit) == "ahead, concurrent"
    assert ("ahead, concurrent", "base, second round") in conflict_values(hub_process, unit)
    base.update("resource", unit, notes="base, after pulling")
    base.sync()
    assert_converged(hub_process, [base, behind, ahead])
    assert notes(ahead, unit) == notes(behind, unit) == "base, after pulling"
    assert len(conflict_values(hub_process, unit)) == 2  # the last edit saw everything: no new conflict


def test_a_laptop_days_ahead_is_refused_with_its_reason(
    hub_process: Hub, officer: Callable[[str, str], Officer]
) -> None:
    far = officer("SPD", "Ofc. Park")
    far.env = faketime_env(far, "+10d")
    far.add("resource", kind="vehicle", name="From the future")
    run = far.sync(check=False)
    assert run.returncode != 0
    assert "clock is 10 d 0 h ahead of the hub's" in run.stderr, run.stderr
    assert "set the laptop's date and time right" in run.stderr
    assert pending(far) == 1  # kept in the outbox, not sent
    assert "clock is 10 d 0 h ahead" in (far.status()["last_sync_error"] or "")
    assert hub_process.query("SELECT count(*) AS n FROM log WHERE device = ?", (far.device_id,))[0]["n"] == 0
    assert hub_process.records() == []
    refused = refusals(hub_process, far)
    assert refused and all(r["outcome"] == "refused" for r in refused)
    assert "stale request" in str(refused[0]["details"]["reason"])  # type: ignore[index]


def test_replayed_and_stale_requests_are_still_refused(
    hub_process: Hub, officer: Callable[[str, str], Officer]
) -> None:
    person = officer("SPD", "Sgt. Ruiz")
    with Replica.open(person.home, PASSPHRASE) as rep:
        device = Device(rep)
        key, device_id = device.key, device.device_id

    def signed(at: datetime) -> dict[str, str]:
        return sign_request(key, device=device_id, method="GET", path=PULL, body=b"", at=at, nonce=b64e(os.urandom(16)))

    headers = signed(datetime.now(UTC))
    first = requests.get(hub_process.url + PULL, headers=headers, timeout=10)
    assert first.status_code == 200 and HUB_TIME_HEADER in first.headers
    replay = requests.get(hub_process.url + PULL, headers=headers, timeout=10)
    assert replay.status_code == 401 and "replayed" in replay.json()["message"]

    stale = requests.get(hub_process.url + PULL, headers=signed(datetime.now(UTC) - timedelta(hours=6)), timeout=10)
    assert stale.status_code == 401
    body = stale.json()
    assert body["error"] == "unauthorized" and body["details"]["reason"] == "clock_skew"
    assert HUB_TIME_HEADER in stale.headers

    # the transport of a laptop 6 h behind: refused once, re-signed in hub time, answered
    client = HubClient(
        hub_process.url, device_id=device_id, key=key, now=lambda: datetime.now(UTC) - timedelta(hours=6)
    )
    assert client.pull(0)["next_cursor"] == 0
    assert abs(client.clock_offset - 6 * 3600) < 5
    assert client.pull(0)["next_cursor"] == 0  # no refusal this time
    assert len(refusals(hub_process, person)) == 3  # the replay, the stale request, the client's first try
