"""The sync agent: push the outbox, then pull until the hub has nothing more.

Rules this module owns:

- Push sends pending outbox changes in seq order, in batches; each verdict is
  stored as it arrives. A change the hub refused is marked with its reason and
  removed from the local state (the record is rebuilt without it), so the
  officer sees the refusal and the laptop agrees with the hub.
- Pull asks by cursor, page by page, and commits whole pages with the cursor
  after the last of them in one transaction: a sync cut off at any point
  resumes where it stopped, with nothing applied twice and nothing skipped.
  A commit covers at most COMMIT_CHANGES changes or COMMIT_SECONDS of work
  (each commit encrypts and writes every page it touched, and a record edited
  on several pages is then written once, not once a page), and whenever the
  next page has not arrived yet: the write lock is never held while waiting
  on the link, so an edit made meanwhile (``fieldsync ui``, another
  terminal) waits for one page's work at most. A failure to fetch the next
  page still commits the pages already applied; a failure while applying
  one rolls back to the last commit.
- When a long pull is coming (the probe's log size), pages are verified in a
  process of their own (VERIFY_PROCESS) and there is something to push, the
  pull's first EARLY_PAGES pages are fetched while the push runs, all but the
  first verified in that process meanwhile: the push keeps the hub busy and
  left the laptop's cores idle. Nothing is applied before the push ends; the
  pages are applied after it, in order, as any others. A page asked for
  before the push ended does not end the pull (the push made the log longer:
  the laptop's own changes come back after it), and one that failed to come
  is asked for again after the push, not taken for a failed sync.
- Every pulled change is verified against the registry pinned at enrollment
  before it is applied; one that fails is kept in ``refused`` with the reason,
  never applied. A hub-signed resolution must also only re-state a value an
  officer signed (sync.resolutions), so a compromised hub cannot invent one.
  A newer registry is adopted only if it extends the pinned one.
- Before anything is pushed, the hub is asked for this device's own feed and
  a signed checkpoint with the head of its log at the size the laptop last
  saw (GET /api/v1/sync/feed). That checkpoint, and every pull's, must verify
  with the hub key, and must not show a smaller log than the newest
  checkpoint kept (ROLLBACK), nor another head at that size (FORK): otherwise
  :class:`HubUntrusted` stops the sync, loudly, with nothing sent or applied.
  The alarm is kept in the replica (``hub_alarm``): every later sync refuses
  at once, before any request, until the officer runs ``fieldsync
  accept-hub`` with the size and head the hub's administrator read on the
  hub itself (:func:`accept_hub`).
- A replica older than its own feed (restored from an old copy) is resynced
  by field_client.recovery before any push.
- The offset between this laptop's clock and the hub's, learned by the
  transport, is kept in the replica (``hub_clock_offset``) for the next sync.
- Failures are classified: :class:`HubUnavailable` is retried later (with
  capped exponential backoff and jitter under ``--watch``); a refusal or an
  untrusted hub is not.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from crypto import KeyRegistry, VerificationError, VerifiedChange, verify_checkpoint
from crypto.clock import stamp
from sync import (
    HUB_DEVICE,
    Change,
    ChangeRejected,
    ClockDriftError,
    ClockError,
    Hlc,
    ProvenanceError,
    Verifier,
    check_resolution,
)
from sync.changes import resolution_of

from . import recovery, state
from . import verifier as page_verifier
from .device import Device
from .errors import ClientError, HighWaterInvalid, HubRefused, HubUnavailable, HubUntrusted
from .transport import HubClient, configured_timeout
from .verifier import Outcome, PageVerifier

logger = logging.getLogger("fieldsync.client")
PUSH_BATCH = 200
PULL_LIMIT = 1000  # changes a page; the hub may answer fewer (its FIELDSYNC_PULL_LIMIT, 1000 by default)
VERIFY_THREADS = 2  # only the Ed25519 call releases the GIL: a small gain (bench/README.md)
VERIFY_CHUNK = 50  # pages smaller than two chunks are verified on one thread
VERIFY_PROCESS = True  # a long pull is verified in processes of their own (field_client.verifier)
PREFETCH = 8  # pages on their way (fetched, verified) while one is merged: enough to outlast a commit (~3.4 MB each)
EARLY_PAGES = 8  # ... and while the push runs, before a long pull (~3.4 MB each in memory); 0: none
COMMIT_CHANGES = 5_000  # pulled changes at most in one commit (FIELDSYNC_PULL_COMMIT); a crash re-pulls these
COMMIT_SECONDS = 1.0  # ... or this much work: a `fieldsync ui` edit waits no longer for the write lock
PULL_GC_THRESHOLD = 20_000  # the collector's first threshold while pulling (Python's default: 700)


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


Progress = Callable[[int, int], None]


def client_for(device: Device, **kw: Any) -> HubClient:
    """A client for this laptop's hub: timeouts from the environment, and the offset to the hub's
    clock it learned in an earlier sync (so a laptop hours off does not start each sync refused)."""
    kw.setdefault("timeout", configured_timeout())
    kw.setdefault("clock_offset", float(device.replica.get("hub_clock_offset", 0.0)))
    kw.setdefault("max_offset", device.max_drift_ms / 1000)
    return HubClient(device.hub_url, device_id=device.device_id, key=device.key, **kw)


def sync(device: Device, client: HubClient, *, progress: Progress | None = None) -> SyncReport:
    """Push, then pull. Raises HubUnavailable (retry), HubRefused or HubUntrusted (stop)."""
    report = SyncReport()
    commit_every = configured_commit_changes()  # a bad setting stops the sync before anything is sent
    device.replica.set("last_try_at", stamp())  # kept apart from last_sync_at: a failed try is not a sync
    try:
        alarm = device.replica.get("hub_alarm")
        if alarm:
            raise HubUntrusted(f"{alarm['message']} (raised {alarm['detected_at']}, kept until `fieldsync accept-hub`)")
        hub_size = prepare(device, client, report)
        remote = PageVerifier()
        early: _Pages | None = None
        cursor = int(device.replica.get("cursor", 0))
        try:
            if VERIFY_PROCESS and hub_size - cursor >= page_verifier.START_AFTER:
                remote.start()  # a long pull is coming: the verification processes start during the push
                if EARLY_PAGES and _pending(device):  # ... and its first pages are fetched and verified meanwhile
                    early = _Pages(client, cursor, remote, device.registry(), EARLY_PAGES, pushing=True)
            push(device, client, report)
            if early is not None:
                early.pushing = False  # pages asked for from now on see the log as the push left it
            pull(device, client, report, progress=progress, commit_every=commit_every, remote=remote, pages=early)
        finally:
            if early is not None:
                early.close()
            remote.close()
    except (HubUnavailable, HubRefused, HubUntrusted, HighWaterInvalid) as exc:
        device.replica.set("last_sync_error", str(exc))
        raise
    finally:
        offset = getattr(client, "clock_offset", None)  # a test's stand-in client may have none
        if offset is not None and offset != device.replica.get("hub_clock_offset", 0.0):
            device.replica.set("hub_clock_offset", offset)
    device.replica.set("last_sync_error", None)  # first: whoever sees the new last_sync_at sees no old error
    device.replica.set("last_sync_at", stamp())
    return report


def _feed(device: Device, client: HubClient, after: int) -> tuple[dict[str, Any], dict[int, str]]:
    """The hub's answer about this device's feed, and its link hashes after ``after`` (all pages)."""
    kept = device.replica.get("checkpoint")
    since = int(kept["size"]) if kept else 0
    answer = client.feed(after=after, since=since)
    links: dict[int, str] = {}
    while True:
        links.update({int(link["seq"]): str(link["hash"]) for link in answer.get("links", [])})
        if not answer.get("more") or not answer.get("links"):
            return answer, links
        answer = client.feed(after=int(answer["links"][-1]["seq"]), since=since)


def prepare(device: Device, client: HubClient, report: SyncReport) -> int:
    """Before any push: check the hub's history (rollback, fork) and the replica's (restored).
    Returns the size of the hub's log, as its verified checkpoint gives it."""
    answer, links = _feed(device, client, recovery.feed_after(device))
    _check_checkpoint(device, answer.get("checkpoint"), chain_at=answer.get("chain_at"), probe=True)
    report.restored = recovery.reconcile(device, answer, links)
    if report.restored is not None:
        logger.error("%s", recovery.describe(report.restored))
    try:
        return int(answer["checkpoint"]["size"])
    except (KeyError, TypeError, ValueError):  # (the checkpoint verified: a guard, not a path)
        return 0


