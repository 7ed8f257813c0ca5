"""Verifying pulled pages in processes of their own, beside the merge.

Rules this module owns:

- A long pull's pages are verified by worker processes (:class:`PageVerifier`,
  :data:`WORKERS` of them) while the laptop's own process fetches and merges: the chain
  around each Ed25519 call (digests, canonical header, certificate, registry) is Python
  that holds the GIL, and in one process it queued behind the merge and the fetch. Each
  worker has a GIL of its own.
- A worker is sent the page exactly as the hub's bytes came, decodes them
  with the same decoder as the laptop (field_client.transport) and runs the
  same :class:`sync.Verifier` chain on every change (without building the
  ``Change`` it would throw away), so what it vouches for is the
  very change the laptop then merges. It answers per change: the change's
  hash, or the reason it failed. The laptop builds the change it merges from
  its own decoding of the same bytes and that hash; nothing else crosses.
- Two workers, each verifying whole pages on one thread: the pages on their way
  (field_client.agent's PREFETCH) go to whichever is free, and the merge takes their
  answers in page order. Verification, the pull's longest stage, so takes both cores
  whenever the merge and the hub leave them idle. (Until 2026-12-02 one worker verified
  each page in two shares on two threads: the Ed25519 call releases the GIL, but it then
  changed hands at every change. Verifying alone, two processes take ~24% less wall time
  and ~14% less CPU a change; in a whole sync, where the hub and the merge share the same
  two cores, the difference is within the noise: bench/README.md.)
- The workers run at a lower priority than the laptop's own process (:data:`NICE` added
  to their niceness): the merge is one serial stage and verification two parallel ones,
  and when the three shared two cores alike the merge fell behind, so its last pages ran
  alone at the end of the pull, on one core. Lowered, verification takes whatever the
  merge, the fetch and the hub leave, and the merge is not kept from a core (bench/README.md,
  2026-12-02 morning). It also keeps a long pull from slowing the officer's other programs.
- A worker is given the laptop's verified registry (entries, re-verified
  there) with every page, keyed by its size and head hash: a registry that
  grew mid-pull (a new revocation) is used from the next page on, and a page
  verified under an older one is verified again at home (field_client.agent).
- It starts only for a long pull (:data:`START_AFTER` changes still to come),
  and once started verifies every later page of that pull (the tail too:
  verified at home, its last pages would queue behind the merge again), with
  ``spawn`` (nothing of the laptop's open replica or threads is copied
  into it). If one cannot start or dies, the rest of the pull is verified at
  home, as before; nothing is applied unverified either way.
- They are started as soon as the sync knows a long pull is coming: the probe
  before the push carries the hub's log size (field_client.agent), so the
  workers' start (a new interpreter importing fieldsync, ~0.3 s each) runs beside
  the push instead of ahead of the pull's second page (the first is verified
  at home: the log size counts changes this agency may not see, so a pull
  foreseen long may be short, and must not wait for a worker).
- ``spawn`` imports the program's main module again in each worker: a program
  that embeds field_client and pulls long guards its main code with
  ``if __name__ == "__main__":`` (Python's rule; the ``fieldsync`` command and
  bench/ do).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from crypto import KeyRegistry
from sync import ProvenanceError, Verifier

from .transport import decode_json

logger = logging.getLogger("fieldsync.client")
START_AFTER = 5_000  # changes still to pull before the workers are worth their ~0.3 s start
WORKERS = 2  # worker processes, each verifying whole pages on one thread (see the module's rules)
NICE = 10  # added to the workers' niceness (Unix): the merge comes first (see the module's rules)

Outcome = tuple[bool, str]  # (True, change hash) or (False, reason)

_key: tuple[int, str | None] | None = None
_verifier: Verifier | None = None


def verify_page(key: tuple[int, str | None], entries: list[dict[str, Any]], body: bytes) -> list[Outcome]:
    """In the worker: one outcome per change of the pull answer ``body``."""
    global _key, _verifier
    if _verifier is None or key != _key:
        _verifier, _key = Verifier(KeyRegistry.verify(entries)), key
    verifier = _verifier
    answer = decode_json(body)
    return _verify_items(verifier, answer.get("certificates") or {}, answer["changes"])


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


def _lower_priority(increment: int) -> None:
    """In the worker, first: yield the CPU to the laptop's own process (see the module's rules)."""
    if increment <= 0:
        return  # (os.nice(0) only reads it; a negative increment would ask for privilege)
    # no niceness here (Windows, or refused): the same pull, only less kind to the merge
    with contextlib.suppress(AttributeError, OSError):
        os.nice(increment)  # (raising it needs no privilege; past 19 it stays at 19)


class PageVerifier:
    """The worker processes of one pull; :meth:`submit` returns None when it cannot be used.
    Closed, it starts none again: a page still being fetched when the pull stopped is
    submitted by the fetching thread after :meth:`close`, and must not bring one back."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False  # failed, or closed: pages are verified at home, if at all
        self._lock = threading.Lock()  # submit runs on the fetching thread, close on the merge's

    @property
    def started(self) -> bool:
        """The workers are up (and none has failed): the rest of the pull goes to them."""
        return self._pool is not None and not self._broken

    def _ensure_pool(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._pool is None and not self._broken:
                self._pool = ProcessPoolExecutor(
                    WORKERS,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_lower_priority,
                    initargs=(NICE,),
                )
                for _ in range(WORKERS):  # the processes and their imports start now, not at the first pages
                    self._pool.submit(_ready)
            return None if self._broken else self._pool

    def start(self) -> None:
        """Start the workers now, without waiting for them: the first page finds them up."""
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
            logger.warning("verifying pages at home from now on: a verification process failed (%s)", exc)
        self.close()

    def close(self) -> None:
        with self._lock:
            pool, self._pool, self._broken = self._pool, None, True
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
