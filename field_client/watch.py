"""``fieldsync sync --watch``: keep syncing, with capped exponential backoff and jitter.

An APScheduler job runs one sync; on success the next run is ``interval``
seconds later, on :class:`HubUnavailable` it is ``agent.backoff(failures)``
later (5 s doubling to 15 minutes, jittered), forever: a hub down for hours is
simply retried. A refusal or an untrusted hub stops the watch with its reason.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import datetime, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler

from . import agent
from .device import Device
from .errors import HubUnavailable

logger = logging.getLogger("fieldsync.client")


def run_watch(device: Device, *, interval: int, stop: threading.Event | None = None) -> None:
    scheduler = BlockingScheduler()
    failures = 0
    fatal: list[BaseException] = []

    def schedule(delay: float) -> None:
        scheduler.add_job(
            tick,
            "date",
            run_date=datetime.now() + timedelta(seconds=delay),
            id="sync",
            replace_existing=True,
            misfire_grace_time=None,
        )

    def tick() -> None:
        nonlocal failures
        if stop is not None and stop.is_set():
            scheduler.shutdown(wait=False)
            return
        try:
            report = agent.sync(device, agent.client_for(device))
            failures = 0
            logger.info("synced: pushed %s, pulled %s", report.pushed, report.pulled)
            print(f"synced: pushed {report.pushed}, pulled {report.pulled}", flush=True)
            schedule(interval)
        except HubUnavailable as exc:
            failures += 1
            delay = agent.backoff(failures)
            print(f"hub unreachable ({exc}); retrying in {delay:.0f} s", flush=True)
            schedule(delay)
        except BaseException as exc:
            fatal.append(exc)
            scheduler.shutdown(wait=False)

    schedule(0)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()
    if fatal:
        raise fatal[0]
