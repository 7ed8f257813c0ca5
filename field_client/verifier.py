"""Verifying pulled pages in a process of its own, beside the merge.

Rules this module owns:

- A long pull's pages are verified by one worker process (:class:`PageVerifier`)
  while the laptop's own process fetches and merges: the chain around each
  Ed25519 call (digests, canonical header, certificate, registry) is Python
  that holds the GIL, and in one process it queued behind the merge and the
  fetch. The worker has a GIL of its own.
- The worker is sent the page exactly as the hub's bytes came, decodes them
  with the same decoder as the laptop (field_client.transport) and runs the
  same :class:`sync.Verifier` chain on every change (without building the
  ``Change`` it would throw away), so what it vouches for is the
  very change the laptop then merges. It answers per change: the change's
  hash, or the reason it failed. The laptop builds the change it merges from
  its own decoding of the same bytes and that hash; nothing else crosses.
- In the worker a page is verified in two shares on two threads (:data:`THREADS`):
  the Ed25519 call, ~3/4 of a change's cost, releases the GIL, so the worker,
  the pull's longest stage, also takes the second core whenever the merge and
  the hub leave it idle, and the scheduler gives the longest stage a larger
  part of a busy machine. The outcomes are returned in the page's order. (One
  :class:`sync.Verifier` serves both: its certificate cache is a dict, and
  two threads that verify one certificate at once only store the same entry.)
- The worker is given the laptop's verified registry (entries, re-verified
  there) with every page, keyed by its size and head hash: a registry that
  grew mid-pull (a new revocation) is used from the next page on, and a page
  verified under an older one is verified again at home (field_client.agent).
- It starts only for a long pull (:data:`START_AFTER` changes still to come),
  and once started verifies every later page of that pull (the tail too:
  verified at home, its last pages would queue behind the merge again), with
  ``spawn`` (nothing of the laptop's open replica or threads is copied
  into it). If it cannot start or dies, pages are verified at home, as
  before; nothing is applied unverified either way.
- It is started as soon as the sync knows a long pull is coming: the probe
  before the push carries the hub's log size (field_client.agent), so the
  worker's start (a new interpreter importing fieldsync, ~0.3 s) runs beside
  the push instead of ahead of the pull's second page (the first is verified
  at home: the log size counts changes this agency may not see, so a pull
  foreseen long may be short, and must not wait for a worker).
- ``spawn`` imports the program's main module again in the worker: a program
  that embeds field_client and pulls long guards its main code with
  ``if __name__ == "__main__":`` (Python's rule; the ``fieldsync`` command and
  bench/ do).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from crypto import KeyRegistry
from sync import ProvenanceError, Verifier

from .transport import decode_json

logger = logging.getLogger("fieldsync.client")
START_AFTER = 5_000  # changes still to pull before a worker is worth its ~0.3 s start
THREADS = 2  # the worker verifies a page's shares on this many threads (see the module's rules)
MIN_SHARE = 50  # ... of at least this many changes each

Outcome = tuple[bool, str]  # (True, change hash) or (False, reason)

_key: tuple[int, str | None] | None = None
_verifier: Verifier | None = None
_threads: ThreadPoolExecutor | None = None


def verify_page(key: tuple[int, str | None], entries: list[dict[str, Any]], body: bytes) -> list[Outcome]:
    """In the worker: one outcome per change of the pull answer ``body``."""
    global _key, _verifier
    if _verifier is None or key != _key:
        _verifier, _key = Verifier(KeyRegistry.verify(entries)), key
    verifier = _verifier
    answer = decode_json(body)
    certificates = answer.get("certificates") or {}
    items = answer["changes"]
    if THREADS < 2 or len(items) < 2 * MIN_SHARE:
        return _verify_items(verifier, certificates, items)
    global _threads
    if _threads is None:
        _threads = ThreadPoolExecutor(THREADS)
    step = -(-len(items) // THREADS)
    shares = [
        _threads.submit(_verify_items, verifier, certificates, items[i : i + step]) for i in range(0, len(items), step)
    ]
    return [outcome for share in shares for outcome in share.result()]


def _verify_items(verifier: Verifier, certificates: dict[str, Any], items: list[Any]) -> list[Outcome]:
    out: list[Outcome] = []
    for item in items:
        wire = item.get("change") if isinstance(item, dict) else None
        try:
            if not isinstance(wire, dict):
                raise ProvenanceError("not a change")
            out.append((True, verifier.verify_signed(wire, certificates.get(wire.get("device"))).hash))
        except ProvenanceError as exc:
            out.append((False, exc.reason))
    return out


def _ready() -> None:
    """In the worker: nothing; unpickling this brought in everything verify_page needs."""


class PageVerifier:
    """One worker process for one pull; :meth:`submit` returns None when it cannot be used.
    Closed, it starts none again: a page still being fetched when the pull stopped is
    submitted by the fetching thread after :meth:`close`, and must not bring one back."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False  # failed, or closed: pages are verified at home, if at all
        self._lock = threading.Lock()  # submit runs on the fetching thread, close on the merge's

    @property
    def started(self) -> bool:
        """The worker is up (and has not failed): the rest of the pull goes to it."""
        return self._pool is not None and not self._broken

    def _ensure_pool(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._pool is None and not self._broken:
                self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
                self._pool.submit(_ready)  # the process and its imports start now, not at the first page
            return None if self._broken else self._pool

    def start(self) -> None:
        """Start the worker now, without waiting for it: the first page finds it up."""
        try:
            self._ensure_pool()
        except Exception as exc:  # no worker: the laptop verifies at home
            self.fail(exc)

    def submit(self, registry: KeyRegistry, body: bytes) -> Future[list[Outcome]] | None:
        try:
            pool = self._ensure_pool()
            if pool is None:
                return None
            head = registry.head
            return pool.submit(verify_page, (head.size, head.head), registry.entries, body)
        except Exception as exc:  # no worker (or closed meanwhile): the laptop verifies at home
            self.fail(exc)
            return None

    def fail(self, exc: BaseException) -> None:
        if not self._broken:
            logger.warning("verifying pages at home from now on: the verification process failed (%s)", exc)
        self.close()

    def close(self) -> None:
        with self._lock:
            pool, self._pool, self._broken = self._pool, None, True
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
