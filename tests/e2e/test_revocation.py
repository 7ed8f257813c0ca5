"""A laptop revoked on the hub can no longer push; everyone else carries on."""

from __future__ import annotations

from typing import Any

from .conftest import Hub


def test_revoked_laptop_can_no_longer_push(hub_process: Hub, officer: Any) -> None:
    hub = hub_process
    d, e = officer("SPD", "dunn"), officer("SPD", "ellis")
    first = d.add("resource", kind="equipment", name="Radio 1")
    d.sync()
    device_id = d.status()["device_id"]
    assert device_id == d.device_id

    out = hub.admin("device", "revoke", device_id, "--reason", "laptop stolen").stdout
    assert "revoked after seq 1" in out, out

    second = d.add("resource", kind="equipment", name="Radio 2")  # the laptop still works offline
    refused = d.sync(check=False)
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "revoked" in lines[0], refused.stderr
    info = d.status()
    assert info["pending"] == 1 and "revoked" in (info["last_sync_error"] or ""), info

    # The hub's log holds only the change Dunn pushed before the revocation.
    logged = hub.query("SELECT record_id, device_seq FROM log WHERE device = ?", (device_id,))
    assert logged == [{"record_id": first, "device_seq": 1}]
    assert {r["record_id"] for r in hub.records()} == {first}  # not `second`
    devices = {row["id"]: row["status"] for row in hub.query("SELECT id, status FROM devices")}
    assert devices == {device_id: "revoked", e.device_id: "active"}

    # Other officers still sync fine, and see only what was accepted.
    mine = e.add("resource", kind="vehicle", name="Unit 30")
    e.sync()
    seen = {r["id"] for r in e.list("resource", deleted=True)}
    assert seen == {first, mine} and second not in seen
