"""Load: many devices at once on two hub processes sharing one PostgreSQL; nothing lost, jobs run once.

One hub (real ``fieldsync-hub init``, three agencies, two agreements: SPD and
CSO share resources, CSO sees SPD's without ``notes``; HSP shares nothing) on a
fresh PostgreSQL database, served by two gunicorn processes (``-w 3`` and
``-w 2``: two machines behind a load balancer). 18 devices, each enrolled with
its own key and certificate, push pre-signed batches of their feeds and pull
what is new after each, all at once; each device's requests alternate between
the two processes, so its feed and its pull cursor cross them. The device
simulation is the hub benchmark's (bench/devices.py). Meanwhile the scheduled
jobs run every 2 and 3 seconds (``FIELDSYNC_JOB_TICK=1``) in every worker, and
the test watches their ``job_runs`` rows until each job has run RUNS times
(conditions, not elapsed time: a loaded machine only makes the watch longer).

The run happens once per module; each test below checks one property of it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from bench.devices import AGENCIES, AGREEMENTS, LoadCheck, SimDevice, as_seen_by, check_load, run_mixed, set_up
from bench.hubproc import HubInstance, HubServer
from crypto import VerifiedChange, change_hash
from sync import Change, MergeState
from tests.conftest import PG_URL, postgres_unavailable, unavailable

pytestmark = pytest.mark.slow

DEVICES = 18  # six per agency
BATCHES = 4  # pushes per device, each followed by pulls of what is new
BATCH = 25  # changes per push
PULL_LIMIT = 100
JOB_INTERVALS = {"audit-verify": 2, "sessions-purge": 3}  # seconds
RUNS = 4  # finished runs of each job the watch waits for
DEADLINE = 180  # seconds: generous, for a loaded machine; only a scheduler that stopped reaches it
JOB_ENV = {
    "FIELDSYNC_JOB_TICK": "1",
    "FIELDSYNC_AUDIT_VERIFY_INTERVAL": str(JOB_INTERVALS["audit-verify"]),
    "FIELDSYNC_SESSION_PURGE_INTERVAL": str(JOB_INTERVALS["sessions-purge"]),
}


@dataclass
class JobWatch:
    """Polls ``job_runs`` while the load runs: every (runs, started, worker, next due) it sees, per job."""

    hub: HubInstance
    seen: dict[str, dict[int, tuple[datetime, str, datetime]]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    enough: threading.Event = field(default_factory=threading.Event)  # every job seen finishing RUNS runs

    def poll(self) -> None:
        import psycopg

        with psycopg.connect(self.hub.url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as c:
            while not self.stop.is_set():
                # a run's claim sets last_started_at, worker and next_run_at, its end counts it in runs: read
                # finished runs only
                for name, runs, started, worker, due in c.execute(
                    "SELECT name, runs, last_started_at, worker, next_run_at FROM job_runs"
                    " WHERE last_finished_at >= last_started_at"
                ):
                    self.seen.setdefault(name, {}).setdefault(runs, (started, worker, due))
                if all(len(self.seen.get(name, {})) >= RUNS for name in JOB_INTERVALS):
                    self.enough.set()
                time.sleep(0.05)


@dataclass
class Run:
    hub: HubInstance
    servers: list[HubServer]
    devices: list[SimDevice]
    check: LoadCheck
    jobs: JobWatch
    final_runs: dict[str, int]
    wall: float


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    reason = postgres_unavailable()
    if reason:
        unavailable(f"load test needs PostgreSQL: {reason}", switch="FIELDSYNC_REQUIRE_POSTGRES")
    hub = HubInstance("postgresql", tmp_path_factory.mktemp("load-hub"), postgres=PG_URL)
    try:
        set_up(hub, AGENCIES)
        servers = hub.serve_all([3, 2], JOB_ENV)
        ports = [s.port for s in servers]
        agencies = list(AGENCIES)
        devices = [
            SimDevice.enroll(hub, agencies[i % len(agencies)], f"officer {i}", ports, first=i) for i in range(DEVICES)
        ]
        for i, dev in enumerate(devices):
            dev.sign(BATCHES * BATCH, rng_seed=i, batch=BATCH)
        jobs = JobWatch(hub)
        watcher = threading.Thread(target=jobs.poll, name="job-watch")
        watcher.start()
        try:
            time.sleep(0.2)
            wall = run_mixed(devices, PULL_LIMIT, timeout=DEADLINE)
            # watch the jobs until each has run RUNS times, however fast or slow the load went
            jobs.enough.wait(timeout=DEADLINE)
        finally:
            jobs.stop.set()
            watcher.join()
        final_runs = {name: runs for name, runs in hub.rows("SELECT name, runs FROM job_runs")}
        yield Run(hub, servers, devices, check_load(hub, devices, AGREEMENTS), jobs, final_runs, wall)
    finally:
        hub.destroy()


def test_every_request_succeeds_and_every_change_is_accepted(run: Run) -> None:
    assert run.check.errors == []
    assert run.check.sent == DEVICES * BATCHES * BATCH
    assert run.check.accepted == run.check.sent
    # the protocol's only retry (503, database unreachable) is counted; a healthy database needs none
    assert sum(d.retries for d in run.devices) == 0
    pushes = sum(len(d.latencies["push"]) for d in run.devices)
    pulls = sum(len(d.latencies["pull"]) for d in run.devices)
    assert pushes == DEVICES * BATCHES and pulls >= DEVICES * (BATCHES + 1)


def test_the_hub_log_holds_every_accepted_change_exactly_once(run: Run) -> None:
    assert run.check.lost == []
    assert run.check.doubled == []
    assert run.check.log_size == run.check.accepted
    assert run.check.log == []  # log numbered 1..N, head = N, each device's feed 1..n in log order


def test_each_device_pulled_exactly_what_the_agreements_let_it_see_as_it_was_sent(run: Run) -> None:
    assert run.check.missing == []
    assert run.check.extra == []
    assert run.check.altered == []
    per_agency = DEVICES // len(AGENCIES) * BATCHES * BATCH
    sizes = {d.agency: len(d.pulled) for d in run.devices}
    assert sizes == {"SPD": 2 * per_agency, "CSO": 2 * per_agency, "HSP": per_agency}
    # CSO's devices hold SPD's notes as digests only
    cso = next(d for d in run.devices if d.agency == "CSO")
    spd_notes = [c for c in cso.pulled.values() if c["agency"] == "SPD" and "notes" in c["fields"]]
    assert spd_notes and all(set(c["fields"]["notes"]) == {"digest"} for c in spd_notes)


def test_each_device_saw_every_feed_gap_free_and_in_order(run: Run) -> None:
    for dev in run.devices:
        feeds: dict[str, list[int]] = {}
        for seq in sorted(dev.pulled):
            change = dev.pulled[seq]
            feeds.setdefault(change["device"], []).append(change["seq"])
        for author, seqs in feeds.items():
            assert seqs == list(range(1, len(seqs) + 1)), (dev.device_id, author)


def test_both_hub_processes_answer_the_same_merged_state(run: Run) -> None:
    sent = [w for d in run.devices for w in d.wires]
    for agency in AGENCIES:
        dev = next(d for d in run.devices if d.agency == agency)
        answers = [dev.pull_everything(server.port, 500) for server in run.servers]
        changes, checkpoint = answers[0]
        visible = [c for c in (as_seen_by(w, agency, AGREEMENTS) for w in sent) if c is not None]
        assert sorted(c["id"] for _, c in changes) == sorted(c["id"] for c in visible)
        assert checkpoint["size"] == run.check.log_size
        for other_changes, other_checkpoint in answers[1:]:
            assert other_changes == changes
            assert (other_checkpoint["size"], other_checkpoint["head"]) == (checkpoint["size"], checkpoint["head"])
    # the records the hub merged: the same from either process, and what merging the sent changes gives
    local = MergeState()
    for wire in sent:
        local.apply(Change.from_verified(VerifiedChange(wire, change_hash(wire))))
    view = local.view()
    for dev in run.devices[: len(AGENCIES)]:
        own = [rid for rid in dict.fromkeys(w["record_id"] for w in dev.wires)][:4]
        for record_id in own:
            records = []
            for server in run.servers:
                status, answer = dev.request(
                    "provenance", "GET", f"/api/v1/records/{record_id}/provenance", port=server.port
                )
                assert status == 200, answer
                records.append(answer["record"])
            assert records[0] == records[1]
            expected = {k: v for k, v in view[record_id].items() if k not in ("collection", "agency", "deleted")}
            assert records[0]["values"] == expected
            assert records[0]["deleted"] is view[record_id]["deleted"] is False


def test_scheduled_jobs_ran_once_per_due_time_across_every_worker_of_both_hubs(run: Run) -> None:
    for name, interval in JOB_INTERVALS.items():
        seen = run.jobs.seen.get(name, {})
        runs = run.final_runs.get(name, 0)
        # it ran, repeatedly, while the load ran (the watch waited for RUNS runs, DEADLINE at most)
        assert len(seen) >= RUNS, (name, seen)
        # every run was seen on its own (a second run for one due time would make the count jump); one more
        # may have ended between the last poll and the final read
        assert sorted(seen) == list(range(min(seen), max(seen) + 1)), (name, sorted(seen))
        assert 0 <= runs - max(seen) <= 1, (name, runs, max(seen))
        # no more runs than due times: each run starts at least one interval after the one before (the
        # database's own times, not the test's clock) ...
        starts = [seen[n][0] for n in sorted(seen)]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(gap >= timedelta(seconds=interval) for gap in gaps), (name, gaps, seen)
        # ... and none skipped: each run makes the job due again exactly one interval after it started (so the
        # scheduler's next tick takes it; how soon a tick comes is the machine's speed, not a rule to assert)
        assert all(due - started == timedelta(seconds=interval) for started, _, due in seen.values()), (name, seen)