def push(device: Device, client: HubClient, report: SyncReport) -> None:
    replica = device.replica
    while True:
        rows = replica.rows(
            "SELECT seq, change_id, record_id, wire FROM outbox WHERE status IN ('pending', 'held')"
            " ORDER BY seq LIMIT ?",
            (PUSH_BATCH,),
        )
        if not rows:
            return
        results = client.push([json.loads(r["wire"]) for r in rows])
        by_id = {r["change_id"]: r for r in rows}
        refused: dict[str, set[str]] = {}
        progressed = False
        with replica.transaction():
            for result in results:
                row = by_id.get(result.get("id"))
                if row is None:
                    continue
                status = result["status"]
                if status == "duplicate" and result.get("reason"):
                    status = "rejected"  # a re-send of a change the hub had refused
                if status in ("accepted", "duplicate"):
                    report.accepted += 1
                    progressed = True
                    _mark(replica, row["seq"], "accepted")
                elif status == "held":
                    report.held += 1
                    _mark(replica, row["seq"], "held", result.get("reason"))
                else:
                    progressed = True
                    report.rejected.append(
                        {
                            "id": row["change_id"],
                            "record_id": row["record_id"],
                            "reason": result.get("reason"),
                            "details": result.get("details", {}),
                        }
                    )
                    _mark(replica, row["seq"], "rejected", result.get("reason"), result.get("details"))
                    refused.setdefault(row["record_id"], set()).add(row["change_id"])
            for record_id, change_ids in refused.items():
                state.rebuild(replica, record_id, change_ids)
        report.pushed += len(rows)
        if not progressed:
            return  # everything held: the hub lacks an earlier link; nothing more to do now


