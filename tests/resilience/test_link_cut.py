"""The link between a laptop and the hub cut mid-request both ways, and a link that goes silent.

Officers enroll and sync through the test proxy (tests/resilience/proxy.py) in front of a real
`fieldsync-hub serve`. Each fault ends the sync with a clear "try again later" error (exit
non-zero, no traceback) and the outbox kept; the next sync converges. A response lost after
the hub committed is the dangerous case: the laptop re-sends changes the hub already holds,
and the hub must answer "duplicate" without applying anything twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Hub, Officer

from .laptops import assert_converged, assert_log_exact, enroll, offline_edits, pending
from .proxy import Proxy

VEHICLES = 100  # x3 = 300 changes: push batches of 200 and 100
FIRST_BATCH = 200  # field_client.push.PUSH_BATCH
PUSH, PULL = "POST /api/v1/sync/push", "GET /api/v1/sync/pull"  # (each sync first asks GET /sync/feed)


@pytest.fixture
def proxy(hub_process: Hub) -> Iterator[Proxy]:
    with Proxy(hub_process.port) as link:
        yield link


@pytest.fixture
def through(hub_process: Hub, proxy: Proxy, tmp_path: Path) -> Callable[[str, str], Officer]:
    """``through(AGENCY, NAME)``: an officer enrolled (and so syncing) through the proxy."""
    return lambda agency, name: enroll(hub_process, proxy.url, agency, name, tmp_path / f"home-{name}")


def logged(hub: Hub) -> int:
    return int(hub.query("SELECT count(*) AS n FROM log")[0]["n"])


def failed_sync(person: Officer, *, within: float) -> str:
    started = time.monotonic()
    run = person.sync(check=False)
    took = time.monotonic() - started
    assert run.returncode != 0, run.stdout
    assert "Traceback" not in run.stderr, run.stderr
    assert took < within, f"the sync took {took:.1f} s"
    return run.stderr


def test_link_cut_mid_request_and_mid_response(
    hub_process: Hub, proxy: Proxy, through: Callable[[str, str], Officer]
) -> None:
    writer = through("SPD", "Sgt. Lee")
    reader = through("SPD", "Cpl. Diaz")
    total = offline_edits(writer, VEHICLES)

    # laptop -> hub cut in the middle of the first push's body: the hub never sees a whole request
    proxy.drop("up", after=3000, on=PUSH)
    err = failed_sync(writer, within=30)
    assert "hub unreachable" in err and "try again later" in err, err
    assert proxy.fired_faults and logged(hub_process) == 0
    assert pending(writer) == total

    # hub -> laptop cut in the middle of the first push's answer: the hub committed the batch
    proxy.drop("down", after=200, on=PUSH)
    err = failed_sync(writer, within=30)
    assert "hub unreachable" in err, err
    assert len(proxy.fired_faults) == 2
    assert logged(hub_process) == FIRST_BATCH  # committed, but the laptop never heard so
    assert pending(writer) == total  # ...so it keeps every change queued

    # the retry re-sends the first batch: duplicates, acknowledged, not applied again
    writer.sync()
    assert pending(writer) == 0
    assert_log_exact(hub_process, writer, total)

    # a pull answer cut mid-way commits nothing on the laptop; the next pull resumes from its cursor
    proxy.drop("down", after=2000, on=PULL)
    err = failed_sync(reader, within=30)
    assert "hub unreachable" in err, err
    assert reader.replica_rows("SELECT count(*) AS n FROM changes")[0]["n"] == 0
    assert_converged(hub_process, [writer, reader])
    assert len(hub_process.records()) == VEHICLES


def test_stalled_link_ends_in_the_clients_timeout(
    hub_process: Hub, proxy: Proxy, through: Callable[[str, str], Officer]
) -> None:
    writer = through("SPD", "Sgt. Ruiz")
    writer.env["FIELDSYNC_READ_TIMEOUT"] = "soon"
    err = failed_sync(writer, within=15)
    assert "FIELDSYNC_READ_TIMEOUT must be a number of seconds above 0" in err, err
    writer.env["FIELDSYNC_READ_TIMEOUT"] = "2"
    total = offline_edits(writer, VEHICLES)

    # silent in the middle of the request body: no answer ever comes
    proxy.stall("up", after=3000, on=PUSH)
    err = failed_sync(writer, within=15)
    assert "did not answer within 2 s (timed out); try again later" in err, err
    assert logged(hub_process) == 0 and pending(writer) == total

    # silent after the hub committed and began to answer: the retry must not apply anything twice
    proxy.stall("down", after=200, on=PUSH)
    err = failed_sync(writer, within=15)
    assert "did not answer within 2 s" in err, err
    assert logged(hub_process) == FIRST_BATCH and pending(writer) == total
    assert len(proxy.fired_faults) == 2

    writer.sync()
    assert_log_exact(hub_process, writer, total)
    assert_converged(hub_process, [writer])
    status = writer.status()
    assert status["last_sync_error"] is None and status["pending"] == 0
