"""The replica's kept state: each key of its ``meta`` table, with a typed accessor.

Rules this module owns:

- Every key the laptop keeps in ``meta`` is named here, once, as an attribute
  of :class:`SyncState`; no other module spells one. A misspelled attribute
  raises AttributeError (the class has slots), where a misspelled string key
  would have read a silent default.
- The stored form does not change: each key is the same string and its value
  the same JSON, so every replica made before opens and reads as it did.
- Each write goes through :meth:`Replica.set` (its own transaction, or part of
  the caller's); the reads that were converted before (``int(cursor)``,
  ``float(hub_clock_offset)``) are converted here, and a key never written
  reads as its default.
- The keys, by who writes them:
  enrollment (field_client.device): ``hub_url``, ``device_id``, ``agency``,
  ``officer``, ``certificate``, ``registry`` (replaced later only by one that
  extends ``pinned``) and ``pinned`` (size and head of the registry at enrollment);
  the laptop's own feed (edits, device; the pull merges the clock): ``seq``, ``prev``,
  ``clock``;
  the sync (agent, pull, recovery, hubtrust): ``cursor`` (the hub log's position
  pulled up to), ``checkpoint`` (the newest verified hub checkpoint),
  ``hub_alarm`` (a ROLLBACK or FORK, kept until accept-hub removes it),
  ``hub_resets`` (every alarm accepted), ``last_sync_at``, ``last_try_at``,
  ``last_sync_error``, ``hub_clock_offset`` (seconds added to this clock to read the hub's),
  ``restored`` (what recovery did) and ``feed_burned`` (seqs never to sign again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypedDict, TypeVar, overload

from .replica import Replica

T = TypeVar("T")


class Checkpoint(TypedDict):
    """A verified hub checkpoint as kept: the log's size and head hash, and when it was signed."""

    size: int
    head: str | None  # None: an empty log
    at: str


class Pinned(TypedDict):
    """The key registry at enrollment: its length and the hash of its last entry."""

    size: int
    head: str | None


FeedBurned = TypedDict("FeedBurned", {"from": int, "to": int})  # "from" is a keyword: the functional form


class _Key(Generic[T]):
    """One ``meta`` key: read with its default (and conversion), written as JSON."""

    def __init__(self, key: str, default: T, convert: Callable[[Any], T] | None = None) -> None:
        self.key, self.default, self.convert = key, default, convert

    @overload
    def __get__(self, state: None, owner: type[SyncState]) -> _Key[T]: ...
    @overload
    def __get__(self, state: SyncState, owner: type[SyncState]) -> T: ...
    def __get__(self, state: SyncState | None, owner: type[SyncState]) -> _Key[T] | T:
        if state is None:
            return self
        value = state.replica.get(self.key, self.default)
        return self.convert(value) if self.convert is not None else value

    def __set__(self, state: SyncState, value: T) -> None:
        state.replica.set(self.key, value)

    def __delete__(self, state: SyncState) -> None:
        state.replica.unset(self.key)


class SyncState:
    """The typed view of one replica's ``meta`` keys (see the module's rules)."""

    __slots__ = ("replica",)

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    # enrollment
    hub_url = _Key[str | None]("hub_url", None)
    device_id = _Key[str | None]("device_id", None)
    agency = _Key[str | None]("agency", None)
    officer = _Key[str | None]("officer", None)
    certificate = _Key[dict[str, Any] | None]("certificate", None)
    registry = _Key[list[dict[str, Any]] | None]("registry", None)
    pinned = _Key[Pinned | None]("pinned", None)
    # the laptop's own feed
    seq = _Key[int]("seq", 0, int)
    prev = _Key[str | None]("prev", None)
    clock = _Key[str | None]("clock", None)
    # the sync
    cursor = _Key[int]("cursor", 0, int)
    checkpoint = _Key[Checkpoint | None]("checkpoint", None)
    hub_alarm = _Key[dict[str, Any] | None]("hub_alarm", None)
    hub_resets = _Key[list[dict[str, Any]]]("hub_resets", [], list)  # a copy: never the shared default
    last_sync_at = _Key[str | None]("last_sync_at", None)
    last_try_at = _Key[str | None]("last_try_at", None)
    last_sync_error = _Key[str | None]("last_sync_error", None)
    hub_clock_offset = _Key[float]("hub_clock_offset", 0.0, float)
    restored = _Key[dict[str, Any] | None]("restored", None)
    feed_burned = _Key[FeedBurned | None]("feed_burned", None)


KEYS = tuple(value.key for value in vars(SyncState).values() if isinstance(value, _Key))
"""Every ``meta`` key the laptop keeps, in the order above."""