def _mark(replica: Any, seq: int, status: str, reason: str | None = None, details: Any = None) -> None:
    replica.conn.execute(
        "UPDATE outbox SET status = ?, reason = ?, details = ?, updated_at = ? WHERE seq = ?",
        (status, reason, json.dumps(details) if details else None, stamp(), seq),
    )


def configured_commit_changes() -> int:
    """``FIELDSYNC_PULL_COMMIT``: most pulled changes in one commit (default COMMIT_CHANGES)."""
    raw = os.environ.get("FIELDSYNC_PULL_COMMIT", "").strip()
    if not raw:
        return COMMIT_CHANGES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 1_000_000:
        raise ClientError(f"FIELDSYNC_PULL_COMMIT must be a whole number of changes from 1 to 1000000, not {raw!r}")
    return value


class _Commits:
    """The pull's open transaction: pages join it until it holds COMMIT_CHANGES changes or
    has run COMMIT_SECONDS; :meth:`commit` ends it (no-op when none is open). Its
    :class:`state.PageWriter` holds the pages' merged records until the commit, so a record
    edited on several of its pages is written once."""

    def __init__(self, replica: Any, limit: int) -> None:
        self.replica = replica
        self.limit = limit
        self.open: ExitStack | None = None
        self.writer: state.PageWriter | None = None
        self.changes = 0
        self.started = 0.0

    def join(self) -> state.PageWriter:
        if self.open is None or self.writer is None:
            self.open = ExitStack()
            self.open.enter_context(self.replica.transaction())
            self.writer = state.PageWriter(self.replica)
            self.changes, self.started = 0, time.monotonic()
        return self.writer

    def added(self, changes: int) -> None:
        self.changes += changes
        if self.changes >= self.limit or time.monotonic() - self.started >= COMMIT_SECONDS:
            self.commit()

    def commit(self) -> None:
        stack, self.open = self.open, None
        writer, self.writer = self.writer, None
        if stack is None:
            return
        try:
            if writer is not None:
                writer.flush()
        except BaseException as exc:
            stack.__exit__(type(exc), exc, exc.__traceback__)
            raise
        stack.close()

    def roll_back(self, exc: BaseException) -> None:
        stack, self.open, self.writer = self.open, None, None
        if stack is not None:
            stack.__exit__(type(exc), exc, exc.__traceback__)


_gc_lock = threading.Lock()
_gc_pulls = 0
_gc_saved: tuple[int, int, int] = (700, 10, 10)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """While a pull runs, the cycle collector runs after PULL_GC_THRESHOLD new objects, not 700.

    A pull allocates a few hundred objects a change (pages, merged states, rows), freed by their
    reference counts, not by the collector; at 700 it ran about every 5 changes, and each page
    lives long enough to be promoted, so the full collections scanned the whole process again and
    again: ~3 us a pulled change in `fieldsync sync`, 15-20 us in a process holding a few million
    objects (bench/bench_sync.py holds the floor's copies of every change). Set for the process
    (the collector has no other scope) and put back when the last pull running ends."""
    global _gc_pulls, _gc_saved
    with _gc_lock:
        if _gc_pulls == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(_gc_saved[0], PULL_GC_THRESHOLD), *_gc_saved[1:])
        _gc_pulls += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pulls -= 1
            if _gc_pulls == 0:
                gc.set_threshold(*_gc_saved)


