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
  (field_client.pull's PREFETCH) go to whichever is free, and the merge takes their
  answers in page order. Verification, the pull's longest stage, so takes both cores
  whenever the merge and the hub leave them idle. Not one worker verifying each page in
  two shares on two threads: the Ed25519 call releases the GIL, but it then changed hands
  at every change (bench/README.md has the figures).
- The workers run at a lower priority than the laptop's own process (:data:`NICE` added
  to their niceness): the merge is one serial stage and verification two parallel ones,
  and when the three shared two cores alike the merge fell behind, so its last pages ran
  alone at the end of the pull, on one core. Lowered, verification takes whatever the
  merge, the fetch and the hub leave, and the merge is not kept from a core (bench/README.md).
  It also keeps a long pull from slowing the officer's other programs.
- A worker is given the laptop's verified registry (entries, re-verified
  there) with every page, keyed by its size and head hash: a registry that
  grew mid-pull (a new revocation) is used from the next page on, and a page
  verified under an older one is verified again at home (field_client.pull).
- It starts only for a long pull (:data:`START_AFTER` changes still to come),
  and once started verifies every later page of that pull (the tail too:
  verified at home, its last pages would queue behind the merge again), each
  worker a new interpreter (nothing of the laptop's open replica or threads is
  copied into it). If one cannot start or dies, the rest of the pull is verified at
  home, as before; nothing is applied unverified either way.
- They are started as soon as the sync knows a long pull is coming: the probe
  before the push carries the hub's log size (field_client.agent.sync), so the
  workers' start (a new interpreter importing field_client.verifier) runs beside
  the push instead of ahead of the pull's second page (the first is verified
  at home: the log size counts changes this agency may not see, so a pull
  foreseen long may be short, and must not wait for a worker).
- A worker is ``python -P -c`` importing this module alone (:func:`serve`), on the
  laptop's ``sys.path``, and speaks with its :class:`_Worker` over its stdin and
  stdout: one length-prefixed pickle each way per page (the worker's own output
  goes to stderr). Not multiprocessing's ``spawn``: it imports the program's main
  module again in each worker (for ``fieldsync``, the whole command line and what
  it needs, during a sync). A worker that dies or answers
  garbage fails its page, and the pull verifies the rest at home; so does one that has
  not answered a page within :data:`ANSWER_TIMEOUT` (stopped, or starved of CPU).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future
from typing import IO, Any

from crypto import KeyRegistry, VerifiedChange
from sync import ProvenanceError, Verifier

from .decoding import decode_json

logger = logging.getLogger("fieldsync.client")
START_AFTER = 5_000  # changes still to pull before the workers are worth their start (bench/README.md)
WORKERS = 2  # worker processes, each verifying whole pages on one thread (see the module's rules)
NICE = 10  # added to the workers' niceness (Unix): the merge comes first (see the module's rules)
ANSWER_TIMEOUT = 120.0  # seconds the merge waits for a page's answer (far beyond its work) before verifying it at home

Outcome = tuple[bool, str]  # (True, change hash) or (False, reason)

_key: tuple[int, str | None] | None = None
_verifier: Verifier | None = None


def verify_items(
    verifier: Verifier, certificates: dict[str, Any], items: list[Any]
) -> list[VerifiedChange | ProvenanceError]:
    """The one page-verification rule, in the workers and at home (field_client.pull): each of
    a page's ``items`` must carry a change (a JSON object) that passes ``verifier``'s whole chain
    with its device's certificate from the page. A failure is returned in its change's place, so
    the merge refuses it in the page's order."""
    out: list[VerifiedChange | ProvenanceError] = []
    for item in items:
        wire = item.get("change") if isinstance(item, dict) else None
        try:
            if not isinstance(wire, dict):
                raise ProvenanceError("not a change")
            out.append(verifier.verify_signed(wire, certificates.get(wire.get("device"))))
        except ProvenanceError as exc:
            out.append(exc)
    return out


def verify_page(key: tuple[int, str | None], entries: list[dict[str, Any]], body: bytes) -> list[Outcome]:
    """In the worker: one outcome per change of the pull answer ``body`` (:func:`verify_items`'
    verdicts, as they cross the pipe: the change's hash, or the reason it failed)."""
    global _key, _verifier
    if _verifier is None or key != _key:
        _verifier, _key = Verifier(KeyRegistry.verify(entries)), key
    verifier = _verifier
    answer = decode_json(body)
    return [
        (False, verified.reason) if isinstance(verified, ProvenanceError) else (True, verified.hash)
        for verified in verify_items(verifier, answer.get("certificates") or {}, answer["changes"])
    ]


def _lower_priority(increment: int) -> None:
    """In the worker, first: yield the CPU to the laptop's own process (see the module's rules)."""
    if increment <= 0:
        return  # (os.nice(0) only reads it; a negative increment would ask for privilege)
    # no niceness here (Windows, or refused): the same pull, only less kind to the merge
    with contextlib.suppress(AttributeError, OSError):
        os.nice(increment)  # (raising it needs no privilege; past 19 it stays at 19)


# -- the channel: one length-prefixed pickle each way per page ---------------------------------
_LENGTH = struct.Struct("!Q")


def _send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next message, or EOFError when the other side has gone (cleanly or not)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the other side of the verification channel has gone")
    (length,) = _LENGTH.unpack(head)
    data = stream.read(length)
    if len(data) < length:
        raise EOFError("the verification channel was cut mid-message")
    return pickle.loads(data)


