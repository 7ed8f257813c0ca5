"""Device feeds: each device's changes form a gap-free, hash-linked chain.

Rules this module owns (as in Secure Scuttlebutt):

- A device's changes count ``seq`` 1, 2, 3...; ``prev`` is the hash of the
  device's change at ``seq - 1`` (null at 1).
- :func:`classify` says what one incoming change is to a feed whose head
  (last accepted seq and hash) is known:
  ``APPEND`` - the next link; ``DUPLICATE`` - the very change already held;
  ``GAP`` - from the future: hold it back until the missing ones arrive;
  ``EQUIVOCATION`` - a different signed change at a seq already taken, or a
  next link whose ``prev`` is not our head: the device signed two histories
  (a cloned key, a laptop restored from an image). Both are kept as proof
  and neither is merged automatically.
- :func:`release` takes held-back changes and returns those that now extend
  the feed, in order. Nothing here does I/O: the caller looks up hashes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class Verdict(enum.Enum):
    APPEND = "append"
    DUPLICATE = "duplicate"
    GAP = "gap"
    EQUIVOCATION = "equivocation"


@dataclass(frozen=True, slots=True)
class FeedHead:
    """The last accepted link of a device's feed (seq 0, hash None before any)."""

    seq: int = 0
    hash: str | None = None


class Linked(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def prev(self) -> str | None: ...
    @property
    def hash(self) -> str: ...


def classify(head: FeedHead, change: Linked, held_hash: str | None = None) -> Verdict:
    """Place ``change`` against the feed. ``held_hash``: the hash already accepted
    at ``change.seq``, when ``change.seq <= head.seq`` (the caller looks it up)."""
    if change.seq <= head.seq:
        return Verdict.DUPLICATE if held_hash == change.hash else Verdict.EQUIVOCATION
    if change.seq == head.seq + 1:
        return Verdict.APPEND if change.prev == head.hash else Verdict.EQUIVOCATION
    return Verdict.GAP


def release(head: FeedHead, held: Mapping[int, Linked]) -> list[Linked]:
    """Held-back changes that now form the feed's next links, in seq order.
    Stops at the first gap or at a link whose ``prev`` does not match."""
    out: list[Linked] = []
    seq, prev = head.seq, head.hash
    while (nxt := held.get(seq + 1)) is not None and nxt.prev == prev:
        out.append(nxt)
        seq, prev = nxt.seq, nxt.hash
    return out
