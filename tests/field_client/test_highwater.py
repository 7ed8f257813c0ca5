"""The high-water mark outside the replica, and the clean resync of a replica restored from an old copy.

Real SQLCipher replicas in tmp folders, the hub in-process (SQLite): a restored
replica is made by copying the replica's files aside and putting them back
later, as a backup restore would, while ``highwater.json`` stays as it was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backend.models import Device as HubDevice
from backend.models import Equivocation, FeedLink
from field_client import edits, highwater, overview
from field_client.errors import FeedClosed, HighWaterInvalid
from field_client.replica import DB_NAME, HEADER_NAME
from tests.backend.helpers import Hub, rows

from .conftest import MakeLaptop
from .helpers import VEHICLE, Laptop

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
KEY = bytes(range(32))


def save(lt: Laptop, to: Path) -> None:
    """A backup of the replica file (closed first, so its WAL is checkpointed into it)."""
    lt.replica.close()
    to.mkdir()
    for name in (DB_NAME, HEADER_NAME):
        shutil.copy2(lt.home / name, to / name)
    lt.reopen()


def restore(lt: Laptop, backup: Path) -> None:
    """Put the backup back over the replica; highwater.json is left where it is."""
    lt.replica.close()
    for name in (f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
        (lt.home / name).unlink(missing_ok=True)
    for name in (DB_NAME, HEADER_NAME):
        shutil.copy2(backup / name, lt.home / name)
    lt.reopen()


# -- the mark itself ------------------------------------------------------------------------


def test_a_mark_reads_back_and_is_none_when_absent(tmp_path: Path) -> None:
    assert highwater.read(tmp_path, KEY, "dev-1") is None
    highwater.write(tmp_path, KEY, highwater.Mark("dev-1", 7, "h7"))
    assert highwater.read(tmp_path, KEY, "dev-1") == highwater.Mark("dev-1", 7, "h7")
    assert not list(tmp_path.glob("*.tmp"))  # written through a temp file, renamed over
    assert oct((tmp_path / highwater.NAME).stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: {**d, "seq": d["seq"] - 1},  # lowered to hide a restore
        lambda d: {**d, "hash": "other"},
        lambda d: {**d, "mac": "0" * 64},
        lambda d: {k: v for k, v in d.items() if k != "mac"},
        lambda d: {**d, "seq": "7"},
    ],
)
def test_an_edited_mark_is_refused(tmp_path: Path, edit: object) -> None:
    highwater.write(tmp_path, KEY, highwater.Mark("dev-1", 7, "h7"))
    target = tmp_path / highwater.NAME
    target.write_text(json.dumps(edit(json.loads(target.read_text()))))  # type: ignore[operator]
    with pytest.raises(HighWaterInvalid):
        highwater.read(tmp_path, KEY, "dev-1")


def test_a_mark_needs_the_replica_key_and_names_its_device(tmp_path: Path) -> None:
    highwater.write(tmp_path, KEY, highwater.Mark("dev-1", 7, "h7"))
    with pytest.raises(HighWaterInvalid, match="MAC"):
        highwater.read(tmp_path, bytes(32), "dev-1")  # another key: another replica, or a forger
    with pytest.raises(HighWaterInvalid, match="names device dev-1"):
        highwater.read(tmp_path, KEY, "dev-2")
    (tmp_path / highwater.NAME).write_text("not json")
    with pytest.raises(HighWaterInvalid, match="not a high-water mark"):
        highwater.read(tmp_path, KEY, "dev-1")


# -- kept by every edit, after its commit ---------------------------------------------------


@sqlite_only
def test_each_edit_advances_the_mark_after_its_commit(laptop: MakeLaptop) -> None:
    lee = laptop()
    assert lee.device.mark() is None
    edits.create(lee.device, "resources", dict(VEHICLE))
    edits.create(lee.device, "resources", dict(VEHICLE))
    mark = lee.device.mark()
    assert mark is not None and mark.seq == 2 and mark.hash == lee.replica.get("prev")
    assert mark.device == lee.device.device_id

    with pytest.raises(RuntimeError), lee.replica.transaction():  # rolled back: the mark does not move
        edits.create(lee.device, "resources", dict(VEHICLE))
        assert lee.device.mark() == mark  # not before the commit either
        raise RuntimeError("crash before commit")
    assert lee.device.mark() == mark and lee.replica.get("seq") == 2

    with lee.replica.transaction():  # one mark per transaction, written once it committed
        for _ in range(3):
            edits.create(lee.device, "resources", dict(VEHICLE))
        assert lee.device.mark() == mark
    assert lee.device.mark().seq == 5  # type: ignore[union-attr]


@sqlite_only
def test_a_mark_behind_the_replica_is_fine_and_catches_up(laptop: MakeLaptop) -> None:
    """A crash after the commit and before the mark leaves the mark behind: no alarm."""
    lee = laptop()
    edits.create(lee.device, "resources", dict(VEHICLE))
    behind = (lee.home / highwater.NAME).read_bytes()
    edits.create(lee.device, "resources", dict(VEHICLE))
    (lee.home / highwater.NAME).write_bytes(behind)  # as if the process died between the two
    lee.reopen()
    assert overview.status(lee.device)["feed_closed"] is None
    edits.create(lee.device, "resources", dict(VEHICLE))
    assert lee.device.mark().seq == 3  # type: ignore[union-attr]
    assert lee.sync().accepted == 3


# -- a replica restored from an old copy ------------------------------------------------------


@sqlite_only
def test_a_restored_replica_signs_nothing_until_it_is_resynced(laptop: MakeLaptop, tmp_path: Path) -> None:
    lee = laptop()
    edits.create(lee.device, "resources", dict(VEHICLE))
    save(lee, tmp_path / "backup")
    edits.create(lee.device, "resources", {**VEHICLE, "name": "after the backup"})
    restore(lee, tmp_path / "backup")
    before = (lee.count("outbox"), lee.count("records"), lee.replica.get("seq"))
    with pytest.raises(FeedClosed, match="older than its high-water mark"):
        edits.create(lee.device, "resources", {**VEHICLE, "name": "would reuse seq 2"})
    assert (lee.count("outbox"), lee.count("records"), lee.replica.get("seq")) == before == (1, 1, 1)
    assert "older than its high-water mark" in overview.status(lee.device)["feed_closed"]


@sqlite_only
def test_a_restored_replica_resyncs_cleanly_when_the_hub_holds_everything(
    hub: Hub, laptop: MakeLaptop, tmp_path: Path
) -> None:
    lee = laptop()
    first = edits.create(lee.device, "resources", dict(VEHICLE))
    save(lee, tmp_path / "backup")  # the backup still has seq 1 pending
    second = edits.create(lee.device, "resources", {**VEHICLE, "name": "after the backup"})
    assert lee.sync().accepted == 2
    restore(lee, tmp_path / "backup")
    assert lee.count("outbox", "status = 'pending'") == 1 and lee.record(second["id"]) is None

    report = lee.sync()
    assert report.restored is not None
    assert report.restored["already_on_hub"] == [1] and report.restored["set_aside"] == []
    assert report.restored["burned"] is None and report.pushed == 0  # nothing stale re-sent
    assert lee.record(second["id"])["name"] == "after the backup"  # type: ignore[index] - rebuilt from the hub
    assert lee.record(first["id"]) is not None
    assert (lee.replica.get("seq"), lee.device.mark().seq) == (2, 2)  # type: ignore[union-attr]

    third = edits.create(lee.device, "resources", {**VEHICLE, "name": "after the resync"})
    assert lee.sync().accepted == 1  # seq 3: a new link, not a second seq 2
    [dev] = rows(hub.app, HubDevice, HubDevice.id == lee.device.device_id)
    assert (dev.status, dev.feed_seq) == ("active", 3)
    links = rows(hub.app, FeedLink, order_by=FeedLink.seq)
    assert [(link.seq, link.status, link.wire["record_id"]) for link in links] == [
        (1, "accepted", first["id"]),
        (2, "accepted", second["id"]),
        (3, "accepted", third["id"]),
    ]
    assert rows(hub.app, Equivocation) == []


@sqlite_only
def test_seqs_signed_after_the_backup_and_never_pushed_are_burned(hub: Hub, laptop: MakeLaptop, tmp_path: Path) -> None:
    lee = laptop()
    ray = laptop("SPD", "Ofc. Ray")
    edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()  # the hub holds seq 1
    stale = edits.create(lee.device, "resources", {**VEHICLE, "name": "seq 2, in the backup only"})
    save(lee, tmp_path / "backup")
    edits.create(lee.device, "resources", {**VEHICLE, "name": "seq 3, lost with the newer file"})
    restore(lee, tmp_path / "backup")
    shared = edits.create(ray.device, "resources", {**VEHICLE, "name": "Ray's"})
    ray.sync()

    report = lee.sync()  # read-only resync: pulls work, nothing is sent
    assert report.restored is not None and report.pushed == 0
    assert report.restored["burned"] == {"from": 2, "to": 3}
    assert report.restored["lost"] == [3] and report.restored["set_aside"] == [2]
    assert lee.record(shared["id"]) is not None  # pulled
    assert lee.record(stale["id"]) is None  # not on the hub: not in the rebuilt records...
    [aside] = overview.status(lee.device)["set_aside"]  # ...but kept aside, with its signed wire
    assert aside["seq"] == 2 and "burned range 2..3" in aside["reason"]
    assert json.loads(aside["wire"])["record_id"] == stale["id"]
    with pytest.raises(FeedClosed, match=r"seqs 2\.\.3"):
        edits.create(lee.device, "resources", dict(VEHICLE))
    assert lee.sync().pushed == 0  # later syncs stay read-only and still pull
    [dev] = rows(hub.app, HubDevice, HubDevice.id == lee.device.device_id)
    assert (dev.status, dev.feed_seq) == ("active", 1)


@sqlite_only
def test_a_tampered_mark_stops_edits_and_sync(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop()
    edits.create(lee.device, "resources", dict(VEHICLE))
    edits.create(lee.device, "resources", dict(VEHICLE))
    target = lee.home / highwater.NAME
    target.write_text(json.dumps({**json.loads(target.read_text()), "seq": 0}))  # lowered without the key
    with pytest.raises(FeedClosed, match="fails its MAC"):
        edits.create(lee.device, "resources", dict(VEHICLE))
    with pytest.raises(HighWaterInvalid, match="fails its MAC"):
        lee.sync()
    assert rows(hub.app, FeedLink) == [] and lee.count("outbox") == 2
    assert "fails its MAC" in overview.status(lee.device)["last_sync_error"]
