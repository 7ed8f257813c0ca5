"""The sync agent: check the hub, push the outbox, then pull until the hub has nothing more.

Rules this module owns (each step's own rules are in its module):

- One sync is, in order: refuse at once while a ROLLBACK or FORK alarm is
  kept; probe the hub's history and this replica's (field_client.hubtrust,
  field_client.recovery: a replica older than its own feed, restored from an
  old copy, is resynced before any push); push (field_client.push); pull
  (field_client.pull). Nothing is pushed before the probe, nothing pulled
  before the push has ended.
- A bad setting (``FIELDSYNC_PULL_COMMIT``) stops the sync before anything is
  sent.
- When a long pull is coming (the probe's log size), pages are verified in a
  process of their own (field_client.pull's VERIFY_PROCESS) and there is
  something to push, the verification processes start and the pull's first
  EARLY_PAGES pages are fetched while the push runs, all but the first
  verified in those processes meanwhile: the push keeps the hub busy and left
  the laptop's cores idle. Nothing is applied before the push ends.
- Every try is recorded (``last_try_at``), apart from ``last_sync_at``: a
  failed try is not a sync. A failure the officer must see is kept as
  ``last_sync_error``, cleared before a success's ``last_sync_at`` is
  written, so whoever sees the new time sees no old error.
- The offset between this laptop's clock and the hub's, learned by the
  transport, is kept in the replica (``hub_clock_offset``) for the next sync,
  whether the sync succeeded or not.
- Failures are classified: :class:`HubUnavailable` is retried later (with
  capped exponential backoff and jitter under ``--watch``: field_client.watch);
  a refusal or an untrusted hub is not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from crypto.clock import stamp

from . import hubtrust, outbox, pull, push, recovery, settings
from . import verifier as page_verifier
from .device import Device
from .errors import HighWaterInvalid, HubRefused, HubUnavailable, HubUntrusted
from .transport import HubClient
from .verifier import PageVerifier

logger = logging.getLogger("fieldsync.client")


@dataclass
class SyncReport:
    pushed: int = 0
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    held: int = 0
    pulled: int = 0
    applied: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)
    cursor: int = 0
    restored: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def client_for(device: Device, **kw: Any) -> HubClient:
    """A client for this laptop's hub: timeouts from the environment, and the offset to the hub's
    clock it learned in an earlier sync (so a laptop hours off does not start each sync refused)."""
    kw.setdefault("timeout", settings.timeouts())
    kw.setdefault("clock_offset", device.sync_state.hub_clock_offset)
    kw.setdefault("max_offset", device.max_drift_ms / 1000)
    return HubClient(device.hub_url, device_id=device.device_id, key=device.key, **kw)


def sync(device: Device, client: HubClient, *, progress: pull.Progress | None = None) -> SyncReport:
    """Push, then pull. Raises HubUnavailable (retry), HubRefused or HubUntrusted (stop)."""
    report = SyncReport()
    commit_every = settings.pull_commit()  # a bad setting stops the sync before anything is sent
    kept = device.sync_state
    kept.last_try_at = stamp()  # kept apart from last_sync_at: a failed try is not a sync
    try:
        hubtrust.refuse_if_alarmed(device)
        hub_size = prepare(device, client, report)
        remote = PageVerifier()
        early: pull.Pages | None = None
        cursor = kept.cursor
        try:
            if pull.VERIFY_PROCESS and hub_size - cursor >= page_verifier.START_AFTER:
                remote.start()  # a long pull is coming: the verification processes start during the push
                if pull.EARLY_PAGES and outbox.has_pending(device.replica):  # ... and its first pages fetched meanwhile
                    early = pull.Pages(client, cursor, remote, device.registry(), pull.EARLY_PAGES, pushing=True)
            push.push(device, client, report)
            if early is not None:
                early.pushing = False  # pages asked for from now on see the log as the push left it
            pull.pull(device, client, report, progress=progress, commit_every=commit_every, remote=remote, pages=early)
        finally:
            if early is not None:
                early.close()
            remote.close()
    except (HubUnavailable, HubRefused, HubUntrusted, HighWaterInvalid) as exc:
        kept.last_sync_error = str(exc)
        raise
    finally:
        offset = getattr(client, "clock_offset", None)  # a test's stand-in client may have none
        if offset is not None and offset != kept.hub_clock_offset:
            kept.hub_clock_offset = offset
    kept.last_sync_error = None  # first: whoever sees the new last_sync_at sees no old error
    kept.last_sync_at = stamp()
    return report


def prepare(device: Device, client: HubClient, report: SyncReport) -> int:
    """Before any push: check the hub's history (rollback, fork) and the replica's (restored).
    Returns the size of the hub's log, as its verified checkpoint gives it."""
    answer, links = hubtrust.feed(device, client, recovery.feed_after(device))
    hubtrust.check_checkpoint(device, answer.get("checkpoint"), chain_at=answer.get("chain_at"), probe=True)
    report.restored = recovery.reconcile(device, answer, links)
    if report.restored is not None:
        logger.error("%s", recovery.describe(report.restored))
    try:
        return int(answer["checkpoint"]["size"])
    except (KeyError, TypeError, ValueError):  # (the checkpoint verified: a guard, not a path)
        return 0
