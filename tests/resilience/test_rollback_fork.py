"""A laptop shown an older or a forked hub history than it holds a signed checkpoint of stops, loudly.

Real ``fieldsync-hub serve`` processes on loopback and officers driven through
``fieldsync``: (a) the hub's instance folder is restored from a copy taken
earlier and the hub restarted; (b) a second hub, started from a copy of the
first, is fed other changes and answers at the same port. The laptop refuses
before it pushes or applies anything, keeps refusing on later runs (the alarm
is in its replica, shown by ``status``), and resumes only after ``fieldsync
accept-hub`` with the size and head the hub's administrator read on the hub
(``fieldsync-hub log head``) - after which nothing it had sent is lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import Hub

from .hubcopy import log_head, refused, restore, snapshot


def feed_of(hub: Hub, device_id: str) -> list[int]:
    return [r["seq"] for r in hub.query("SELECT seq FROM feed_links WHERE device = ? ORDER BY seq", (device_id,))]


def test_a_hub_restored_from_an_old_copy_is_refused_until_the_officer_accepts_it(
    hub_process: Hub, officer: Any, tmp_path: Path
) -> None:
    hub = hub_process
    lee, ray = officer("SPD", "lee"), officer("SPD", "ray")
    first = lee.add("resource", kind="vehicle", name="Unit 1")
    lee.sync()
    ray.sync()
    backup = snapshot(hub, tmp_path / "backup")  # the hub's log holds 1 entry here
    later = [lee.add("resource", kind="vehicle", name=f"Unit {i}") for i in (2, 3)]
    lee.sync()
    ray.sync()  # ray now holds a checkpoint of size 3
    signed = log_head(hub)
    assert signed["size"] == 3
    pending = ray.add("contact", name="Lt. Ortiz", role="liaison")

    restore(hub, backup)
    old = log_head(hub)
    assert old["size"] == 1
    before = (ray.status()["cursor"], sorted(r["id"] for r in ray.list("resource")))
    for attempt in range(2):  # refused, and refused again on the next run
        err = refused(ray.sync(check=False))
        assert "ROLLBACK" in err and f"{old['size']} log entries (head {old['head']})" in err, err
        assert f"signed {signed['size']} (head {signed['head']})" in err, err
        if attempt:
            assert "kept until `fieldsync accept-hub`" in err, err
    assert feed_of(hub, ray.device_id) == []  # nothing was sent...
    assert (ray.status()["cursor"], sorted(r["id"] for r in ray.list("resource"))) == before  # ...or applied
    assert "HUB ALARM (ROLLBACK" in ray.run("status").stdout

    # The officer cannot clear it with values the hub's administrator did not give.
    err = refused(ray.run("accept-hub", "--size", signed["size"], "--head", signed["head"], check=False))
    assert "not accepted" in err and ray.status()["hub_alarm"] is not None

    out = ray.run("accept-hub", "--size", old["size"], "--head", old["head"]).stdout
    assert "accepted the hub's history at size 1" in out, out
    ray.sync()
    info = ray.status()
    assert info["hub_alarm"] is None and info["hub_resets"][0]["alarm"]["kind"] == "ROLLBACK" and info["pending"] == 0
    assert feed_of(hub, ray.device_id) == [1] and pending in {r["record_id"] for r in hub.records()}

    # Lee's two changes the restored hub lost are sent again (same signed bytes: no equivocation).
    assert "ROLLBACK" in refused(lee.sync(check=False))
    now = log_head(hub)
    out = lee.run("accept-hub", "--size", now["size"], "--head", now["head"]).stdout
    assert "2 of this laptop's changes queued again" in out, out
    lee.sync()
    assert feed_of(hub, lee.device_id) == [1, 2, 3]
    assert {first, *later, pending} <= {r["record_id"] for r in hub.records()}
    assert {r["status"] for r in hub.query("SELECT status FROM devices")} == {"active"}


def test_a_forked_hub_at_the_same_address_is_refused(hub_process: Hub, officer: Any, tmp_path: Path) -> None:
    """The fork has grown past the size the laptop saw: its size alone would not tell (the same-size
    case is tests/field_client/test_hubtrust.py's); the head of its log at that size does."""
    hub = hub_process
    lee, ray, kim = officer("SPD", "lee"), officer("SPD", "ray"), officer("SPD", "kim")
    lee.add("resource", kind="vehicle", name="Unit 1")
    lee.sync()
    fork_folder = snapshot(hub, tmp_path / "fork" / "instance")
    lee.add("resource", kind="vehicle", name="Unit 2, on the real hub")
    lee.sync()
    ray.sync()  # ray holds a checkpoint of size 2
    signed = log_head(hub)

    hub.stop()  # the other hub takes the address
    fork = Hub(fork_folder, hub.port)
    fork.start()
    try:
        for i in range(2):
            kim.add("resource", kind="vehicle", name=f"Unit {i}, on the fork")
        kim.sync()
        assert log_head(fork)["size"] == 3
        pending = ray.add("contact", name="Lt. Ortiz", role="liaison")
        before = sorted(r["id"] for r in ray.list("resource"))
        err = refused(ray.sync(check=False))
        assert "FORK" in err and f"signed {signed['size']} (head {signed['head']})" in err, err
        assert feed_of(fork, ray.device_id) == []
        assert sorted(r["id"] for r in ray.list("resource")) == before
        assert ray.status()["hub_alarm"]["kind"] == "FORK" and pending not in {r["record_id"] for r in fork.records()}
    finally:
        fork.stop()
