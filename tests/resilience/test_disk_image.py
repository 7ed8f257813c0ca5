"""A laptop restored from a disk image: two copies of one device sign two different changes at one seq.

The whole home folder is copied with ``cp -a`` - replica, header and
high-water mark - so nothing on either copy can tell. Both copies edit and
sync against a real hub process: the first copy's change is accepted; the
second is equivocation, so the hub quarantines the device with both signed
changes kept as proof, names it in the audit log, and refuses the device
(403, "quarantined") from then on, on either copy, without losing the change
it had accepted.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Hub, Officer

from .hubcopy import refused


def test_two_copies_of_one_laptop_get_the_device_quarantined_with_both_changes_kept(
    hub_process: Hub, officer: Any, tmp_path: Path
) -> None:
    hub = hub_process
    lee = officer("SPD", "lee")
    vehicle = lee.add("resource", kind="vehicle", name="Unit 12")
    lee.sync()  # seq 1 on the hub
    image = Officer("lee (image)", "SPD", tmp_path / "image")
    subprocess.run(["cp", "-a", str(lee.home), str(image.home)], check=True)
    image.device_id = lee.device_id

    lee.update("resource", vehicle, status="deployed")  # seq 2 on the laptop
    image.update("resource", vehicle, name="Unit 12 (renamed on the image)")  # seq 2 again, another change
    lee.sync()
    err = refused(image.sync(check=False))
    assert "403" in err and "quarantined" in err and "equivocation at seq 2" in err, err
    assert len(err.strip().splitlines()) == 1, err

    [device] = hub.query("SELECT status, status_reason FROM devices WHERE id = ?", (lee.device_id,))
    assert device == {"status": "quarantined", "status_reason": "equivocation at seq 2"}
    [proof] = hub.query("SELECT seq, held, offered FROM equivocations WHERE device = ?", (lee.device_id,))
    held, offered = json.loads(proof["held"]), json.loads(proof["offered"])
    assert proof["seq"] == 2 and held["seq"] == offered["seq"] == 2 and held["signature"] != offered["signature"]
    assert held["fields"]["status"]["value"] == "deployed"  # the first copy's, as accepted
    assert offered["fields"]["name"]["value"] == "Unit 12 (renamed on the image)"  # the second copy's
    [audit] = hub.query("SELECT actor, agency, outcome, details FROM audit_log WHERE action = 'device.quarantined'")
    assert audit["agency"] == "SPD" and audit["outcome"] == "quarantined" and json.loads(audit["details"])["seq"] == 2
    assert hub.query("SELECT object FROM audit_log WHERE action = 'device.quarantined'") == [{"object": lee.device_id}]
    assert hub.admin("audit", "verify").returncode == 0
    listed = {d["id"]: d["status"] for d in json.loads(hub.admin("device", "list", "--json").stdout)}
    assert listed[lee.device_id] == "quarantined"
    [shown] = json.loads(hub.admin("device", "proof", lee.device_id).stdout)  # the administrator's copy
    assert (shown["seq"], shown["held"], shown["offered"]) == (2, held, offered)

    # The first copy's accepted change is kept and merged; the second's never merged.
    [record] = [r for r in hub.records() if r["record_id"] == vehicle]
    assert record["values"]["status"] == "deployed" and record["values"]["name"] == "Unit 12"
    assert [r["device_seq"] for r in hub.query("SELECT device_seq FROM log WHERE device = ?", (lee.device_id,))] == [
        1,
        2,
    ]
    for copy in (image, lee):  # refused from now on, whichever copy asks
        assert "quarantined" in refused(copy.sync(check=False))