def pull(
    device: Device,
    client: HubClient,
    report: SyncReport,
    *,
    progress: Progress | None = None,
    commit_every: int = COMMIT_CHANGES,
    remote: PageVerifier | None = None,
    pages: _Pages | None = None,
) -> None:
    """Pull page by page. While a page is verified and merged, the next PREFETCH pages are
    already on their way (each one's cursor is in the answer before it, so one fetcher thread
    asks for them in turn), and being verified in the verification processes; a page verified at
    home is verified on VERIFY_THREADS threads. Pages are merged in order. Whole pages are
    committed with the cursor after them (see the module's rules): a prefetched page that is
    never committed is simply asked for again next time. ``pages``: the pages sync() had
    fetched during the push, from this same cursor, under this same registry."""
    replica = device.replica
    remote = remote or PageVerifier()  # the caller's is started already when a long pull was foreseen
    cursor = int(replica.get("cursor", 0))
    if pages is None or pages.cursor != cursor or pages.registry is not device.registry():
        if pages is not None:
            pages.close()  # (a guard: nothing between the push and the pull moves the cursor)
        pages = _Pages(client, cursor, remote, device.registry(), PREFETCH)
    registry, ahead = pages.registry, pages.ahead
    verifiers = ThreadPoolExecutor(VERIFY_THREADS)
    commits = _Commits(replica, commit_every)
    relaxed = ExitStack()
    relaxed.enter_context(_fewer_collections())
    try:
        while True:
            pending = ahead.popleft()
            if not pending.done():
                commits.commit()  # never hold the write lock while waiting on the link
            fetched = pending.result()
            if isinstance(fetched, _Retry):  # not fetched beside the push: ask again, now
                pages.again(fetched.cursor, registry)
                continue
            assert fetched is not None  # (nothing is asked for after the last page)
            answer, outcomes, verified_under, settled = fetched
            if answer.get("registry_size") != len(registry.entries):
                try:
                    registry = device.replace_registry(client.registry())
                except VerificationError as exc:
                    raise HubUntrusted(f"the hub's key registry is not trustworthy: {exc}") from None
            if answer.get("more"):  # one more on its way, verified under the registry now held
                int(answer["next_cursor"])  # a malformed answer stops the pull here, before it is applied
                while len(ahead) < PREFETCH:  # (more may be on their way still after a push: EARLY_PAGES)
                    pages.push_next(registry, pending)
            elif not settled:  # the log's end before the push ended: ask again after it
                pages.again(int(answer["next_cursor"]), registry)
            verified = _verified(answer, outcomes, remote) if verified_under is registry else None
            alarm = _checkpoint_alarm(device, answer.get("checkpoint"))
            if alarm is not None:
                commits.commit()  # what was applied came under earlier, sound checkpoints
                _alarm(device, *alarm)
            writer = commits.join()
            try:
                _keep_checkpoint(device, answer["checkpoint"])
                _apply_page(device, answer, report, verifiers, verified, writer)
            except BaseException as exc:
                commits.roll_back(exc)
                raise
            report.cursor = int(answer["next_cursor"])
            commits.added(len(answer["changes"]))
            if progress is not None:
                progress(report.cursor, int(answer["checkpoint"]["size"]))
            if not answer.get("more") and settled:
                commits.commit()
                return
    except BaseException:
        commits.commit()  # only whole pages are in it: a failed fetch keeps what was applied
        raise
    finally:
        # a sync stopped early does not wait for a prefetched page it will not use
        pages.close()
        verifiers.shutdown(wait=False, cancel_futures=True)
        remote.close()
        relaxed.close()


