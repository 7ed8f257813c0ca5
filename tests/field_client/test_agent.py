"""The sync agent (field_client/agent.py) against the hub in-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import os
import random
import signal
import threading
import time
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from sqlalchemy import select

from backend import keystore
from backend.db import db
from backend.models import Device as DeviceRow
from backend.models import LogEntry, RegistryEntry
from crypto import SigningKey, agency_entry, change_hash, utcnow
from field_client import agent, edits, state
from field_client import verifier as page_verifier
from field_client.errors import ClientError, HubRefused, HubUnavailable, HubUntrusted
from field_client.transport import HubClient
from sync import make_change
from tests.backend.helpers import Hub

from .conftest import MakeLaptop
from .helpers import VEHICLE, Laptop
from .inprocess import FlakyAdapter

# Tests of the laptop's own checks run against the SQLite hub only; the rest on both databases.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def outbox(lt: Laptop) -> list[dict[str, Any]]:
    return lt.replica.rows("SELECT seq, change_id, record_id, status, reason FROM outbox ORDER BY seq")


def views(lt: Laptop, collection: str = "resources") -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in state.list_records(lt.replica, collection, include_deleted=True)}


def log_size(hub: Hub) -> int:
    with hub.app.app_context():
        return len(db.session.scalars(select(LogEntry.seq)).all())


def next_second() -> None:
    """Sleep until the wall clock enters its next second."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.02)


# -- push and pull ----------------------------------------------------------------------------------


