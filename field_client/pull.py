"""Pull: the hub's pages, verified, merged and committed with the cursor after them.

Rules this module owns:

- Pull asks by cursor, page by page, and commits whole pages with the cursor
  after the last of them in one transaction: a sync cut off at any point
  resumes where it stopped, with nothing applied twice and nothing skipped.
  A commit (field_client.commits) covers at most COMMIT_CHANGES changes or
  COMMIT_SECONDS of work, and ends whenever the next page has not arrived yet: the
  write lock is never held while waiting on the link, so an edit made
  meanwhile (``fieldsync ui``, another terminal) waits for one page's work at
  most. A failure to fetch the next page still commits the pages already
  applied; a failure while applying one rolls back to the last commit.
- While a page is verified and merged, the next PREFETCH pages are on their
  way (:class:`Pages`: one fetcher thread, each page's cursor being in the
  answer before it). A long pull's pages after the first are verified in the
  verification processes (field_client.verifier, when VERIFY_PROCESS); a page
  verified at home is verified on VERIFY_THREADS threads, before its merge
  starts (verification threads beside the merge would make it wait for the
  GIL at every row it writes). Pages are merged in order.
- Pages fetched while the push runs (EARLY_PAGES, when field_client.agent
  foresees a long pull) are applied only after the push, in order, as any
  others. A page asked for before the push ended does not end the pull (the
  push made the log longer: the laptop's own changes come back after it), and
  one that failed to come is asked for again after the push, not taken for a
  failed sync.
- Every pulled change is verified against the registry pinned at enrollment
  before it is applied (field_client.verifier.verify_items, the one rule for
  the workers and the home path); one that fails is kept in ``refused`` with
  the reason, never applied, and so is one the merge refuses or whose clock is
  too far ahead. A hub-signed resolution must also only re-state a value an
  officer signed (sync.resolutions), so a compromised hub cannot invent one.
  A newer registry is adopted only if it extends the pinned one; pages
  verified under an older one are verified again at home.
- Each page's signed checkpoint is checked (field_client.hubtrust) before the
  page is applied, and kept with it; a ROLLBACK or FORK commits what came
  under earlier, sound checkpoints and stops the pull.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, NamedTuple

from crypto import KeyRegistry, VerificationError, VerifiedChange
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

from . import hubtrust, outbox, state
from . import verifier as page_verifier
from .collector import fewer_collections
from .commits import COMMIT_CHANGES, Commits
from .device import Device
from .errors import HubUnavailable, HubUntrusted
from .transport import HubClient
from .verifier import Outcome, PageVerifier

if TYPE_CHECKING:  # (agent imports this module: the report's type only)
    from .agent import SyncReport

logger = logging.getLogger("fieldsync.client")
PULL_LIMIT = 1000  # changes a page; the hub may answer fewer (its FIELDSYNC_PULL_LIMIT, 1000 by default)
VERIFY_THREADS = 2  # only the Ed25519 call releases the GIL: a small gain (bench/README.md)
VERIFY_CHUNK = 50  # pages smaller than two chunks are verified on one thread
VERIFY_PROCESS = True  # a long pull is verified in processes of their own (field_client.verifier)
PREFETCH = 8  # pages on their way (fetched, verified) while one is merged: enough to outlast a commit
EARLY_PAGES = 8  # ... and while the push runs, before a long pull (each held in memory); 0: none

Progress = Callable[[int, int], None]  # (cursor, the log's size), after each page


def pull(
    device: Device,
    client: HubClient,
    report: SyncReport,
    *,
    progress: Progress | None = None,
    commit_every: int = COMMIT_CHANGES,
    remote: PageVerifier | None = None,
    pages: Pages | None = None,
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
    cursor = device.sync_state.cursor
    if pages is None or pages.cursor != cursor or pages.registry is not device.registry():
        if pages is not None:
            pages.close()  # (a guard: nothing between the push and the pull moves the cursor)
        pages = Pages(client, cursor, remote, device.registry(), PREFETCH)
    registry, ahead = pages.registry, pages.ahead
    verifiers = ThreadPoolExecutor(VERIFY_THREADS)
    commits = Commits(replica, commit_every)
    relaxed = ExitStack()
    relaxed.enter_context(fewer_collections())
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
            alarm = hubtrust.checkpoint_alarm(device, answer.get("checkpoint"))
            if alarm is not None:
                commits.commit()  # what was applied came under earlier, sound checkpoints
                hubtrust.raise_alarm(device, *alarm)
            writer = commits.join()
            try:
                hubtrust.keep_checkpoint(device, answer["checkpoint"])
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


class Pages:
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
    """The verification processes' answer for a page as _verify_at_home gives it (a Change or a
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


def _verify_at_home(verifier: Verifier, certificates: dict[str, Any], items: list[Any]) -> list[Any]:
    """verifier.verify_items' verdicts as the merge takes them: the Change, or the failure in its place."""
    return [
        verified if isinstance(verified, ProvenanceError) else Change.from_verified(verified)
        for verified in page_verifier.verify_items(verifier, certificates, items)
    ]


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
        chunks = [verifiers.submit(_verify_at_home, verifier, certificates, items[i : i + half]) for i in (0, half)]
        verified_items = [verified for chunk in chunks for verified in chunk.result()]
    else:
        verified_items = _verify_at_home(verifier, certificates, items)
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
                outbox.keep_refused(replica, wire, reason)
                logger.warning("refused a change from the hub: %s", reason)
        if latest is not None:  # as observing each in turn: the next local clock is later than all
            clock.merge(Hlc.parse(latest))  # (each was checked against the drift bound with its change)
        if own:
            writer.flush()
        device.sync_state.cursor = int(answer["next_cursor"])
        device.sync_state.clock = str(clock.last)
