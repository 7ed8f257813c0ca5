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
from typing import NamedTuple

import pytest

from field_client.settings import DEFAULTS
from tests.e2e.conftest import Hub, Officer

from .laptops import assert_converged, assert_log_exact, enroll, offline_edits, pending
from .proxy import Proxy

VEHICLES = 100  # x3 = 300 changes: push batches of 200 and 100
FIRST_BATCH = 200  # field_client.push.PUSH_BATCH
PUSH, PULL = "POST /api/v1/sync/push", "GET /api/v1/sync/pull"  # (each sync first asks GET /sync/feed)
READ_TIMEOUT = 2  # seconds: the stalled-link test's FIELDSYNC_READ_TIMEOUT
# A fault's link never recovers (a stall lasts until the proxy closes), so a sync that ends at all was ended by
# the fault or by the client's own timeout. It must end within half the laptop's default read timeout (15 s)
# after the fault fired, which the configured one (2 s) does and the default (30 s) cannot. Timed from the
# fault, not the command's start, and with 13 s to spare beyond the configured timeout, a loaded machine
# cannot break it.
ENDED_WITHIN = float(DEFAULTS["READ_TIMEOUT"]) / 2


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


class Failed(NamedTuple):
    stderr: str
    took: float  # seconds the whole command ran


def failed_sync(person: Officer, proxy: Proxy | None = None) -> Failed:
    """A sync that must fail cleanly; with ``proxy``, it hits one fault and ends soon after (see above)."""
    before = len(proxy.fired_faults) if proxy is not None else 0
    started = time.monotonic()
    run = person.sync(check=False)
    ended = time.monotonic()
    assert run.returncode != 0, run.stdout
    assert "Traceback" not in run.stderr, run.stderr
    if proxy is not None:
        [fault] = proxy.fired_faults[before:]
        assert fault.fired_at is not None
        after = ended - fault.fired_at
        assert after < ENDED_WITHIN, f"the sync ended {after:.1f} s after the {fault.kind}"
    return Failed(run.stderr, ended - started)


def test_link_cut_mid_request_and_mid_response(
    hub_process: Hub, proxy: Proxy, through: Callable[[str, str], Officer]
) -> None:
    writer = through("SPD", "Sgt. Lee")
    reader = through("SPD", "Cpl. Diaz")
    total = offline_edits(writer, VEHICLES)

    # laptop -> hub cut in the middle of the first push's body: the hub never sees a whole request
    proxy.drop("up", after=3000, on=PUSH)
    err = failed_sync(writer, proxy).stderr
    assert "hub unreachable" in err and "try again later" in err, err
    assert proxy.fired_faults and logged(hub_process) == 0
    assert pending(writer) == total

    # hub -> laptop cut in the middle of the first push's answer: the hub committed the batch
    proxy.drop("down", after=200, on=PUSH)
    err = failed_sync(writer, proxy).stderr
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
    err = failed_sync(reader, proxy).stderr
    assert "hub unreachable" in err, err
    assert reader.replica_rows("SELECT count(*) AS n FROM changes")[0]["n"] == 0
    assert_converged(hub_process, [writer, reader])
    assert len(hub_process.records()) == VEHICLES


def test_stalled_link_ends_in_the_clients_timeout(
    hub_process: Hub, proxy: Proxy, through: Callable[[str, str], Officer]
) -> None:
    writer = through("SPD", "Sgt. Ruiz")
    writer.env["FIELDSYNC_READ_TIMEOUT"] = "soon"
    err = failed_sync(writer).stderr
    assert "FIELDSYNC_READ_TIMEOUT must be a number of seconds above 0" in err, err
    writer.env["FIELDSYNC_READ_TIMEOUT"] = str(READ_TIMEOUT)
    total = offline_edits(writer, VEHICLES)

    # silent in the middle of the request body: no answer ever comes
    proxy.stall("up", after=3000, on=PUSH)
    failed = failed_sync(writer, proxy)
    assert "did not answer within 2 s (timed out); try again later" in failed.stderr, failed.stderr
    assert failed.took >= READ_TIMEOUT  # it waited out the timeout (a lower bound: load only adds to it)
    assert logged(hub_process) == 0 and pending(writer) == total

    # silent after the hub committed and began to answer: the retry must not apply anything twice
    proxy.stall("down", after=200, on=PUSH)
    failed = failed_sync(writer, proxy)
    assert "did not answer within 2 s" in failed.stderr, failed.stderr
    assert failed.took >= READ_TIMEOUT
    assert logged(hub_process) == FIRST_BATCH and pending(writer) == total
    assert len(proxy.fired_faults) == 2

    writer.sync()
    assert_log_exact(hub_process, writer, total)
    assert_converged(hub_process, [writer])
    status = writer.status()
    assert status["last_sync_error"] is None and status["pending"] == 0