class _Pages:
    """The pull's pages on their way, in order: one fetcher thread asks for each as soon as the
    one before it arrived (its cursor is in it). The first is verified at home (a pull foreseen
    long may be short: it must not wait for the workers' start); the others in the verification
    processes once they are worth starting (:meth:`_after`). Nothing here touches the replica, so
    fetching may run beside the push (``pushing``); a page asked for before the push ended is
    not *settled*: its ``more`` is false at the log's end as it was then, and the pull asks again
    after it (the push made the log longer). One that could not be fetched then (the hub busy
    with the push) comes as :class:`_Retry`: the pull asks for it again."""

    def __init__(
        self,
        client: HubClient,
        cursor: int,
        remote: PageVerifier,
        registry: KeyRegistry,
        count: int,
        *,
        pushing: bool = False,
    ) -> None:
        self.client, self.remote, self.cursor, self.registry = client, remote, cursor, registry
        self.pushing = pushing
        self.fetcher = ThreadPoolExecutor(1)
        self.ahead: deque[Future[_Fetched | _Retry | None]] = deque(
            [self.fetcher.submit(self._get, cursor, None, registry)]
        )
        while len(self.ahead) < count:
            self.push_next(registry)

    def push_next(self, registry: KeyRegistry, previous: Future[_Fetched | _Retry | None] | None = None) -> None:
        """One more page after the last one on its way (or ``previous``), under ``registry``."""
        last = self.ahead[-1] if self.ahead else previous
        self.ahead.append(self.fetcher.submit(self._after, last, registry))

    def again(self, cursor: int, registry: KeyRegistry) -> None:
        """After an unsettled last page, or a :class:`_Retry`: ask from ``cursor`` again (what
        was chained after it was never asked for)."""
        self.ahead.clear()
        self.ahead.append(
            self.fetcher.submit(self._get, cursor, self.remote if self.remote.started else None, registry)
        )

    def _after(self, previous: Future[_Fetched | _Retry | None], registry: KeyRegistry) -> _Fetched | _Retry | None:
        """On the fetcher thread, which runs its tasks in order (``previous`` is done): the page
        after ``previous``, or None after the last one (never asked for). An error fetching
        ``previous`` is raised again; the pull has stopped on it already."""
        fetched = previous.result()
        if fetched is None or isinstance(fetched, _Retry) or not fetched[0].get("more"):
            return None
        answer, remote = fetched[0], self.remote
        far = VERIFY_PROCESS and (remote.started or _still_to_come(answer) >= page_verifier.START_AFTER)
        return self._get(int(answer["next_cursor"]), remote if far else None, registry)

    def _get(self, cursor: int, remote: PageVerifier | None, registry: KeyRegistry) -> _Fetched | _Retry:
        """On the fetcher thread: a page, and (``remote``) its verification already under way in
        the verification processes, under ``registry``."""
        settled = not self.pushing  # read before asking: the answer is at least as new as this
        try:
            if remote is None:
                return self.client.pull(cursor, PULL_LIMIT), None, registry, settled
            answer, body = self.client.pull_page(cursor, PULL_LIMIT)
        except HubUnavailable:
            if settled:
                raise
            return _Retry(cursor)  # asked beside the push: asked again after it
        return answer, remote.submit(registry, body), registry, settled

    def close(self) -> None:
        """Stop fetching; a page not yet asked for is not asked for (the pull asks again)."""
        self.fetcher.shutdown(wait=False, cancel_futures=True)


def _pending(device: Device) -> bool:
    """Whether the outbox holds anything to push."""
    return bool(device.replica.rows("SELECT 1 FROM outbox WHERE status IN ('pending', 'held') LIMIT 1"))


def _still_to_come(answer: dict[str, Any]) -> int:
    try:
        return int(answer["checkpoint"]["size"]) - int(answer["next_cursor"])
    except (KeyError, TypeError, ValueError):
        return 0  # a malformed answer is refused further on


_Fetched = tuple[dict[str, Any], "Future[list[Outcome]] | None", KeyRegistry, bool]  # ..., settled


class _Retry(NamedTuple):
    """A page that could not be fetched beside the push, from this cursor."""

    cursor: int


def _verified(answer: dict[str, Any], outcomes: Future[list[Outcome]] | None, remote: PageVerifier) -> list[Any] | None:
    """The verification processes' answer for a page as _verify_chunk gives it (a Change or a
    ProvenanceError per change), or None: verify at home (no process, or it failed)."""
    if outcomes is None:
        return None
    try:
        results = outcomes.result(timeout=page_verifier.ANSWER_TIMEOUT)
    except Exception as exc:  # the process died, refused the page or hangs: verify at home
        remote.fail(exc)
        return None
    items = answer.get("changes")
    if not isinstance(items, list) or len(results) != len(items):
        return None
    out: list[Any] = []
    for item, (ok, text) in zip(items, results, strict=True):
        wire = item["change"] if ok else (item.get("change") if isinstance(item, dict) else None)
        if ok:
            out.append(Change.from_verified(VerifiedChange(wire, text)))
        else:
            out.append(ProvenanceError(text, change_id=wire.get("id") if isinstance(wire, dict) else None))
    return out


def _verify_chunk(verifier: Verifier, certificates: dict[str, Any], items: list[Any]) -> list[Any]:
    """Verify each item's change; a failure is returned in its place, to be refused in order."""
    out: list[Any] = []
    for item in items:
        wire = item.get("change") if isinstance(item, dict) else None
        try:
            if not isinstance(wire, dict):
                raise ProvenanceError("not a change")
            out.append(verifier.verify(wire, certificates.get(wire.get("device"))))
        except ProvenanceError as exc:
            out.append(exc)
    return out