def serve(channel_fd: int, increment: int) -> None:
    """In the worker (``python -P -c``, see :data:`_BOOT`): verify each page sent on stdin, answer
    on ``channel_fd`` (the process's stdout, set aside by the boot code before any import), until
    stdin closes."""
    _lower_priority(increment)
    with contextlib.suppress(AttributeError, ValueError):  # Ctrl-C is the laptop's to handle: it ends us
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel_in, channel_out = sys.stdin.buffer, os.fdopen(channel_fd, "wb")
    while True:
        try:
            key, entries, body = _receive(channel_in)
        except EOFError:
            return
        try:
            answer: tuple[bool, Any] = (True, verify_page(key, entries, body))
        except Exception as exc:  # a page it could not read: the laptop verifies it at home
            answer = (False, f"{type(exc).__name__}: {exc}")
        _send(channel_out, answer)


# The worker's whole program. First the channel: stdout is set aside and fd 1 pointed at stderr
# (or nowhere, under pythonw), so that nothing printed from here on can break the framing; then
# the laptop's sys.path (-P: the current directory is not searched first, so no json.py of the
# officer's is imported), then this module alone.
_BOOT = (
    "import os, sys\n"
    "channel = os.dup(1)\n"
    "try:\n    os.dup2(2, 1)\n"
    "except OSError:\n    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)\n"
    "import json\n"
    "sys.path[:] = json.loads(sys.argv[1])\n"
    "from field_client.verifier import serve\n"
    "serve(channel, int(sys.argv[2]))\n"
)


class WorkerFailed(Exception):
    """A verification process died, or could not read a page."""


_Job = tuple["Future[list[Outcome]]", tuple[Any, ...]]


class _Worker:
    """One verification process and the thread that feeds it pages from the shared queue, one
    at a time, and sets each page's future from the answer."""

    def __init__(self, jobs: queue.SimpleQueue[_Job | None], on_failure: Any) -> None:
        path = [entry or os.getcwd() for entry in sys.path]
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-c", _BOOT, json.dumps(path), str(NICE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),  # (Windows: no console window)
        )
        self.jobs, self.on_failure = jobs, on_failure
        self._stopped = False
        self.thread = threading.Thread(target=self._run, name="fieldsync-verifier", daemon=True)
        try:
            self.thread.start()
        except BaseException:
            self.stop()
            raise

    def _run(self) -> None:
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        try:
            while (job := self.jobs.get()) is not None:
                future, args = job
                if not future.set_running_or_notify_cancel():
                    continue  # cancelled while queued (the pull stopped)
                try:
                    _send(process.stdin, args)
                    ok, value = _receive(process.stdout)
                except Exception as exc:  # died, cut the channel, or answered garbage
                    failure = WorkerFailed(f"verification process {process.pid} failed: {exc!r}")
                    self.on_failure(failure)  # first: whoever the page wakes finds the verifier closed
                    future.set_exception(failure)
                    return
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(WorkerFailed(value))
        finally:
            self.stop()

    def stop(self) -> None:
        """End the process (once): closing its stdin ends its loop; one still busy is killed."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(OSError, ValueError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.kill()
        with contextlib.suppress(OSError, ValueError):
            if self.process.stdout is not None:
                self.process.stdout.close()
        threading.Thread(target=self.process.wait, name="fieldsync-verifier-reap", daemon=True).start()


class PageVerifier:
    """The worker processes of one pull; :meth:`submit` returns None when it cannot be used.
    Closed, it starts none again: a page still being fetched when the pull stopped is
    submitted by the fetching thread after :meth:`close`, and must not bring one back."""

    def __init__(self) -> None:
        self._workers: list[_Worker] | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._broken = False  # failed, or closed: pages are verified at home, if at all
        # submit runs on the fetching thread, close on the merge's (or a feeding thread's): a page
        # is queued, and the queue emptied, only under this lock, so none is left with no worker
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        """The workers are up (and none has failed): the rest of the pull goes to them."""
        return self._workers is not None and not self._broken

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (none before :meth:`start` or after :meth:`close`)."""
        return [w.process.pid for w in self._workers or []]

    def _ensure_workers(self) -> bool:
        """Under the lock: the workers are up (started now if need be), or never will be."""
        if self._workers is None and not self._broken:
            self._workers = []
            try:  # the processes and their imports start now, not at the first pages
                for _ in range(WORKERS):
                    self._workers.append(_Worker(self._jobs, self.fail))
            except BaseException:
                self._broken = True
                raise
        return not self._broken

    def start(self) -> None:
        """Start the workers now, without waiting for them: the first page finds them up."""
        try:
            with self._lock:
                self._ensure_workers()
        except Exception as exc:  # no worker: the laptop verifies at home
            self.fail(exc)

    def submit(self, registry: KeyRegistry, body: bytes) -> Future[list[Outcome]] | None:
        try:
            head = registry.head
            future: Future[list[Outcome]] = Future()
            with self._lock:
                if not self._ensure_workers():
                    return None
                self._jobs.put((future, ((head.size, head.head), registry.entries, body)))
            return future
        except Exception as exc:  # no worker (or closed meanwhile): the laptop verifies at home
            self.fail(exc)
            return None

    def fail(self, exc: BaseException) -> None:
        if not self._broken:
            logger.warning("verifying pages at home from now on: a verification process failed (%s)", exc)
        self.close()

    def close(self) -> None:
        with self._lock:
            workers, self._workers, self._broken = self._workers, None, True
            while True:  # the pages still queued are not verified: the pull has stopped, or verifies at home
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[0].cancel()
            for _ in workers or []:
                self._jobs.put(None)  # each feeding thread ends after the page it is on
        for worker in workers or []:
            worker.stop()
