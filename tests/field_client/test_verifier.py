"""The verification processes (field_client/verifier.py): start, answer in order, fail cleanly."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest

from crypto import change_hash
from field_client import edits
from field_client import verifier as page_verifier
from tests.backend.helpers import Hub

from .conftest import MakeLaptop
from .helpers import FORGERIES, VEHICLE, outbox, tamper

# Tests of the laptop's own checks run against the SQLite hub only; the rest on both databases.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


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