def _apply_page(
    device: Device,
    answer: dict[str, Any],
    report: SyncReport,
    verifiers: ThreadPoolExecutor,
    verified: list[Any] | None = None,
    writer: state.PageWriter | None = None,
) -> None:
    """Merge a page; ``verified``: its changes as the verification processes vouched for them;
    ``writer``: the open commit's (which flushes it before committing), else the page's own."""
    replica = device.replica
    verifier = device.verifier()
    certificates = answer.get("certificates", {})
    items = answer["changes"]
    # the whole page is verified before the merge starts: verification threads running beside
    # the merge would make it wait for the GIL at every row it writes
    if verified is not None:
        verified_items = verified
    elif VERIFY_THREADS > 1 and len(items) >= 2 * VERIFY_CHUNK:
        half = (len(items) + 1) // 2
        chunks = [verifiers.submit(_verify_chunk, verifier, certificates, items[i : i + half]) for i in (0, half)]
        verified_items = [verified for chunk in chunks for verified in chunk.result()]
    else:
        verified_items = _verify_chunk(verifier, certificates, items)
    record_ids = {
        item["change"]["record_id"]
        for item in items
        if isinstance(item, dict) and isinstance(item.get("change"), dict)
        and isinstance(item["change"].get("record_id"), str)
    }  # fmt: skip
    with replica.transaction():
        clock = device.clock()  # read inside the transaction: an edit made meanwhile (ui) advanced it
        for device_id, cert in certificates.items():
            replica.conn.execute(
                "INSERT OR IGNORE INTO certificates(device_id, certificate) VALUES (?, ?)",
                (device_id, json.dumps(cert)),
            )
        own = writer is None
        writer = writer or state.PageWriter(replica)
        writer.page(record_ids)
        latest: str | None = None  # the page's latest clock, merged once at the end (text order is clock order)
        for item, verified in zip(items, verified_items, strict=True):
            wire = item.get("change") if isinstance(item, dict) else None
            report.pulled += 1
            try:
                if isinstance(verified, ProvenanceError):
                    raise verified
                if verified.device == HUB_DEVICE:  # staff may only choose among values officers signed
                    check_resolution(writer.states.get(verified.record_id), verified)
                seen = clock.check_text(verified.hlc)  # a clock too far ahead refuses its change here
                if latest is None or seen > latest:
                    latest = seen
                outcome = writer.apply(verified)  # a change the merge refuses is kept aside, below, only
                writer.keep(verified, "hub")
                if outcome == "applied":
                    report.applied += 1
            except (ProvenanceError, ChangeRejected, ClockDriftError, ClockError) as exc:
                reason = getattr(exc, "reason", None) or str(exc)
                report.refused.append({"id": wire.get("id") if isinstance(wire, dict) else None, "reason": reason})
                replica.conn.execute(
                    "INSERT INTO refused(change_id, record_id, wire, reason, received_at) VALUES (?, ?, ?, ?, ?)",
                    (
                        wire.get("id") if isinstance(wire, dict) else None,
                        wire.get("record_id") if isinstance(wire, dict) else None,
                        json.dumps(wire),
                        reason,
                        stamp(),
                    ),
                )
                logger.warning("refused a change from the hub: %s", reason)
        if latest is not None:  # as observing each in turn: the next local clock is later than all
            clock.merge(Hlc.parse(latest))  # (each was checked against the drift bound with its change)
        if own:
            writer.flush()
        replica.set("cursor", int(answer["next_cursor"]))
        replica.set("clock", str(clock.last))


def _check_checkpoint(device: Device, checkpoint: Any, *, chain_at: Any = None, probe: bool = False) -> None:
    """Verify a checkpoint and compare it with the newest kept; a ROLLBACK or FORK is kept as the
    replica's ``hub_alarm`` before it is raised. ``probe`` (the feed answer, with ``chain_at``: the
    hub's head at the kept size) also catches a fork that has grown past the kept size; a probe's
    checkpoint is not kept (the pull's are, page by page)."""
    alarm = _checkpoint_alarm(device, checkpoint, chain_at=chain_at, probe=probe)
    if alarm is not None:
        _alarm(device, *alarm)
    if not probe:
        _keep_checkpoint(device, checkpoint)


