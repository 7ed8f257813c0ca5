"""``fieldsync sync --watch``, and the retry policy: capped exponential backoff with jitter.

Rules this module owns:

- An APScheduler job runs one sync; on success the next run is ``interval``
  seconds later, on :class:`HubUnavailable` it is :func:`backoff` of the
  failures in a row later (5 s doubling to 15 minutes, jittered), forever: a
  hub down for hours is simply retried. A refusal or an untrusted hub stops
  the watch with its reason.
- :func:`backoff` is the one retry policy: ``fieldsync ui``'s background sync
  (field_client.ui.syncer) waits by it too.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from datetime import datetime, timedelta

from . import agent
from .device import Device
from .errors import HubUnavailable

logger = logging.getLogger("fieldsync.client")


def backoff(failures: int, *, base: float = 5.0, cap: float = 900.0, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with "equal jitter" (seconds before the next try).

    The wait is drawn from [ceiling/2, ceiling]: never near zero (a laptop that
    just failed does not hammer the hub), yet spread so that a fleet coming back
    online does not retry in step. The exponent is clamped, so a hub down for
    weeks (thousands of failures) still yields ``cap``, never an overflow.
    """
    ceiling = min(cap, base * 2.0 ** min(max(0, failures - 1), 32))
    return (rng or random).uniform(ceiling / 2, ceiling)


def run_watch(device: Device, *, interval: int, stop: threading.Event | None = None) -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler  # (here: the ui imports backoff alone)

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
            delay = backoff(failures)
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
