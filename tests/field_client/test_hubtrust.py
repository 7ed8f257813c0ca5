"""Hub trust (field_client/hubtrust.py): checkpoints verified and compared, the ROLLBACK / FORK alarm
raised before any push, kept, and cleared only by accept-hub.

The hub runs in-process (SQLite); the laptop's kept checkpoint is edited to
stand for a longer or another history than the hub now shows (the end-to-end
version, with a hub restored from a copy and a forked hub on the same port, is
tests/resilience/test_rollback_fork.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from backend.models import FeedLink, LogHead
from field_client import edits, hubtrust, overview
from field_client.errors import ClientError, HubUntrusted
from tests.backend.helpers import Hub, rows

from .conftest import MakeLaptop
from .helpers import VEHICLE, Laptop

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def requests_of(lt: Laptop) -> list[str]:
    """Record the path of every request the laptop sends from now on."""
    sent: list[str] = []
    inner = lt.adapter
    assert inner is not None
    real = inner.send

    def send(request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        sent.append(requests.utils.urlparse(request.url or "").path)
        return real(request, *args, **kwargs)

    inner.send = send  # type: ignore[method-assign]
    return sent


def head(hub: Hub) -> tuple[int, str | None]:
    [row] = rows(hub.app, LogHead)
    return row.size, row.head


@sqlite_only
def test_a_rollback_is_caught_before_any_push_and_kept_until_accepted(hub: Hub, laptop: MakeLaptop) -> None:
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()
    ray.sync()
    kept = ray.replica.get("checkpoint")
    ray.replica.set("checkpoint", {**kept, "size": 5, "head": "B" * 43})  # it once saw 5 entries
    edits.create(ray.device, "resources", {**VEHICLE, "name": "pending on ray"})
    sent = requests_of(ray)
    with pytest.raises(HubUntrusted, match=r"ROLLBACK: the hub shows 1 log entries .* signed 5 \(head B+\)"):
        ray.sync()
    assert sent == ["/api/v1/sync/feed"]  # nothing pushed, nothing pulled
    assert rows(hub.app, FeedLink, FeedLink.device == ray.device.device_id) == []
    alarm = overview.status(ray.device)["hub_alarm"]
    assert alarm["kind"] == "ROLLBACK" and alarm["seen"]["size"] == 1 and alarm["kept"]["size"] == 5

    with pytest.raises(HubUntrusted, match="kept until `fieldsync accept-hub`"):
        ray.sync()
    assert sent == ["/api/v1/sync/feed"]  # refused again, before any request
    size, value = head(hub)
    with pytest.raises(HubUntrusted, match="not accepted"):
        hubtrust.accept_hub(ray.device, ray.client, size=5, head="B" * 43)
    with pytest.raises(HubUntrusted, match="not accepted"):
        hubtrust.accept_hub(ray.device, ray.client, size=size, head="C" * 43)
    assert ray.replica.get("hub_alarm") is not None

    record = hubtrust.accept_hub(ray.device, ray.client, size=size, head=value or "")
    assert record["alarm"]["kind"] == "ROLLBACK" and ray.replica.get("hub_alarm") is None
    assert ray.replica.get("cursor") == 0 and ray.replica.get("checkpoint")["size"] == size
    assert ray.sync().accepted == 1
    assert overview.status(ray.device)["hub_resets"] == [record]
    with pytest.raises(ClientError, match="no ROLLBACK or FORK alarm"):
        hubtrust.accept_hub(ray.device, ray.client, size=size, head=value or "")


@sqlite_only
def test_accepting_a_rolled_back_hub_sends_again_what_it_lost(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop()
    for name in ("one", "two", "three"):
        edits.create(lee.device, "resources", {**VEHICLE, "name": name})
    lee.sync()
    # as if the hub had lost seq 2 and 3 of lee's feed in a restore: lee's outbox says accepted
    lee.replica.set("hub_alarm", {"kind": "ROLLBACK", "message": "ROLLBACK: test", "detected_at": "now"})
    with hub.app.app_context():
        from backend.db import db
        from backend.models import Device

        db.session.get(Device, lee.device.device_id).feed_seq = 1  # type: ignore[union-attr]
        db.session.commit()
    size, value = head(hub)
    record = hubtrust.accept_hub(lee.device, lee.client, size=size, head=value or "")
    assert record["requeued"] == [2, 3]
    assert lee.count("outbox", "status = 'pending'") == 2


@sqlite_only
def test_a_fork_that_grew_past_the_kept_size_is_caught_by_its_head_at_that_size(hub: Hub, laptop: MakeLaptop) -> None:
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()
    ray.sync()
    kept = ray.replica.get("checkpoint")
    ray.replica.set("checkpoint", {**kept, "head": "A" * 43})  # size 1, another history
    for name in ("two", "three"):
        edits.create(lee.device, "resources", {**VEHICLE, "name": name})
    lee.sync()  # the hub's log is now longer than ray's kept size: size alone would pass
    sent = requests_of(ray)
    with pytest.raises(HubUntrusted, match=r"FORK: the hub shows 3 log entries .*, head \S+ at size 1,"):
        ray.sync()
    assert sent == ["/api/v1/sync/feed"] and ray.replica.get("hub_alarm")["kind"] == "FORK"
    assert ray.replica.get("cursor") == 1


def test_a_rolled_back_hub_is_refused_loudly(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    ray = laptop("SPD", "Ofc. Ray")
    edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()
    ray.sync()
    kept = ray.replica.get("checkpoint")
    assert kept["size"] == 1 and kept["head"]
    ray.replica.set("checkpoint", {**kept, "size": 10**6})  # the hub once signed a far longer log
    unseen = edits.create(lee.device, "resources", {**VEHICLE, "name": "Unit 13"})
    lee.sync()
    before = (ray.replica.get("cursor"), ray.count("changes"), ray.count("records"))
    with pytest.raises(HubUntrusted, match="ROLLBACK"):
        ray.sync()
    assert (ray.replica.get("cursor"), ray.count("changes"), ray.count("records")) == before
    assert ray.record(unseen["id"]) is None
    assert "ROLLBACK" in overview.status(ray.device)["last_sync_error"]
    assert ray.replica.get("checkpoint")["size"] == 10**6  # the alarm is not silenced by the attempt


@sqlite_only
def test_a_forked_hub_is_refused_loudly(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    ray = laptop("SPD", "Ofc. Ray")
    edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()
    ray.sync()
    kept = ray.replica.get("checkpoint")
    ray.replica.set("checkpoint", {**kept, "head": "A" * 43})  # same size, another history
    with pytest.raises(HubUntrusted, match="FORK"):
        ray.sync()


@sqlite_only
def test_a_checkpoint_that_does_not_verify_is_refused(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop()
    edits.create(lee.device, "resources", dict(VEHICLE))
    inner = lee.adapter
    assert inner is not None
    real_send = inner.send

    def forge_checkpoint(request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        response = real_send(request, *args, **kwargs)
        if "/sync/pull" in (request.url or ""):
            body = response.json()
            body["checkpoint"]["size"] += 5
            response._content = json.dumps(body).encode()
            response.headers.pop("Content-Encoding", None)
        return response

    inner.send = forge_checkpoint  # type: ignore[method-assign]
    with pytest.raises(HubUntrusted, match="checkpoint"):
        lee.sync()
    assert lee.replica.get("cursor") == 0
    assert lee.replica.get("checkpoint") is None