def test_push_then_pull(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    ray = laptop("SPD", "Ofc. Ray")
    unit = edits.create(lee.device, "resources", dict(VEHICLE))
    edits.update(lee.device, unit["id"], {"status": "deployed"})
    liaison = edits.create(lee.device, "contacts", {"name": "Lt. Park", "role": "liaison", "notes": "n" * 2000})
    assert agent.status(lee.device)["pending"] == 3

    report = lee.sync()
    assert (report.pushed, report.accepted, report.rejected, report.held) == (3, 3, [], 0)
    assert [r["status"] for r in outbox(lee)] == ["accepted"] * 3
    assert agent.status(lee.device)["pending"] == 0
    assert log_size(hub) == 3
    assert lee.replica.get("cursor") == 3

    got = ray.sync()
    assert (got.pushed, got.pulled, got.applied, got.refused, got.cursor) == (0, 3, 3, [], 3)
    assert views(ray) == views(lee)
    assert views(ray, "contacts")[liaison["id"]]["notes"] == "n" * 2000
    assert ray.count("changes", "origin = 'hub'") == 3

    again = ray.sync()  # nothing new
    assert (again.pushed, again.pulled, again.applied) == (0, 0, 0)
    assert ray.count("changes") == 3

    # the officer's own changes come back as duplicates, not applied twice
    own = lee.sync()
    assert own.applied == 0
    assert lee.count("changes") == 3


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
    assert agent.status(lee.device)["pending"] == 1
    assert log_size(hub) == 0

    lee.replica.conn.execute("UPDATE outbox SET status = 'pending' WHERE seq = 1")
    report = lee.sync()
    assert report.accepted == 2 and report.held == 0
    assert [r["status"] for r in outbox(lee)] == ["accepted", "accepted"]
    assert log_size(hub) == 2
    ray = laptop("SPD", "Ofc. Ray")
    ray.sync()
    assert {first["id"], second["id"]} <= set(views(ray))


def test_two_agencies_share_under_an_agreement(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    kim = laptop("CSO", "Dep. Kim")
    hub.agreement("SPD", "CSO", ["resources"], withhold=["notes"], write=["status"])
    unit = edits.create(lee.device, "resources", {**VEHICLE, "notes": "keys at the front desk"})
    secret_contact = edits.create(lee.device, "contacts", {"name": "Informant", "role": "other"})
    own_contact = edits.create(kim.device, "contacts", {"name": "Dep. Cruz", "role": "liaison"})
    lee.sync()
    report = kim.sync()
    assert report.accepted == 1 and report.refused == []

    seen = kim.record(unit["id"])
    assert seen is not None
    assert (seen["name"], seen["agency"], seen["withheld"]) == ("Unit 12", "SPD", ["notes"])
    assert "notes" not in seen
    assert "keys at the front desk" not in json.dumps(kim.replica.rows("SELECT * FROM changes"))
    assert kim.record(secret_contact["id"]) is None  # contacts are not shared
    assert lee.sync().applied == 0
    assert lee.record(own_contact["id"]) is None  # nothing flows from CSO to SPD without an agreement

    # CSO may write status of SPD's vehicle
    edits.update(kim.device, unit["id"], {"status": "deployed"})
    assert kim.sync().accepted == 1
    lee.sync()
    mine = lee.record(unit["id"])
    assert mine is not None
    assert (mine["status"], mine["notes"]) == ("deployed", "keys at the front desk")


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
    info = agent.status(kim.device)
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


# -- what is pulled is verified ----------------------------------------------------------------------


def tamper(hub: Hub, change_id: str, edit: Any) -> None:
    """Change the hub's stored wire of one change, as a compromised hub (or its database) would."""
    with hub.app.app_context():
        entry = db.session.scalars(select(LogEntry).where(LogEntry.change_id == change_id)).one()
        wire = copy.deepcopy(entry.wire)
        edit(wire)
        entry.wire = wire
        db.session.commit()


FORGERIES: dict[str, Any] = {
    "value": lambda w: w["fields"]["name"].__setitem__("value", "Unit 99"),
    "agency": lambda w: w.__setitem__("agency", "CSO"),
    "seq": lambda w: w.__setitem__("seq", w["seq"] + 100),
    "salt": lambda w: w["fields"]["name"].__setitem__("salt", w["fields"]["kind"]["salt"]),
    "field-added": lambda w: w["fields"].__setitem__("notes", dict(w["fields"]["name"])),
}


@pytest.mark.parametrize("where", ["at home", "in the verification process"])
def test_changes_altered_on_the_hub_are_refused(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    ray = laptop("SPD", "Ofc. Ray")
    hub.agency("CSO")
    ray.sync()  # adopts the grown registry (CSO's) now: pages fetched under the old one would be verified at home
    honest = edits.create(lee.device, "resources", {**VEHICLE, "name": "Unit 7"})
    forged = {kind: edits.create(lee.device, "resources", dict(VEHICLE))["id"] for kind in FORGERIES}
    lee.sync()
    change_of = {r["record_id"]: r["change_id"] for r in outbox(lee)}
    for kind, edit in FORGERIES.items():
        tamper(hub, change_of[forged[kind]], edit)
    remote_pages: list[int] = []
    if where != "at home":  # pages of two, every page after the first verified by the worker process
        monkeypatch.setattr(agent, "PULL_LIMIT", 2)
        monkeypatch.setattr(page_verifier, "START_AFTER", 0)
        real_verified = agent._verified

        def counted(*args: Any) -> Any:
            out = real_verified(*args)
            if out is not None:
                remote_pages.append(len(out))
            return out

        monkeypatch.setattr(agent, "_verified", counted)

    report = ray.sync()
    assert remote_pages == ([2, 2] if where != "at home" else [])  # the first page is verified at home
    assert report.pulled == 1 + len(FORGERIES)
    assert report.applied == 1
    assert ray.record(honest["id"])["name"] == "Unit 7"  # type: ignore[index]
    assert sorted(r["id"] for r in report.refused) == sorted(change_of[forged[k]] for k in FORGERIES)
    assert all(r["reason"] for r in report.refused)
    for kind, record_id in forged.items():
        assert ray.record(record_id) is None, kind  # not applied
        assert ray.count("changes", f"record_id = '{record_id}'") == 0, kind
    kept = {r["change_id"]: r for r in ray.replica.rows("SELECT change_id, record_id, wire, reason FROM refused")}
    assert kept.keys() == {change_of[r] for r in forged.values()}
    value_forgery = kept[change_of[forged["value"]]]
    assert value_forgery["record_id"] == forged["value"]
    assert json.loads(value_forgery["wire"])["fields"]["name"]["value"] == "Unit 99"  # kept as evidence
    assert value_forgery["reason"]
    assert sorted(r["change_id"] for r in agent.status(ray.device)["refused"]) == sorted(kept)
    assert "Unit 99" not in json.dumps(ray.replica.rows('SELECT "values" FROM records'))
    assert ray.replica.get("cursor") == 1 + len(FORGERIES)  # refused, and not asked for again
    assert ray.sync().pulled == 0


def alive(pid: int) -> bool:
    """Whether a process of this pid is still there, not yet reaped (Unix: signal 0 only asks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # (someone else's process now holds the pid)
    return True


@sqlite_only
def test_the_verification_processes_start_at_once_and_answer_each_page_in_its_order(
    hub: Hub, laptop: MakeLaptop
) -> None:
    """PageVerifier as a long pull uses it: WORKERS processes start at once, at a lower priority
    than the laptop's own, and two pages of 60 changes with forgeries in both, verified side by
    side, give exactly the outcomes verify_page gives in this process, in each page's order."""
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(120):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    ids = [r["change_id"] for r in outbox(lee)]
    for index in (3, 100):  # one in each page
        tamper(hub, ids[index], FORGERIES["value"])
    pages = [ray.client.pull_page(cursor, 60) for cursor in (0, 60)]
    assert [len(answer["changes"]) for answer, _ in pages] == [60, 60]
    registry = ray.device.registry()
    key = (registry.head.size, registry.head.head)
    at_home = [page_verifier.verify_page(key, registry.entries, body) for _, body in pages]
    remote = page_verifier.PageVerifier()
    try:
        remote.start()
        pids = remote.pids
        assert len(set(pids)) == page_verifier.WORKERS == 2
        assert all(alive(pid) for pid in pids)
        futures = [remote.submit(registry, body) for _, body in pages]
        assert all(f is not None for f in futures)
        outcomes = [f.result(timeout=60) for f in futures if f is not None]
        assert remote.started
        # each runs below the laptop's own process, so the merge comes first (verifier's rules)
        expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + page_verifier.NICE)
        deadline = time.monotonic() + 30  # (a worker still starting has not lowered itself yet)
        while time.monotonic() < deadline and any(os.getpriority(os.PRIO_PROCESS, p) != expected for p in pids):
            time.sleep(0.05)
        assert [os.getpriority(os.PRIO_PROCESS, p) for p in pids] == [expected] * 2
        assert expected > os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        remote.close()
    assert not remote.pids and not remote.started
    deadline = time.monotonic() + 30  # closed: the processes end (and are reaped)
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)
    assert outcomes == at_home
    assert [[i for i, (ok, _) in enumerate(page) if not ok] for page in outcomes] == [[3], [40]]
    for (answer, _), page in zip(pages, outcomes, strict=True):
        for item, (ok, text) in zip(answer["changes"], page, strict=True):
            assert text == (change_hash(item["change"]) if ok else text) and text


def test_an_authentic_change_the_merge_refuses_is_kept_aside_not_among_the_changes(
    hub: Hub, laptop: MakeLaptop
) -> None:
    """A hub that serves a signed change its own merge would have refused (a contact for a
    resource's id): the laptop refuses it and keeps it aside, and does not keep it among the
    changes it rebuilds records from, so a later rebuild of that record still works."""
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    unit = edits.create(lee.device, "resources", {**VEHICLE, "name": "Unit 7"})
    edits.create(lee.device, "resources", {**VEHICLE, "name": "Unit 8"})
    lee.sync()
    (second,) = lee.replica.rows("SELECT change_id, wire FROM outbox WHERE seq = 2")
    stored = json.loads(second["wire"])
    forged = make_change(  # signed by lee's own device key: authentic, and inadmissible
        lee.device.key,
        collection="contacts",
        record_id=unit["id"],
        agency="SPD",
        device=lee.device.device_id,
        seq=stored["seq"],
        prev=stored["prev"],
        hlc=stored["hlc"],
        values={"name": "Not a contact", "role": "liaison"},
        seen={},
        change_id=stored["id"],
    )
    tamper(hub, second["change_id"], lambda w: (w.clear(), w.update(forged)))
    report = ray.sync()
    assert report.pulled == 2 and report.applied == 1
    assert [r["id"] for r in report.refused] == [forged["id"]]
    assert "not a contacts record" in report.refused[0]["reason"]
    assert ray.count("refused", f"change_id = '{forged['id']}'") == 1
    assert ray.count("changes", f"change_id = '{forged['id']}'") == 0  # not among the changes
    with ray.replica.transaction():
        state.rebuild(ray.replica, unit["id"], set())  # what a refused local edit of it triggers
    assert ray.record(unit["id"])["name"] == "Unit 7"  # type: ignore[index]


def test_once_started_the_verification_process_verifies_the_rest_of_the_pull(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of two of eight changes, the worker worth starting with four or more still to come:
    it starts for the second page and also takes the last two (fewer than four to come by then)."""
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(8):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    monkeypatch.setattr(agent, "PULL_LIMIT", 2)
    monkeypatch.setattr(page_verifier, "START_AFTER", 4)
    remote_pages: list[int] = []
    real_verified = agent._verified

    def counted(*args: Any) -> Any:
        out = real_verified(*args)
        remote_pages.append(0 if out is None else len(out))
        return out

    monkeypatch.setattr(agent, "_verified", counted)
    report = ray.sync()
    assert report.pulled == 8 and report.applied == 8 and not report.refused
    assert remote_pages == [0, 2, 2, 2]  # the first page at home (nothing known yet), then the worker's
    assert views(ray) == views(lee)


def test_a_long_pull_foreseen_by_the_probe_starts_the_verification_process_before_the_push(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe's checkpoint tells how much is still to come: the worker starts before the
    push, so its start-up runs beside it; a short pull starts none."""
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(6):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    edits.create(ray.device, "resources", {**VEHICLE, "name": "Ray's car"})
    monkeypatch.setattr(agent, "PULL_LIMIT", 2)
    monkeypatch.setattr(page_verifier, "START_AFTER", 4)
    events: list[str] = []
    real_start, real_push, real_verified = page_verifier.PageVerifier.start, agent.push, agent._verified

    def start(self: page_verifier.PageVerifier) -> None:
        events.append("start")
        real_start(self)

    def push(*args: Any, **kw: Any) -> None:
        events.append("push")
        real_push(*args, **kw)

    def counted(*args: Any) -> Any:
        out = real_verified(*args)
        events.append(f"worker {0 if out is None else len(out)}")
        return out

    monkeypatch.setattr(page_verifier.PageVerifier, "start", start)
    monkeypatch.setattr(agent, "push", push)
    monkeypatch.setattr(agent, "_verified", counted)
    report = ray.sync()
    assert report.pushed == 1 and report.pulled == 7 and report.applied == 6 and not report.refused
    # started before the push; the first page at home all the same (a foreseen pull may be short)
    assert events == ["start", "push", "worker 0", "worker 2", "worker 2", "worker 1"]
    events.clear()
    lee.sync()
    assert views(ray) == views(lee)
    edits.create(lee.device, "resources", {**VEHICLE, "name": "Unit 6"})
    lee.sync()
    events.clear()
    assert ray.sync().pulled == 1
    assert events == ["push", "worker 0"]  # one change to come: no worker, the page at home


class _Spied:
    """Records how sync() and pull() make their pages on the way, and when those are closed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[tuple[int, bool]] = []  # (pages asked for at once, beside the push)
        self.closed = 0
        spy = self

        class Pages(agent._Pages):
            def __init__(self, *args: Any, **kw: Any) -> None:
                spy.made.append((args[4], bool(kw.get("pushing"))))
                super().__init__(*args, **kw)

            def close(self) -> None:
                spy.closed += 1
                super().close()

        monkeypatch.setattr(agent, "_Pages", Pages)


def _long_pull_beside_a_push(
    laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch, own: int
) -> tuple[Laptop, Laptop, list[str]]:
    """Lee has pushed 6 changes; Ray has ``own`` to push and a long pull to come (pages of 2).
    Each page Ray's laptop asks for is recorded as ``fetch <cursor>`` (pull() calls pull_page)."""
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(6):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    for i in range(own):
        edits.create(ray.device, "resources", {**VEHICLE, "name": f"Ray's car {i}"})
    monkeypatch.setattr(agent, "PULL_LIMIT", 2)
    monkeypatch.setattr(page_verifier, "START_AFTER", 4)
    events: list[str] = []
    real_pull_page = HubClient.pull_page

    def pull_page(self: HubClient, cursor: int, limit: int | None = None) -> Any:
        events.append(f"fetch {cursor}")
        out = real_pull_page(self, cursor, limit)
        events.append(f"fetched {cursor}")
        return out

    monkeypatch.setattr(HubClient, "pull_page", pull_page)
    return lee, ray, events


def _push_once(events: list[str], until: str, monkeypatch: pytest.MonkeyPatch, action: Any = None) -> None:
    """agent.push, waiting first until ``until`` is among the events (the fetcher got that far
    beside it); ``action`` instead of the real push when given."""
    real_push = agent.push

    def push(device: Any, *args: Any, **kw: Any) -> None:
        deadline = time.monotonic() + 30
        while until not in events:
            assert time.monotonic() < deadline, events
            time.sleep(0.005)
        events.append(f"push, cursor {device.replica.get('cursor', 0)}")
        (action or real_push)(device, *args, **kw)
        events.append(f"pushed, cursor {device.replica.get('cursor', 0)}")

    monkeypatch.setattr(agent, "push", push)


@sqlite_only
def test_before_a_long_pull_its_first_pages_are_fetched_while_the_push_runs_and_applied_after_it(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The push waits here until the fetcher has fetched the log's last page (more: false, as
    the log was): every page came beside the push, none was applied before it ended, and that
    end is not taken for the end: the laptop's own pushed changes are asked for after it."""
    lee, ray, events = _long_pull_beside_a_push(laptop, monkeypatch, own=2)
    spied = _Spied(monkeypatch)
    _push_once(events, "fetched 4", monkeypatch)
    report = ray.sync()
    assert report.pushed == 2 and report.pulled == 8 and report.applied == 6 and not report.refused
    assert spied.made == [(agent.EARLY_PAGES, True)] and spied.closed >= 1
    assert events[: events.index("push, cursor 0")] == ["fetch 0", "fetched 0", "fetch 2", "fetched 2", "fetch 4",
                                                      "fetched 4"]  # fmt: skip
    assert "pushed, cursor 0" in events  # nothing applied while pushing
    assert events[-2:] == ["fetch 6", "fetched 6"] and events.index("fetch 6") > events.index("pushed, cursor 0")
    assert ray.replica.get("cursor") == 8 == log_size(hub)
    lee.sync()
    assert views(ray) == views(lee) and len(views(ray)) == 8


@sqlite_only
def test_a_page_that_failed_beside_the_push_is_asked_for_again_after_it(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub busy with the push may time a pull out: that page is asked for again once the push
    is done, and the sync succeeds (a failure after the push would still be the sync's)."""
    _, ray, events = _long_pull_beside_a_push(laptop, monkeypatch, own=1)
    spied_pull_page = HubClient.pull_page

    def flaky(self: HubClient, cursor: int, limit: int | None = None) -> Any:
        if cursor == 2 and "fetch 2: timed out" not in events:
            events.append("fetch 2: timed out")
            raise HubUnavailable("the hub did not answer in time")
        return spied_pull_page(self, cursor, limit)

    monkeypatch.setattr(HubClient, "pull_page", flaky)
    _push_once(events, "fetch 2: timed out", monkeypatch)
    report = ray.sync()
    assert report.pushed == 1 and report.pulled == 7 and not report.refused
    assert events.index("fetch 2") > events.index("pushed, cursor 0")  # asked for again after the push
    assert ray.replica.get("cursor") == 7 == log_size(hub)


@sqlite_only
def test_a_long_pull_with_nothing_to_push_fetches_no_pages_early(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ray, events = _long_pull_beside_a_push(laptop, monkeypatch, own=0)
    spied = _Spied(monkeypatch)
    events.append("ready")
    _push_once(events, "ready", monkeypatch)  # the push waits for nothing
    assert ray.sync().pulled == 6
    assert spied.made == [(agent.PREFETCH, False)]  # the pull's own, after the (empty) push
    assert events.index("fetch 0") > events.index("pushed, cursor 0")


@sqlite_only
def test_a_push_refused_with_pages_fetched_beside_it_applies_none_of_them(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ray, events = _long_pull_beside_a_push(laptop, monkeypatch, own=1)
    spied = _Spied(monkeypatch)

    def refused(*args: Any, **kw: Any) -> None:
        raise HubRefused(403, "forbidden", "refused for the test")

    _push_once(events, "fetched 0", monkeypatch, refused)
    with pytest.raises(HubRefused):
        ray.sync()
    assert spied.made == [(agent.EARLY_PAGES, True)] and spied.closed == 1  # stopped fetching
    assert ray.replica.get("cursor", 0) == 0 and len(views(ray)) == 1  # its own car only
    monkeypatch.undo()
    assert ray.sync().pulled == 7 and len(views(ray)) == 7


@sqlite_only
def test_a_page_still_on_its_way_when_the_pull_stops_starts_no_verification_process(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pull stops on its first page while the second is still being fetched; when that
    fetch ends, after sync() has returned, it must not start a worker nobody will close."""
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(8):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    monkeypatch.setattr(agent, "PULL_LIMIT", 2)
    monkeypatch.setattr(page_verifier, "START_AFTER", 4)
    release, handed_over = threading.Event(), threading.Event()
    made: list[page_verifier.PageVerifier] = []
    real_init, real_pull_page = page_verifier.PageVerifier.__init__, HubClient.pull_page
    real_submit = page_verifier.PageVerifier.submit

    def init(self: page_verifier.PageVerifier) -> None:
        real_init(self)
        made.append(self)

    def pull_page(self: HubClient, cursor: int, limit: int | None = None) -> Any:
        out = real_pull_page(self, cursor, limit)
        if cursor == 2:
            release.wait(10)  # a slow link for the second page
        return out

    def submit(self: page_verifier.PageVerifier, registry: Any, body: bytes) -> Any:
        try:
            return real_submit(self, registry, body)
        finally:
            if release.is_set():
                handed_over.set()

    def breaks(*args: Any) -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(page_verifier.PageVerifier, "__init__", init)
    monkeypatch.setattr(HubClient, "pull_page", pull_page)
    monkeypatch.setattr(page_verifier.PageVerifier, "submit", submit)
    monkeypatch.setattr(agent, "_apply_page", breaks)
    with pytest.raises(OSError):
        ray.sync()
    assert made and all(not v.started and not v.pids for v in made)  # closed when the pull stopped
    release.set()  # the fetch in flight ends now, and hands its page over
    assert handed_over.wait(10)
    assert not any(v.started or v.pids for v in made)


def test_pages_on_their_way_when_the_registry_grows_are_verified_again_under_the_new_one(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first page shows a grown registry: the pages already fetched (and verified by the
    worker under the old one) are verified again at home, under the registry the laptop holds."""
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(6):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    pinned = len(ray.device.registry().entries)
    hub.agency("CSO")  # the registry grows after ray's enrollment
    monkeypatch.setattr(agent, "PULL_LIMIT", 2)
    monkeypatch.setattr(page_verifier, "START_AFTER", 0)
    from_worker: list[int] = []
    at_home: list[tuple[int, int]] = []
    real_verified, real_chunk = agent._verified, agent._verify_chunk

    def counted(*args: Any) -> Any:
        out = real_verified(*args)
        from_worker.append(0 if out is None else len(out))
        return out

    def chunk(verifier: Any, certificates: Any, items: list[Any]) -> list[Any]:
        at_home.append((len(verifier.registry.entries), len(items)))
        return real_chunk(verifier, certificates, items)

    monkeypatch.setattr(agent, "_verified", counted)
    monkeypatch.setattr(agent, "_verify_chunk", chunk)
    report = ray.sync()
    grown = len(ray.device.registry().entries)
    assert grown > pinned
    assert report.pulled == 6 and report.applied == 6 and not report.refused
    assert at_home == [(grown, 2)] * 3 and not from_worker  # every page after all under the grown one
    assert views(ray) == views(lee)


@sqlite_only
def test_a_killed_verification_process_fails_its_page_at_once_and_no_page_goes_to_them_again(
    hub: Hub, laptop: MakeLaptop
) -> None:
    """Killed (the officer's task manager, the OOM killer), a worker must not leave its page
    waiting: the page fails, the verifier is closed, and the pull verifies the rest at home."""
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(10):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    _, body = ray.client.pull_page(0, 10)
    registry = ray.device.registry()
    remote = page_verifier.PageVerifier()
    try:
        remote.start()
        pids = remote.pids
        for pid in pids:
            os.kill(pid, 9)
        future = remote.submit(registry, body)
        assert future is not None
        with pytest.raises(page_verifier.WorkerFailed, match="failed"):
            future.result(timeout=30)
        assert not remote.started and remote.submit(registry, body) is None  # at home from now on
    finally:
        remote.close()
    assert not remote.pids


@sqlite_only
def test_stopped_verification_processes_leave_the_pull_to_verify_at_home_after_the_timeout(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that never answers (stopped here; starved or hung in the field) must not hold
    the pull: past ANSWER_TIMEOUT its page is verified at home, and so is every later one."""
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(6):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    monkeypatch.setattr(agent, "PULL_LIMIT", 2)
    monkeypatch.setattr(page_verifier, "START_AFTER", 0)
    monkeypatch.setattr(page_verifier, "ANSWER_TIMEOUT", 0.5)
    stopped: list[page_verifier.PageVerifier] = []
    monkeypatch.setattr(page_verifier.PageVerifier, "_ensure_workers", _ensure_then_stop(stopped))
    t0 = time.monotonic()
    report = ray.sync()
    assert report.pulled == 6 and report.applied == 6 and not report.refused
    assert views(ray) == views(lee)
    assert stopped and all(not v.started and not v.pids for v in stopped)
    assert time.monotonic() - t0 < 60


def _ensure_then_stop(stopped: list[page_verifier.PageVerifier]) -> Any:
    """PageVerifier._ensure_workers, its new workers stopped (SIGSTOP) as soon as they start."""
    real = page_verifier.PageVerifier._ensure_workers

    def ensure(self: page_verifier.PageVerifier) -> bool:
        fresh = self._workers is None
        up = real(self)
        if fresh and up:
            for pid in self.pids:
                os.kill(pid, signal.SIGSTOP)
            stopped.append(self)
        return up

    return ensure


def test_a_page_submitted_while_the_verifier_closes_is_never_left_waiting() -> None:
    """submit on the fetching thread, close on the merge's (or a dying worker's): every page
    handed out is answered, failed or cancelled, never left queued with no worker to take it."""
    empty = SimpleNamespace(head=SimpleNamespace(size=0, head=None), entries=[])

    class ClosingRegistry:  # the close lands in the middle of submit, on another thread's behalf
        entries: tuple[Any, ...] = ()

        @property
        def head(self) -> Any:
            remote.close()
            return empty.head

    remote = page_verifier.PageVerifier()
    remote.start()
    future = remote.submit(ClosingRegistry(), b'{"changes": []}')  # type: ignore[arg-type]
    if future is not None:
        with contextlib.suppress(Exception):
            future.result(timeout=30)
        assert future.done()
    assert not remote.started and not remote.pids
    for round_ in range(6):
        remote = page_verifier.PageVerifier()
        remote.start()
        futures: list[Future[Any]] = []

        def submitting(remote: page_verifier.PageVerifier = remote, futures: list[Future[Any]] = futures) -> None:
            for _ in range(40):
                future = remote.submit(empty, b'{"changes": []}')  # type: ignore[arg-type]
                if future is not None:
                    futures.append(future)

        feeder = threading.Thread(target=submitting)
        feeder.start()
        time.sleep(0.01 * round_)
        remote.close()
        feeder.join(30)
        assert futures, "nothing was submitted before the close"
        for future in futures:
            with contextlib.suppress(Exception):
                future.result(timeout=30)  # refused (an empty registry), cancelled, or answered
            assert future.done()


def test_a_verification_process_that_dies_leaves_the_pages_to_be_verified_at_home(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    honest = edits.create(lee.device, "resources", {**VEHICLE, "name": "Unit 7"})
    forged = edits.create(lee.device, "resources", {**VEHICLE, "name": "Unit 8"})
    for i in range(4):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {10 + i}"})
    lee.sync()
    tamper(hub, {r["record_id"]: r["change_id"] for r in outbox(lee)}[forged["id"]], FORGERIES["value"])
    monkeypatch.setattr(agent, "PULL_LIMIT", 2)
    monkeypatch.setattr(page_verifier, "START_AFTER", 0)
    submitted: list[int] = []

    def dead(self: page_verifier.PageVerifier, registry: Any, body: bytes) -> Any:
        submitted.append(len(body))
        future: Future[Any] = Future()
        future.set_exception(page_verifier.WorkerFailed("the verification process was killed"))
        return future

    monkeypatch.setattr(page_verifier.PageVerifier, "submit", dead)
    report = ray.sync()
    assert submitted  # the worker was asked, and failed
    assert report.pulled == 6 and report.applied == 5 and [r["reason"] for r in report.refused]
    assert ray.record(honest["id"])["name"] == "Unit 7" and ray.record(forged["id"]) is None  # type: ignore[index]


def test_a_pull_cut_off_resumes_without_gaps_or_repeats(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 2
    lee = laptop("SPD", "Sgt. Lee")
    ray = laptop("SPD", "Ofc. Ray")
    ids = [edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})["id"] for i in range(5)]
    edits.update(lee.device, ids[0], {"status": "deployed"})
    lee.sync()
    monkeypatch.setattr(agent, "PULL_LIMIT", limit)

    pulls: list[str] = []

    def second_pull_fails(request: requests.PreparedRequest) -> bool:
        if "/sync/pull" in (request.url or ""):
            pulls.append(request.url or "")
            return len(pulls) == 2
        return False

    ray.session.mount("http://hub.test/", FlakyAdapter(ray.adapter, second_pull_fails))  # type: ignore[arg-type]
    with pytest.raises(HubUnavailable):
        ray.sync()
    assert ray.replica.get("cursor") == limit  # the first page was committed with its cursor
    assert ray.count("changes") == limit
    assert ray.replica.get("last_sync_at") is None
    assert "unreachable" in ray.replica.get("last_sync_error")

    report = ray.sync()
    assert report.pulled == 6 - limit  # the first page is not fetched again
    assert ray.count("changes") == 6
    assert len({r["change_id"] for r in ray.replica.rows("SELECT change_id FROM changes")}) == 6
    assert views(ray) == views(lee)
    assert views(ray)[ids[0]]["status"] == "deployed"
    assert ray.replica.get("cursor") == 6
    assert f"cursor={limit}" in pulls[2]


class Recorded:
    """The hub's pull answers for one laptop, recorded once and then handed out at once (or, for
    ``hold``'s cursor, only when ``release`` is set): pages that are always ready, or one late."""

    def __init__(self, lt: Laptop, limit: int, hold: int | None = None) -> None:
        self.answers: dict[int, dict[str, Any]] = {}
        self.client, self.hold = lt.client, hold
        self.waiting, self.release = threading.Event(), threading.Event()
        cursor = 0
        while True:
            answer = self.answers[cursor] = lt.client.pull(cursor, limit)
            if not answer["more"]:
                break
            cursor = int(answer["next_cursor"])

    def pull(self, cursor: int, limit: int | None = None) -> dict[str, Any]:
        if cursor == self.hold:
            self.waiting.set()
            assert self.release.wait(30)
        return copy.deepcopy(self.answers[cursor])

    def registry(self) -> list[dict[str, Any]]:
        return self.client.registry()


def test_pulled_pages_are_committed_together_with_the_cursor_after_the_last(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six changes in pages of two, at most four changes a commit, every page ready when asked
    for: two commits in all (after the second page, and at the end)."""
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(6):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    monkeypatch.setattr(agent, "PULL_LIMIT", 2)
    recorded = Recorded(ray, 2)
    monkeypatch.setattr(agent.time, "monotonic", lambda: 0.0)  # no commit for time's sake either
    statements: list[str] = []
    ray.replica.conn.set_trace_callback(statements.append)
    report = agent.SyncReport()
    real_apply = agent._apply_page

    def apply_when_next_is_ready(*args: Any) -> None:
        real_apply(*args)
        time.sleep(0.05)  # the prefetch of the next (recorded) page is done by the time it is asked for

    monkeypatch.setattr(agent, "_apply_page", apply_when_next_is_ready)
    agent.pull(ray.device, recorded, report, commit_every=4)  # type: ignore[arg-type]
    ray.replica.conn.set_trace_callback(None)
    assert report.pulled == 6 and ray.count("changes") == 6
    transactions = [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")]
    assert transactions == ["BEGIN IMMEDIATE", "COMMIT"] * 2


def test_a_pull_never_holds_the_write_lock_while_the_next_page_is_on_its_way(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The third page is late: meanwhile an edit on another connection (as `fieldsync ui` makes
    one) gets the write lock at once, and the first two pages are already committed."""
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(6):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    monkeypatch.setattr(agent, "PULL_LIMIT", 2)
    recorded = Recorded(ray, 2, hold=4)
    other = ray.replica.clone()
    other.conn.execute("PRAGMA busy_timeout = 200")
    puller = threading.Thread(target=agent.pull, args=(ray.device, recorded, agent.SyncReport()))
    puller.start()
    try:
        assert recorded.waiting.wait(30)
        time.sleep(0.2)  # the second page is applied by now
        other.conn.execute("BEGIN IMMEDIATE")  # raises "database is locked" if the pull kept it
        assert other.get("cursor") == 4
        other.conn.execute("ROLLBACK")
    finally:
        recorded.release.set()
        puller.join(30)
        other.close()
    assert ray.replica.get("cursor") == 6 and ray.count("changes") == 6


def test_a_page_that_fails_to_apply_rolls_back_to_the_last_commit_and_the_next_sync_resumes(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(6):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    monkeypatch.setattr(agent, "PULL_LIMIT", 2)
    monkeypatch.setenv("FIELDSYNC_PULL_COMMIT", "4")
    real_apply, calls = agent._apply_page, []

    def third_page_breaks(*args: Any) -> None:
        calls.append(1)
        real_apply(*args)  # the page is written ... and then the disk fails
        if len(calls) == 3:
            raise OSError("disk I/O error")

    monkeypatch.setattr(agent, "_apply_page", third_page_breaks)
    with pytest.raises(OSError):
        ray.sync()
    # the third page is gone with its commit; what was committed before it (one or two pages: a
    # page not yet fetched when asked for ends a commit too) stays, the cursor right after it
    cursor = ray.replica.get("cursor")
    assert cursor in (2, 4) and ray.count("changes") == cursor
    monkeypatch.setattr(agent, "_apply_page", real_apply)
    assert ray.sync().pulled == 6 - cursor
    assert ray.count("changes") == 6 and views(ray) == views(lee)


def test_the_collector_runs_less_often_while_pulling_and_as_before_once_done(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(4):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    monkeypatch.setattr(agent, "PULL_LIMIT", 2)
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    real_apply = agent._apply_page

    def second_page_breaks(*args: Any) -> None:
        seen.append(gc.get_threshold())
        if len(seen) == 2:
            raise OSError("disk I/O error")
        real_apply(*args)

    monkeypatch.setattr(agent, "_apply_page", second_page_breaks)
    with pytest.raises(OSError):
        ray.sync()
    assert gc.get_threshold() == before  # put back after a failed pull too
    monkeypatch.setattr(agent, "_apply_page", lambda *args: (seen.append(gc.get_threshold()), real_apply(*args)))
    assert ray.sync().pulled in (2, 4)  # the first page is kept if it was committed before the second came
    assert gc.get_threshold() == before and ray.count("changes") == 4
    assert len(seen) >= 3 and set(seen) == {(agent.PULL_GC_THRESHOLD, *before[1:])}


def test_a_bad_pull_commit_setting_stops_the_sync_before_anything_is_sent(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    edits.create(lee.device, "resources", {**VEHICLE, "name": "Unit 1"})
    for bad in ("0", "many", "2000000"):
        monkeypatch.setenv("FIELDSYNC_PULL_COMMIT", bad)
        with pytest.raises(ClientError, match="FIELDSYNC_PULL_COMMIT"):
            lee.sync()
        assert lee.count("outbox", "status = 'pending'") == 1 and log_size(hub) == 0


def test_a_long_pull_reports_its_progress_page_by_page(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    ray = laptop("SPD", "Ofc. Ray")
    for i in range(7):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    monkeypatch.setattr(agent, "PULL_LIMIT", 3)
    seen: list[tuple[int, int]] = []
    agent.sync(ray.device, ray.client, progress=lambda done, total: seen.append((done, total)))
    # what `fieldsync sync` draws its bar from: one call a page, rising to the log's size
    assert seen == [(3, 7), (6, 7), (7, 7)]


def test_a_record_edited_on_several_pages_of_one_commit_is_written_once_and_ends_as_one_by_one(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of two, all in one commit: each record is merged in memory page after page and
    stored once, at the commit; the replica ends exactly as with apply_change per change."""
    lee, kim = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Kim")
    ray, ref = laptop("SPD", "Ofc. Ray"), laptop("SPD", "Reference")
    ids = [edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})["id"] for i in range(2)]
    lee.sync()
    kim.sync()
    for i in range(4):  # each record edited on several pages, concurrently: conflicts too
        edits.update(lee.device, ids[i % 2], {"status": "deployed", "quantity": i})
        edits.update(kim.device, ids[i % 2], {"status": "maintenance"})
    lee.sync()
    kim.sync()
    monkeypatch.setattr(agent, "PULL_LIMIT", 2)
    monkeypatch.setattr(agent.time, "monotonic", lambda: 0.0)  # no commit for time's sake
    recorded = Recorded(ray, 2)
    real_apply = agent._apply_page

    def apply_when_next_is_ready(*args: Any) -> None:
        real_apply(*args)
        time.sleep(0.05)  # the next (recorded) page is there when asked for: one commit in all

    monkeypatch.setattr(agent, "_apply_page", apply_when_next_is_ready)
    statements: list[str] = []
    ray.replica.conn.set_trace_callback(statements.append)
    report = agent.SyncReport()
    agent.pull(ray.device, recorded, report)  # type: ignore[arg-type]
    ray.replica.conn.set_trace_callback(None)
    assert report.pulled == log_size(hub) == 10 and not report.refused
    assert [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert len([s for s in statements if s.startswith("INSERT INTO records")]) == 2  # once per record

    with hub.app.app_context():
        wires = [e.wire for e in db.session.scalars(select(LogEntry).order_by(LogEntry.seq))]
        certificates = {d.id: d.certificate for d in db.session.scalars(select(DeviceRow))}
    verifier = ref.device.verifier()
    for wire in wires:  # one transaction per change: each stored as it is merged
        with ref.replica.transaction():
            change = verifier.verify(wire, certificates[wire["device"]])
            state.keep_change(ref.replica, change, "hub")
            state.apply_change(ref.replica, change)
    assert views(ray) == views(ref)
    full = 'SELECT record_id, collection, agency, state, "values", withheld, deleted, updated_hlc FROM records'
    assert ray.replica.rows(full + " ORDER BY record_id") == ref.replica.rows(full + " ORDER BY record_id")
    conflicts = "SELECT id, record_id, field, winner, loser FROM conflicts ORDER BY id"
    assert ray.replica.rows(conflicts) == ref.replica.rows(conflicts)
    assert ray.count("conflicts") > 0
    kept = "SELECT change_id, record_id, hash, device, seq, wire, origin FROM changes ORDER BY change_id"
    assert ray.replica.rows(kept) == ref.replica.rows(kept)


def test_a_large_pull_ends_as_its_changes_applied_one_by_one(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages are verified on two threads while the next is fetched, and merged with a few
    statements (agent._apply_page, state.PageWriter): the replica must end exactly as with
    keep_change + apply_change per change, conflicts included."""
    monkeypatch.setattr(agent, "PULL_LIMIT", 150)  # pages of 150: both verification threads work
    lee, kim = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Kim")
    ray, ref = laptop("SPD", "Ofc. Ray"), laptop("SPD", "Reference")
    rng = random.Random(3)
    ids = [edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})["id"] for i in range(40)]
    for i in range(120):
        edits.update(lee.device, rng.choice(ids), {"quantity": i})
    lee.sync()
    kim.sync()
    for i in range(60):  # concurrent edits of the same fields: conflicts
        edits.update(lee.device, rng.choice(ids), {"status": "deployed", "notes": f"lee {i}"})
        edits.update(kim.device, rng.choice(ids), {"status": "maintenance", "notes": f"kim {i}"})
    lee.sync()
    kim.sync()

    report = ray.sync()
    assert report.pulled == log_size(hub) == 40 + 120 + 120 and not report.refused

    with hub.app.app_context():
        wires = [e.wire for e in db.session.scalars(select(LogEntry).order_by(LogEntry.seq))]
        certificates = {d.id: d.certificate for d in db.session.scalars(select(DeviceRow))}
    verifier = ref.device.verifier()
    with ref.replica.transaction():
        for wire in wires:
            change = verifier.verify(wire, certificates[wire["device"]])
            state.keep_change(ref.replica, change, "hub")
            state.apply_change(ref.replica, change)

    assert views(ray) == views(ref)
    conflicts = "SELECT id, record_id, field, winner, loser FROM conflicts ORDER BY id"
    assert ray.replica.rows(conflicts) == ref.replica.rows(conflicts)
    assert ray.count("conflicts") > 0
    kept = "SELECT change_id, record_id, hash, device, seq, wire, origin FROM changes ORDER BY change_id"
    assert ray.replica.rows(kept) == ref.replica.rows(kept)
    assert ray.replica.get("cursor") == len(wires)


# -- checkpoints and the registry ---------------------------------------------------------------------


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
    assert "ROLLBACK" in agent.status(ray.device)["last_sync_error"]
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


@sqlite_only
def test_a_registry_that_does_not_extend_the_pinned_one_is_refused(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    ray = laptop("SPD", "Ofc. Ray")
    lee.sync()
    ray.device.registry()  # the laptop verified its registry against its pin (as every sync does)
    pinned = ray.replica.get("pinned")
    ray.replica.set("pinned", {**pinned, "head": "B" * 43})
    hub.agency("NEW")  # the registry grows: the next pull fetches it
    edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()
    with pytest.raises(HubUntrusted, match="registry"):
        ray.sync()
    assert ray.count("changes") == 0
    assert ray.replica.get("cursor") == 0


@sqlite_only
def test_a_hub_that_rewrites_its_registry_is_refused(hub: Hub, laptop: MakeLaptop) -> None:
    """The hub swaps SPD's key for one it holds (to forge SPD changes) and appends an agency."""
    lee = laptop("SPD", "Sgt. Lee")
    registry_before = lee.replica.get("registry")
    with hub.app.app_context():
        entries = keystore.registry_entries()
        spd = next(i for i, e in enumerate(entries) if e.get("agency") == "SPD")
        forged = [
            *entries[:spd],
            agency_entry(entries[:spd], SigningKey.generate(), agency="SPD", name="x", at=utcnow()),
        ]
        forged.append(agency_entry(forged, SigningKey.generate(), agency="NEW", name="new", at=utcnow()))
        db.session.get(RegistryEntry, spd).entry = forged[spd]  # type: ignore[union-attr]
        db.session.add(RegistryEntry(index=len(entries), entry=forged[-1]))
        db.session.commit()
        keystore.reset_cache()
    with pytest.raises(HubUntrusted, match="registry"):
        lee.sync()
    assert lee.replica.get("registry") == registry_before


@sqlite_only
def test_a_registry_that_extends_the_pinned_one_is_adopted(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    size = len(lee.replica.get("registry"))
    hub.agency("CSO")
    # Signed times have one-second resolution, and a key period is [start, end): a rotation in
    # the very second a certificate was issued leaves that certificate in an empty period
    # (reported as a bug in crypto/registry.py). Rotate in a later second.
    next_second()
    hub.rotate("SPD")
    edits.create(lee.device, "resources", dict(VEHICLE))
    assert lee.sync().accepted == 1
    assert len(lee.replica.get("registry")) == size + 2
    assert lee.replica.get("pinned")["size"] == size  # the pin stays the enrollment's
    ray = laptop("SPD", "Ofc. Ray")  # certified by SPD's new key
    edits.create(ray.device, "resources", {**VEHICLE, "name": "Unit 2"})
    ray.sync()
    assert lee.sync().applied == 1


@sqlite_only
def test_a_revoked_laptop_is_refused_not_retried(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop()
    edits.create(lee.device, "resources", dict(VEHICLE))
    hub.revoke(lee.device.device_id)
    with pytest.raises(HubRefused) as refused:
        lee.sync()
    assert refused.value.status == 403
    assert refused.value.retryable is False
    assert agent.status(lee.device)["pending"] == 1


# -- status and backoff ------------------------------------------------------------------------------


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
    info = agent.status(ray.device)
    assert (info["pending"], info["conflicts"], info["rejected"], info["refused"]) == (0, 0, [], [])
    assert info["last_sync_at"] and info["last_sync_error"] is None
    assert info["device_id"] == ray.device.device_id and info["officer"] == "Ofc. Ray"
    assert info["cursor"] == 1

    # concurrent offline edits of one field: a conflict
    edits.update(lee.device, unit["id"], {"status": "deployed"})
    edits.update(ray.device, unit["id"], {"status": "maintenance"})
    assert agent.status(ray.device)["pending"] == 1
    lee.sync()
    ray.sync()
    assert agent.status(ray.device)["conflicts"] == 1

    # a refused write, and a forged change pulled
    edits.update(kim.device, unit["id"], {"name": "Mine now"})
    kim.sync()
    info = agent.status(kim.device)
    assert [r["record_id"] for r in info["rejected"]] == [unit["id"]]
    assert info["rejected"][0]["reason"]
    other = edits.create(lee.device, "resources", {**VEHICLE, "name": "Unit 5"})
    lee.sync()
    forged = outbox(lee)[-1]["change_id"]
    tamper(hub, forged, lambda w: w["fields"]["name"].__setitem__("value", "Unit 6"))
    ray.sync()
    info = agent.status(ray.device)
    assert [r["change_id"] for r in info["refused"]] == [forged]
    assert info["refused"][0]["record_id"] == other["id"]


def test_backoff_grows_with_failures_and_is_capped() -> None:
    rng = random.Random(1234)
    for failures in range(1, 30):
        ceiling = min(900.0, 5.0 * 2 ** (failures - 1))
        for _ in range(50):
            delay = agent.backoff(failures, rng=rng)
            assert ceiling / 2 <= delay <= ceiling
            assert delay <= 900.0
    assert agent.backoff(0, rng=rng) <= 5.0
    medians = [sorted(agent.backoff(f, rng=rng) for _ in range(101))[50] for f in range(1, 10)]
    assert medians == sorted(medians) and medians[-1] > 10 * medians[0]
    assert all(450.0 <= agent.backoff(f, rng=rng) <= 900.0 for f in range(9, 200))
    assert all(agent.backoff(f, base=1.0, cap=4.0, rng=rng) <= 4.0 for f in range(1, 50))


def test_backoff_is_jittered() -> None:
    rng = random.Random(7)
    delays = {round(agent.backoff(4, rng=rng), 6) for _ in range(100)}
    assert len(delays) > 90  # spread, so laptops do not retry in lockstep
    assert min(delays) < 25.0 < max(delays)  # both halves of [20, 40] are used
    same = [agent.backoff(3, rng=random.Random(99)) for _ in range(2)]
    assert same[0] == same[1]  # the jitter comes from the given generator


def test_backoff_stays_capped_after_weeks_of_failures() -> None:
    # A hub down for weeks means thousands of failures in a row: 2**1024 would overflow a float
    # and silently end `sync --watch` (the error escaped the retry branch).
    rng = random.Random(11)
    for failures in (1_025, 10_000, 10**9):
        assert 450.0 <= agent.backoff(failures, rng=rng) <= 900.0