def _checkpoint_alarm(
    device: Device, checkpoint: Any, *, chain_at: Any = None, probe: bool = False
) -> tuple[str, str, Any, Any, dict[str, Any]] | None:
    """What :func:`_alarm` must raise for this checkpoint, or None; writes nothing. A checkpoint
    that does not verify raises HubUntrusted at once (nothing of it is kept)."""
    try:
        cp = verify_checkpoint(checkpoint, device.registry().hub_key)
    except VerificationError as exc:
        raise HubUntrusted(f"the hub's signed checkpoint does not verify: {exc}") from None
    newest = device.replica.get("checkpoint")
    if newest is None:
        return None
    seen = f"{cp.size} log entries (head {cp.head})"
    signed = f"signed {newest['size']} (head {newest['head']}) on {newest['at']}"
    if cp.size < newest["size"]:
        return (
            "ROLLBACK",
            f"ROLLBACK: the hub shows {seen} but {signed}: restored from an old copy, or not the same "
            "hub. Nothing was sent or applied; tell your administrator.",
            cp,
            checkpoint,
            newest,
        )
    forked_at_size = cp.size == newest["size"] and cp.head != newest["head"]
    forked_before = probe and cp.size > newest["size"] and chain_at != newest["head"]
    if forked_at_size or forked_before:
        return (
            "FORK",
            f"FORK: the hub shows {seen}"
            + (f", head {chain_at} at size {newest['size']}," if forked_before else "")
            + f" but {signed}: a different history. Nothing was sent or applied; tell your administrator.",
            cp,
            checkpoint,
            newest,
        )
    return None


def _keep_checkpoint(device: Device, checkpoint: dict[str, Any]) -> None:
    """Keep a verified, sound checkpoint as the newest when it shows a longer log."""
    newest = device.replica.get("checkpoint")
    size = int(checkpoint["size"])
    if newest is None or size > newest["size"]:
        device.replica.set("checkpoint", {"size": size, "head": checkpoint["head"], "at": checkpoint["at"]})


def _alarm(device: Device, kind: str, message: str, cp: Any, checkpoint: Any, newest: dict[str, Any]) -> None:
    device.replica.set(
        "hub_alarm",
        {
            "kind": kind,
            "message": message,
            "seen": {"size": cp.size, "head": cp.head, "at": checkpoint["at"]},
            "kept": newest,
            "detected_at": stamp(),
        },
    )
    logger.error("ALERT: %s", message)
    raise HubUntrusted(message)


def accept_hub(device: Device, client: HubClient, *, size: int, head: str) -> dict[str, Any]:
    """The officer's explicit step after a ROLLBACK or FORK alarm, with the log size and head the
    hub's administrator read on the hub itself (``fieldsync-hub log head``).

    Refused unless an alarm is kept and the hub now signs exactly that (size, head): a laptop
    facing an impostor cannot be talked into trusting it by the impostor alone. Then, in one
    transaction: the hub's checkpoint is kept as the newest, the cursor goes back to 0 (every
    change is pulled again; merging is idempotent), this device's changes the hub no longer
    holds (after the hub's head of its feed) are queued again - the same signed bytes, so no
    equivocation - and the alarm moves to ``hub_resets``, the replica's record of every one."""
    replica = device.replica
    alarm = replica.get("hub_alarm")
    if not alarm:
        raise ClientError("there is no ROLLBACK or FORK alarm on this laptop: nothing to accept")
    answer = client.feed(after=0, since=0)
    try:
        cp = verify_checkpoint(answer.get("checkpoint"), device.registry().hub_key)
    except VerificationError as exc:
        raise HubUntrusted(f"the hub's signed checkpoint does not verify: {exc}") from None
    if (cp.size, cp.head) != (size, head):
        raise HubUntrusted(
            f"not accepted: the hub now signs size {cp.size} head {cp.head}, not the size {size} head {head} you "
            "were given; the alarm stays. Check the hub address and ask your administrator again."
        )
    hub_seq = int(answer["seq"])
    with replica.transaction():
        requeued = [
            int(r["seq"])
            for r in replica.rows(
                "SELECT seq FROM outbox WHERE status IN ('accepted', 'rejected') AND seq > ? ORDER BY seq", (hub_seq,)
            )
        ]
        replica.conn.execute(
            "UPDATE outbox SET status = 'pending', reason = NULL, details = NULL, updated_at = ?"
            " WHERE status IN ('accepted', 'rejected') AND seq > ?",
            (stamp(), hub_seq),
        )
        record = {
            "accepted_at": stamp(),
            "alarm": alarm,
            "checkpoint": {"size": cp.size, "head": cp.head, "at": answer["checkpoint"]["at"]},
            "requeued": requeued,
        }
        replica.set("hub_resets", [*replica.get("hub_resets", []), record])
        replica.set("checkpoint", record["checkpoint"])
        replica.set("cursor", 0)
        replica.conn.execute("DELETE FROM meta WHERE key = 'hub_alarm'")
    return record


