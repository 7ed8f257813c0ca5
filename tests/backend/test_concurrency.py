"""The pull cursor is safe under concurrent pushes (PostgreSQL only).

DESIGN.md: "On PostgreSQL with concurrent pushes, a naive auto-increment is
visible out of commit order and a client can skip a change forever: the cursor
must be safe under concurrency, and a test must show it." backend/log.py
numbers log entries under a row lock on ``log_head``, so numbers follow commit
order. Here eight laptops push as fast as they can through a real threaded
HTTP server while a ninth pulls in small pages; it must receive every accepted
change exactly once, in increasing seq order. The control shows, in plain SQL,
that the naive scheme does skip; and that the hub's head lock really excludes
a second writer.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import select

from backend import log
from backend.db import db
from backend.models import LogEntry, LogHead
from crypto import KeyRegistry
from sync import Verifier
from tests.conftest import _dsn

from .helpers import Hub, Officer

PUSHERS = 8
PUSHES = 25
PAGE = 7
GATES = (1, 2, 3)  # pages the puller must have pulled before the pushers go on (see the test)

postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@postgres_only
def test_a_puller_racing_concurrent_pushers_misses_nothing(hub: Hub, live: str, app: Flask) -> None:
    hub.agency("SPD")
    pushers = [Officer(live, hub.token("SPD", f"Officer {i}")) for i in range(PUSHERS)]
    puller = Officer(live, hub.token("SPD", "Dispatcher"))

    accepted: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    done = threading.Event()
    start = threading.Barrier(PUSHERS + 1)
    # the race is made to happen, not hoped for: at each gate a pusher waits (mid-run, with
    # pushes still to come) until the puller has pulled that many non-empty pages, so at
    # least len(GATES) pages are pulled while the pushers are busy, however slow the machine
    pages = threading.Condition()
    gates = {PUSHES * k // (len(GATES) + 1): k for k in GATES}

    def wait_for_pages(count: int) -> None:
        with pages:
            if not pages.wait_for(lambda: pages_during_pushes >= count, timeout=60):
                raise AssertionError(f"the puller pulled fewer than {count} page(s) during the pushes")

    def push_all(officer: Officer, n: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(PUSHES):
                if i in gates:
                    wait_for_pages(gates[i])
                wire = officer.create(values={"kind": "vehicle", "name": f"Unit {n}-{i}", "status": "available"})
                [result] = officer.push(wire)
                if result["status"] != "accepted":
                    raise AssertionError(f"push {n}-{i} not accepted: {result}")
                with lock:
                    accepted.append(wire["id"])
        except BaseException as exc:
            errors.append(exc)

    seqs: list[int] = []
    pulled: list[dict[str, Any]] = []
    certificates: dict[str, Any] = {}
    pages_during_pushes = 0
    last: dict[str, Any] = {}

    def pull_all() -> None:
        nonlocal pages_during_pushes, last
        try:
            cursor = 0
            start.wait(timeout=30)
            while True:
                finished = done.is_set()  # read before the pull: a later "no more" then means the end
                answer = puller.client.pull(cursor, PAGE)
                assert len(answer["changes"]) <= PAGE
                for item in answer["changes"]:
                    seqs.append(item["seq"])
                    pulled.append(item["change"])
                certificates.update(answer["certificates"])
                if answer["changes"] and not finished:
                    with pages:
                        pages_during_pushes += 1
                        pages.notify_all()
                assert answer["next_cursor"] >= cursor
                cursor, last = answer["next_cursor"], answer
                if finished and not answer["more"]:
                    return
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push_all, args=(o, n)) for n, o in enumerate(pushers)]
    reader = threading.Thread(target=pull_all)
    began = time.monotonic()
    for thread in [*threads, reader]:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    done.set()
    reader.join(timeout=120)
    elapsed = time.monotonic() - began
    assert not any(t.is_alive() for t in [*threads, reader]), "a thread hung"
    assert not errors, errors

    total = PUSHERS * PUSHES
    assert len(accepted) == total
    ids = [wire["id"] for wire in pulled]
    assert len(ids) == len(set(ids)), "the puller received a change twice"
    assert set(ids) == set(accepted), f"the puller missed {len(set(accepted) - set(ids))} change(s)"
    assert all(a < b for a, b in itertools.pairwise(seqs)), "seq numbers went backwards"
    assert seqs == list(range(1, total + 1))
    # the race really happened: the puller saw changes while the pushers were busy,
    # and the pushers' changes are interleaved in the log
    assert pages_during_pushes >= len(GATES), (
        f"only {pages_during_pushes} pages pulled during the pushes ({elapsed:.1f} s)"
    )
    devices = [wire["device"] for wire in pulled]
    assert sum(a != b for a, b in itertools.pairwise(devices)) >= PUSHERS
    # what was pulled is authentic, and the last checkpoint covers it all
    verifier = Verifier(KeyRegistry.verify(puller.client.registry()))
    for wire in pulled:
        verifier.verify(wire, certificates[wire["device"]])
    assert last["checkpoint"]["size"] == total

    with app.app_context():
        entries = list(db.session.scalars(select(LogEntry).order_by(LogEntry.seq)))
        head = db.session.get(LogHead, 1)
        assert head is not None and head.size == total
        chain = None
        for entry in entries:
            chain = log.chain_hash(chain, entry.hash)
            assert entry.chain == chain
        assert head.head == chain
        by_device: dict[str, list[int]] = {}
        for entry in entries:
            by_device.setdefault(entry.device, []).append(entry.device_seq)
        assert all(feed == list(range(1, PUSHES + 1)) for feed in by_device.values())


# -- the controls ---------------------------------------------------------------------------
def test_control_a_naive_autoincrement_cursor_skips_a_change(postgres_url: str) -> None:
    """Two writers on a serial key: 11 is taken first but committed after 12; a reader in between skips 11."""
    table = f"naive_{uuid.uuid4().hex[:8]}"
    dsn = _dsn(postgres_url)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, what text)")
        admin.execute(f"SELECT setval('{table}_id_seq', 10)")
        try:
            with psycopg.connect(dsn) as tx1, psycopg.connect(dsn) as tx2, psycopg.connect(dsn, autocommit=True) as rd:
                [first] = tx1.execute(f"INSERT INTO {table} (what) VALUES ('slow') RETURNING id").fetchone() or ()
                [second] = tx2.execute(f"INSERT INTO {table} (what) VALUES ('fast') RETURNING id").fetchone() or ()
                tx2.commit()
                assert (first, second) == (11, 12)

                cursor = 10
                page = [r[0] for r in rd.execute(f"SELECT id FROM {table} WHERE id > %s ORDER BY id", (cursor,))]
                assert page == [12]  # 11 is not committed yet
                cursor = page[-1]
                tx1.commit()
                page = [r[0] for r in rd.execute(f"SELECT id FROM {table} WHERE id > %s ORDER BY id", (cursor,))]
                assert page == []  # ... and now it is behind the cursor: skipped forever
                assert [r[0] for r in rd.execute(f"SELECT id FROM {table} ORDER BY id")] == [11, 12]
        finally:
            admin.execute(f"DROP TABLE {table}")


@postgres_only
def test_control_the_log_head_lock_excludes_a_second_writer(app: Flask, database_url: str) -> None:
    """While one transaction holds log_head (as a push does), no other can take a number."""
    with app.app_context():
        head = log.lock_head()
        assert head.size == 0
        with psycopg.connect(_dsn(database_url)) as other:
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("SELECT size FROM log_head WHERE id = 1 FOR UPDATE NOWAIT")
            other.rollback()
            head.size = 1  # the holder "appends" and commits
            db.session.commit()
            [size] = other.execute("SELECT size FROM log_head WHERE id = 1 FOR UPDATE NOWAIT").fetchone() or ()
            assert size == 1  # the next writer numbers after the committed one
            other.rollback()
