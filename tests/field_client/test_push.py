"""Push (field_client/push.py): verdicts stored, refusals undone, held changes sent again; in-process hub."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from field_client import edits, overview
from field_client.errors import HubUnavailable
from tests.backend.helpers import Hub

from .conftest import MakeLaptop
from .helpers import VEHICLE, log_size, outbox, views

# Tests of the laptop's own checks run against the SQLite hub only; the rest on both databases.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite_only
def test_resending_after_a_lost_answer_is_harmless(hub: Hub, laptop: MakeLaptop) -> None:
    """The hub got the push but the answer was lost: the next sync re-sends, the hub says duplicate."""
    lee = laptop()
    edits.create(lee.device, "resources", dict(VEHICLE))
    inner = lee.session.adapters["http://hub.test/"]
    real_send = inner.send

    def send_then_lose_answer(request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        real_send(request, *args, **kwargs)
        raise requests.ConnectionError("answer lost")

    inner.send = send_then_lose_answer  # type: ignore[method-assign]
    with pytest.raises(HubUnavailable):
        lee.sync()
    inner.send = real_send  # type: ignore[method-assign]
    assert [r["status"] for r in outbox(lee)] == ["pending"]
    assert lee.replica.get("last_sync_error")
    report = lee.sync()
    assert report.accepted == 1 and report.rejected == []
    assert [r["status"] for r in outbox(lee)] == ["accepted"]
    assert log_size(hub) == 1
    assert lee.replica.get("last_sync_error") is None


@sqlite_only
def test_changes_ahead_of_a_gap_are_held_then_sent_again(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop()
    first = edits.create(lee.device, "resources", dict(VEHICLE))
    second = edits.create(lee.device, "resources", {**VEHICLE, "name": "Unit 13"})
    # the outbox believes seq 1 went out (say, a replica restored from a copy): the hub sees a gap
    lee.replica.conn.execute("UPDATE outbox SET status = 'accepted' WHERE seq = 1")
    report = lee.sync()  # returns: nothing more can be done now
    assert (report.held, report.accepted, report.rejected) == (1, 0, [])
    assert [(r["seq"], r["status"]) for r in outbox(lee)] == [(1, "accepted"), (2, "held")]
    assert "waiting for seq 1" in outbox(lee)[1]["reason"]
    assert overview.status(lee.device)["pending"] == 1
    assert log_size(hub) == 0

    lee.replica.conn.execute("UPDATE outbox SET status = 'pending' WHERE seq = 1")
    report = lee.sync()
    assert report.accepted == 2 and report.held == 0
    assert [r["status"] for r in outbox(lee)] == ["accepted", "accepted"]
    assert log_size(hub) == 2
    ray = laptop("SPD", "Ofc. Ray")
    ray.sync()
    assert {first["id"], second["id"]} <= set(views(ray))


def test_a_write_the_agreement_does_not_grant_is_rejected_and_undone(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    kim = laptop("CSO", "Dep. Kim")
    hub.agreement("SPD", "CSO", ["resources"], write=["status"])
    unit = edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()
    kim.sync()

    edits.update(kim.device, unit["id"], {"name": "Mine now"})
    assert kim.record(unit["id"])["name"] == "Mine now"  # type: ignore[index]
    refused_id = outbox(kim)[-1]["change_id"]
    report = kim.sync()
    assert report.accepted == 0
    [rejected] = report.rejected
    assert rejected["id"] == refused_id and rejected["record_id"] == unit["id"]
    assert "name" in rejected["reason"]
    [row] = outbox(kim)
    assert row["status"] == "rejected" and "name" in row["reason"]
    assert kim.record(unit["id"])["name"] == "Unit 12"  # rebuilt without the refused change
    assert kim.count("changes", f"change_id = '{refused_id}'") == 0
    info = overview.status(kim.device)
    assert info["pending"] == 0
    assert [r["change_id"] for r in info["rejected"]] == [refused_id]
    assert "name" in info["rejected"][0]["reason"]

    # the feed goes on after the refused link: a granted write is accepted
    edits.update(kim.device, unit["id"], {"status": "maintenance"})
    after = kim.sync()
    assert (after.accepted, after.rejected) == (1, [])
    lee.sync()
    assert lee.record(unit["id"])["status"] == "maintenance"  # type: ignore[index]
    assert lee.record(unit["id"])["name"] == "Unit 12"  # type: ignore[index]

    # had the answer been lost, the re-sent change gets the same verdict: still refused
    kim.replica.conn.execute("UPDATE outbox SET status = 'pending' WHERE change_id = ?", (refused_id,))
    again = kim.sync()
    assert [r["id"] for r in again.rejected] == [refused_id]
    assert [r["status"] for r in outbox(kim)] == ["rejected", "accepted"]
    assert kim.record(unit["id"])["name"] == "Unit 12"  # type: ignore[index]