def backoff(failures: int, *, base: float = 5.0, cap: float = 900.0, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with "equal jitter" (seconds before the next try).

    The wait is drawn from [ceiling/2, ceiling]: never near zero (a laptop that
    just failed does not hammer the hub), yet spread so that a fleet coming back
    online does not retry in step. The exponent is clamped, so a hub down for
    weeks (thousands of failures) still yields ``cap``, never an overflow.
    """
    ceiling = min(cap, base * 2.0 ** min(max(0, failures - 1), 32))
    return (rng or random).uniform(ceiling / 2, ceiling)


def status(device: Device) -> dict[str, Any]:
    replica = device.replica
    count = lambda sql: replica.conn.execute(sql).fetchone()[0]  # noqa: E731
    found = conflicts(device)  # open ones only: those command staff settled are not counted
    return {
        "device_id": device.device_id,
        "agency": device.agency,
        "officer": device.officer,
        "hub": device.hub_url,
        "pending": count("SELECT count(*) FROM outbox WHERE status IN ('pending', 'held')"),
        "last_sync_at": replica.get("last_sync_at"),
        "last_sync_error": replica.get("last_sync_error"),
        "last_try_at": replica.get("last_try_at"),
        "cursor": replica.get("cursor", 0),
        "conflicts": sum(1 for c in found["conflicts"] if c["resolved_by"] is None),
        "double_bookings": sum(1 for b in found["double_bookings"] if b["resolved_by"] is None),
        "rejected": [  # details decoded: field -> messages, as `sync --json` reports them
            {**row, "details": json.loads(row["details"]) if row["details"] else {}}
            for row in replica.rows(
                "SELECT change_id, record_id, reason, details FROM outbox WHERE status = 'rejected' ORDER BY seq"
            )
        ],
        "refused": replica.rows("SELECT change_id, record_id, reason, received_at FROM refused ORDER BY id"),
        "hub_alarm": replica.get("hub_alarm"),
        "hub_resets": replica.get("hub_resets", []),
        "restored": replica.get("restored"),
        "feed_burned": replica.get("feed_burned"),
        "feed_closed": feed_closed(device),
        "set_aside": replica.rows(
            "SELECT seq, change_id, record_id, reason, wire FROM outbox WHERE status = 'set_aside' ORDER BY seq"
        ),
    }


def feed_closed(device: Device) -> str | None:
    """Why this laptop may not sign a new change now, or None."""
    try:
        device.check_can_sign()
    except ClientError as exc:
        return str(exc)
    return None


def _resolutions(replica: Any) -> tuple[dict[tuple[str, str], list[tuple[str, str]]], dict[str, str]]:
    """What command staff decided, from the hub-signed changes this laptop verified and holds:
    (record, field) -> [(hlc, staff member)] for conflicts; double booking id -> staff member."""
    fields: dict[tuple[str, str], list[tuple[str, str]]] = {}
    bookings: dict[str, str] = {}
    for row in replica.rows("SELECT wire FROM changes WHERE device = ?", (HUB_DEVICE,)):
        wire = json.loads(row["wire"])
        resolution = resolution_of(wire) or {}
        if resolution.get("kind") == "conflict":
            parts = str(resolution.get("resolves", "")).split("/")
            if len(parts) == 4:
                fields.setdefault((wire["record_id"], parts[1]), []).append((wire["hlc"], resolution["by"]))
        elif resolution.get("kind") == "double_booking":
            bookings[str(resolution.get("resolves"))] = resolution["by"]
    return fields, bookings


def conflicts(device: Device) -> dict[str, Any]:
    """Every conflict and double booking on this laptop, both sides shown, each with
    ``resolved_by``: the staff member whose hub-signed decision settled it (None while open).
    A decision settles every conflict of that record field written before it."""
    replica = device.replica
    settled_fields, settled_bookings = _resolutions(replica)
    rows = replica.rows(
        "SELECT id, record_id, collection, field, winner, loser, detected_at FROM conflicts ORDER BY id"
    )
    for row in rows:
        row["winner"], row["loser"] = json.loads(row["winner"]), json.loads(row["loser"])
        newest = max(row["winner"]["hlc"], row["loser"]["hlc"])
        later = [by for hlc, by in settled_fields.get((row["record_id"], row["field"]), []) if hlc > newest]
        row["resolved_by"] = later[0] if later else None
    bookings = replica.rows(
        "SELECT id, resource_id, first, second, overlap_start, overlap_end, detected_at"
        " FROM double_bookings ORDER BY id"
    )
    for booking in bookings:
        booking["resolved_by"] = settled_bookings.get(booking["id"])
    return {"conflicts": rows, "double_bookings": bookings}
