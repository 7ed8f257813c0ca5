"""The ui's sync: one background thread, its own replica connection, the CLI's agent.sync.

Why a thread: a sync over a flaky link can wait 5 s to connect and 30 s to
read (field_client.transport's timeouts). Run inside a request, it would hold
the page (and, with the replica lock, every other page) that long. Instead
"Sync now" wakes this thread and the page comes back at once, saying
"syncing…"; it refreshes itself (a meta refresh, no JavaScript) until done.

Why its own connection: the web requests use the app's connection under a
lock; this thread uses :meth:`Replica.clone`, so the officer can keep reading
and editing while a sync waits on the network. SQLite serializes the writes
of both connections (``BEGIN IMMEDIATE``, WAL mode); field_client.pull reads
the clock inside its transaction, so an edit made during a pull is never
stamped behind it.

With ``every`` > 0 it also syncs by itself: at start, then every ``every``
seconds, and while the hub is unreachable with the same capped
exponential backoff (``watch.backoff``) as ``fieldsync sync --watch``.
A refused laptop or an untrusted hub stops the automatic syncs (the reason
stays on every page); "Sync now" still tries when asked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crypto.clock import stamp

from .. import agent
from ..device import Device
from ..errors import ClientError, HubRefused, HubUnavailable, HubUntrusted
from ..replica import Replica
from ..transport import HubClient
from ..watch import backoff

logger = logging.getLogger("fieldsync.ui")
ClientFactory = Callable[[Device], HubClient]


@dataclass
class Outcome:
    """How the last sync of this run ended (the replica keeps last_sync_at/last_sync_error)."""

    kind: str  # ok | unreachable | refused | untrusted | error
    message: str
    at: str
    report: dict[str, Any] | None = None


class Syncer:
    def __init__(self, replica: Replica, *, every: float = 0, client_factory: ClientFactory | None = None) -> None:
        self._source = replica
        self.every = every
        self.client_factory: ClientFactory = client_factory or agent.client_for
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running = False
        self._auto = every > 0
        self.outcome: Outcome | None = None
        self.failures = 0
        self._thread = threading.Thread(target=self._loop, name="fieldsync-ui-sync", daemon=True)

    def start(self) -> None:
        if self._auto:
            self.request()  # a first sync at start
        self._thread.start()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._running

    def request(self) -> None:
        """Sync as soon as possible (at once unless one is running: then right after)."""
        with self._lock:
            self._running = True
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end; a sync stuck on the network is left to die with the process
        (daemon thread): every sync write is one transaction, so nothing is left half-done."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _next_wait(self) -> float | None:
        if not self._auto:
            return None
        return backoff(self.failures) if self.failures else self.every

    def _loop(self) -> None:
        replica = self._source.clone()
        try:
            while not self._stop.is_set():
                woke = self._wake.wait(self._next_wait())
                if self._stop.is_set():
                    return
                self._wake.clear()
                if not woke:
                    with self._lock:
                        self._running = True
                self._once(replica)
        finally:
            replica.close()

    def _once(self, replica: Replica) -> None:
        try:
            device = Device(replica)
            report = agent.sync(device, self.client_factory(device))
            self.failures = 0
            self._set(Outcome("ok", "synced", stamp(), report.to_json()))
        except HubUnavailable as exc:
            self.failures += 1
            self._set(Outcome("unreachable", str(exc), stamp()))
        except HubUntrusted as exc:
            self._auto = False
            self._set(Outcome("untrusted", str(exc), stamp()))
        except HubRefused as exc:
            self._auto = False
            self._set(Outcome("refused", str(exc), stamp()))
        except ClientError as exc:  # pragma: no cover - e.g. a replica problem
            self._set(Outcome("error", str(exc), stamp()))
        except Exception as exc:  # never let the thread die silently: say it on the page
            logger.exception("sync failed")
            self._set(Outcome("error", f"{type(exc).__name__}: {exc}", stamp()))

    def _set(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcome = outcome
            self._running = self._wake.is_set()  # another request came in meanwhile: still going
