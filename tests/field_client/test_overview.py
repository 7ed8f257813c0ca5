"""The officer's read-only views (field_client/overview.py): status; in-process hub."""

from __future__ import annotations

import pytest

from field_client import edits, overview
from tests.backend.helpers import Hub

from .conftest import MakeLaptop
from .helpers import VEHICLE, outbox, tamper

# Tests of the laptop's own checks run against the SQLite hub only; the rest on both databases.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite_only
def test_status_reports_pending_last_sync_conflicts_rejected_and_refused(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    ray = laptop("SPD", "Ofc. Ray")
    kim = laptop("CSO", "Dep. Kim")
    hub.agreement("SPD", "CSO", ["resources"], write=["status"])
    unit = edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()
    ray.sync()
    kim.sync()
    info = overview.status(ray.device)
    assert (info["pending"], info["conflicts"], info["rejected"], info["refused"]) == (0, 0, [], [])
    assert info["last_sync_at"] and info["last_sync_error"] is None
    assert info["device_id"] == ray.device.device_id and info["officer"] == "Ofc. Ray"
    assert info["cursor"] == 1

    # concurrent offline edits of one field: a conflict
    edits.update(lee.device, unit["id"], {"status": "deployed"})
    edits.update(ray.device, unit["id"], {"status": "maintenance"})
    assert overview.status(ray.device)["pending"] == 1
    lee.sync()
    ray.sync()
    assert overview.status(ray.device)["conflicts"] == 1

    # a refused write, and a forged change pulled
    edits.update(kim.device, unit["id"], {"name": "Mine now"})
    kim.sync()
    info = overview.status(kim.device)
    assert [r["record_id"] for r in info["rejected"]] == [unit["id"]]
    assert info["rejected"][0]["reason"]
    other = edits.create(lee.device, "resources", {**VEHICLE, "name": "Unit 5"})
    lee.sync()
    forged = outbox(lee)[-1]["change_id"]
    tamper(hub, forged, lambda w: w["fields"]["name"].__setitem__("value", "Unit 6"))
    ray.sync()
    info = overview.status(ray.device)
    assert [r["change_id"] for r in info["refused"]] == [forged]
    assert info["refused"][0]["record_id"] == other["id"]
