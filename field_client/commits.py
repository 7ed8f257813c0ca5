"""The pull's commits: pages of pulled changes joined into one replica transaction.

Rules this module owns:

- A commit covers at most COMMIT_CHANGES pulled changes (``FIELDSYNC_PULL_COMMIT``,
  field_client.settings) or COMMIT_SECONDS of work: each commit encrypts and
  writes every page it touched, and a record edited on several pages of one
  commit is then written once, not once a page (state.PageWriter), while an
  edit made meanwhile (``fieldsync ui``, another terminal) waits for the write
  lock no longer than that. A crash re-pulls at most one commit's changes.
- Only whole pages join a commit, with the cursor after them (field_client.pull
  applies them); :meth:`Commits.commit` flushes the writer before committing,
  and :meth:`Commits.roll_back` throws the writer's records away with the
  transaction: they are never flushed.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

from . import settings, state

COMMIT_CHANGES: int = settings.DEFAULTS["PULL_COMMIT"]  # pulled changes at most in one commit; a crash re-pulls these
COMMIT_SECONDS = 1.0  # ... or this much work: a `fieldsync ui` edit waits no longer for the write lock


class Commits:
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
