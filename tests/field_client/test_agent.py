"""The sync agent's orchestration (field_client/agent.py) against the hub in-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from field_client import edits, overview, pull, push
from field_client import verifier as page_verifier
from field_client.errors import ClientError, HubRefused, HubUnavailable
from field_client.transport import HubClient
from tests.backend.helpers import Hub

from .conftest import MakeLaptop
from .helpers import VEHICLE, Laptop, log_size, outbox, views

# Tests of the laptop's own checks run against the SQLite hub only; the rest on both databases.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_push_then_pull(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    ray = laptop("SPD", "Ofc. Ray")
    unit = edits.create(lee.device, "resources", dict(VEHICLE))
    edits.update(lee.device, unit["id"], {"status": "deployed"})
    liaison = edits.create(lee.device, "contacts", {"name": "Lt. Park", "role": "liaison", "notes": "n" * 2000})
    assert overview.status(lee.device)["pending"] == 3

    report = lee.sync()
    assert (report.pushed, report.accepted, report.rejected, report.held) == (3, 3, [], 0)
    assert [r["status"] for r in outbox(lee)] == ["accepted"] * 3
    assert overview.status(lee.device)["pending"] == 0
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


@sqlite_only
def test_a_revoked_laptop_is_refused_not_retried(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop()
    edits.create(lee.device, "resources", dict(VEHICLE))
    hub.revoke(lee.device.device_id)
    with pytest.raises(HubRefused) as refused:
        lee.sync()
    assert refused.value.status == 403
    assert refused.value.retryable is False
    assert overview.status(lee.device)["pending"] == 1


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


# -- a long pull beside the push ----------------------------------------------------------------------


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
    monkeypatch.setattr(pull, "PULL_LIMIT", 2)
    monkeypatch.setattr(page_verifier, "START_AFTER", 4)
    events: list[str] = []
    real_start, real_push, real_verified = page_verifier.PageVerifier.start, push.push, pull._verified

    def start(self: page_verifier.PageVerifier) -> None:
        events.append("start")
        real_start(self)

    def spied_push(*args: Any, **kw: Any) -> None:
        events.append("push")
        real_push(*args, **kw)

    def counted(*args: Any) -> Any:
        out = real_verified(*args)
        events.append(f"worker {0 if out is None else len(out)}")
        return out

    monkeypatch.setattr(page_verifier.PageVerifier, "start", start)
    monkeypatch.setattr(push, "push", spied_push)
    monkeypatch.setattr(pull, "_verified", counted)
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

        class Pages(pull.Pages):
            def __init__(self, *args: Any, **kw: Any) -> None:
                spy.made.append((args[4], bool(kw.get("pushing"))))
                super().__init__(*args, **kw)

            def close(self) -> None:
                spy.closed += 1
                super().close()

        monkeypatch.setattr(pull, "Pages", Pages)


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
    monkeypatch.setattr(pull, "PULL_LIMIT", 2)
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
    """push.push, waiting first until ``until`` is among the events (the fetcher got that far
    beside it); ``action`` instead of the real push when given."""
    real_push = push.push

    def waiting_push(device: Any, *args: Any, **kw: Any) -> None:
        deadline = time.monotonic() + 30
        while until not in events:
            assert time.monotonic() < deadline, events
            time.sleep(0.005)
        events.append(f"push, cursor {device.replica.get('cursor', 0)}")
        (action or real_push)(device, *args, **kw)
        events.append(f"pushed, cursor {device.replica.get('cursor', 0)}")

    monkeypatch.setattr(push, "push", waiting_push)


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
    assert spied.made == [(pull.EARLY_PAGES, True)] and spied.closed >= 1
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
    assert spied.made == [(pull.PREFETCH, False)]  # the pull's own, after the (empty) push
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
    assert spied.made == [(pull.EARLY_PAGES, True)] and spied.closed == 1  # stopped fetching
    assert ray.replica.get("cursor", 0) == 0 and len(views(ray)) == 1  # its own car only
    monkeypatch.undo()
    assert ray.sync().pulled == 7 and len(views(ray)) == 7
