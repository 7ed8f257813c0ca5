"""``fieldsync sync --watch`` (field_client/watch.py): retried with backoff while the hub is down."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from field_client import edits
from field_client.errors import HubRefused
from field_client.replica import Replica
from field_client.watch import backoff, run_watch
from tests.backend.helpers import Hub

from .conftest import MakeLaptop
from .helpers import PASSPHRASE, VEHICLE, Laptop

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # (the hub is not what is tested)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Watch:
    """run_watch in a thread, with what it raised."""

    def __init__(self, lt: Laptop, interval: int = 1) -> None:
        self.stop = threading.Event()
        self.raised: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(lt, interval), daemon=True)
        self.thread.start()

    def _run(self, lt: Laptop, interval: int) -> None:
        try:
            run_watch(lt.device, interval=interval, stop=self.stop)
        except BaseException as exc:
            self.raised.append(exc)

    def finish(self, timeout: float = 10) -> None:
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the watch did not stop"


@sqlite_only
def test_watch_keeps_retrying_until_the_hub_comes_up(hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}"
    hub.agency("SPD")
    # enrolled in-process for that address; the watch itself uses real HTTP
    lt = Laptop(tmp_path / "home", hub.token("SPD", "Sgt. Lee"), app=hub.app, hub_url=url)
    for i in range(3):
        edits.create(lt.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    delays: list[int] = []

    def quick_backoff(failures: int, **kw: Any) -> float:
        delays.append(failures)
        return 0.2

    monkeypatch.setattr("field_client.watch.backoff", quick_backoff)
    reader = Replica.open(lt.home, PASSPHRASE)  # the officer's view, on its own connection
    server = None
    watch = Watch(lt)
    try:
        wait_for(lambda: len(delays) >= 3, 10, "three failed attempts")
        assert delays[:3] == [1, 2, 3]  # consecutive failures are counted
        assert "unreachable" in (reader.get("last_sync_error") or "")
        assert reader.conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0] == 3
        assert watch.thread.is_alive()

        server = make_server("127.0.0.1", port, hub.app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        def drained() -> bool:
            return bool(reader.conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0] == 0)

        wait_for(drained, 15, "the outbox to drain once the hub is up")
        wait_for(lambda: reader.get("last_sync_at") is not None, 5, "a successful sync")
        assert reader.get("last_sync_error") is None
        assert {r["status"] for r in reader.rows("SELECT status FROM outbox")} == {"accepted"}
        watch.finish()
        assert watch.raised == []
    finally:
        watch.stop.set()
        watch.thread.join(10)
        if server is not None:
            server.shutdown()
            server.server_close()
        reader.close()
        lt.close()


@sqlite_only
def test_watch_stops_on_a_refusal(hub: Hub, live: str, laptop: MakeLaptop) -> None:
    lt = laptop("SPD", "Sgt. Lee", hub_url=live)
    edits.create(lt.device, "resources", dict(VEHICLE))
    hub.revoke(lt.device.device_id)
    watch = Watch(lt)
    watch.thread.join(10)
    assert not watch.thread.is_alive(), "a refusal must end the watch, not be retried"
    [raised] = watch.raised
    assert isinstance(raised, HubRefused) and raised.status == 403


@sqlite_only
def test_watch_syncs_again_after_the_interval_and_stops_when_told(hub: Hub, live: str, laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee", hub_url=live)
    ray = laptop("SPD", "Ofc. Ray", hub_url=live)
    reader = Replica.open(ray.home, PASSPHRASE)
    watch = Watch(ray, interval=1)
    try:
        wait_for(lambda: reader.get("last_sync_at") is not None, 10, "the first sync")
        unit = edits.create(lee.device, "resources", dict(VEHICLE))
        lee.sync()

        def pulled() -> bool:
            return bool(
                reader.conn.execute("SELECT count(*) FROM records WHERE record_id = ?", (unit["id"],)).fetchone()[0]
            )

        wait_for(pulled, 10, "the next scheduled sync to pull the new record")
        watch.finish()
        assert watch.raised == []
    finally:
        watch.stop.set()
        watch.thread.join(10)
        reader.close()


def test_backoff_grows_with_failures_and_is_capped() -> None:
    rng = random.Random(1234)
    for failures in range(1, 30):
        ceiling = min(900.0, 5.0 * 2 ** (failures - 1))
        for _ in range(50):
            delay = backoff(failures, rng=rng)
            assert ceiling / 2 <= delay <= ceiling
            assert delay <= 900.0
    assert backoff(0, rng=rng) <= 5.0
    medians = [sorted(backoff(f, rng=rng) for _ in range(101))[50] for f in range(1, 10)]
    assert medians == sorted(medians) and medians[-1] > 10 * medians[0]
    assert all(450.0 <= backoff(f, rng=rng) <= 900.0 for f in range(9, 200))
    assert all(backoff(f, base=1.0, cap=4.0, rng=rng) <= 4.0 for f in range(1, 50))


def test_backoff_is_jittered() -> None:
    rng = random.Random(7)
    delays = {round(backoff(4, rng=rng), 6) for _ in range(100)}
    assert len(delays) > 90  # spread, so laptops do not retry in lockstep
    assert min(delays) < 25.0 < max(delays)  # both halves of [20, 40] are used
    same = [backoff(3, rng=random.Random(99)) for _ in range(2)]
    assert same[0] == same[1]  # the jitter comes from the given generator


def test_backoff_stays_capped_after_weeks_of_failures() -> None:
    # A hub down for weeks means thousands of failures in a row: 2**1024 would overflow a float
    # and silently end `sync --watch` (the error escaped the retry branch).
    rng = random.Random(11)
    for failures in (1_025, 10_000, 10**9):
        assert 450.0 <= backoff(failures, rng=rng) <= 900.0
