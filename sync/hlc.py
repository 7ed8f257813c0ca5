"""Hybrid logical clocks (Kulkarni et al., 2014).

Rules this module owns:

- An :class:`Hlc` is (wall milliseconds, counter, node). Its text form,
  ``0001732312345678-000000-<node>``, is fixed-width up to the node, so
  comparing two texts compares the clocks: string order is clock order.
- :meth:`Clock.now` never goes backwards, even when the wall clock does: the
  counter grows instead, and past 999,999 the clock steps 1 ms ahead.
  :meth:`Clock.observe` merges a remote clock so that the next local event is
  later than everything seen (:meth:`Clock.merge`: one checked already;
  :meth:`Clock.check_text` checks a clock's text without building an Hlc).
- A remote clock more than ``max_drift_ms`` ahead of the local wall clock is
  refused with :class:`ClockDriftError` and not merged, so one laptop with a
  clock set to 2099 cannot drag every replica's clock into the future. The
  bound is a setting (``FIELDSYNC_MAX_CLOCK_DRIFT`` seconds; default 24 h,
  which still admits any time-zone mistake).
- Wall time and the bound are injected, so tests control them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ClockDriftError, ClockError

DEFAULT_MAX_DRIFT_MS = 24 * 3600 * 1000
MAX_COUNTER = 999_999
_TEXT = re.compile(r"\A([0-9]{16})-([0-9]{6})-([A-Za-z0-9_.:-]{1,64})\Z")


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True, order=True)
class Hlc:
    wall_ms: int
    counter: int
    node: str

    def __str__(self) -> str:
        return f"{self.wall_ms:016d}-{self.counter:06d}-{self.node}"

    @classmethod
    def parse(cls, text: str) -> Hlc:
        match = _TEXT.match(text) if isinstance(text, str) else None
        if not match:
            raise ClockError(f"not a clock value: {text!r}")
        return cls(int(match[1]), int(match[2]), match[3])


def hlc_wall_ms(text: str) -> int:
    """Milliseconds part of a clock text, without building an Hlc."""
    return int(text[:16])


class Clock:
    """A node's hybrid logical clock."""

    def __init__(
        self,
        node: str,
        *,
        last: Hlc | str | None = None,
        now_ms: Callable[[], int] = wall_ms,
        max_drift_ms: int = DEFAULT_MAX_DRIFT_MS,
    ) -> None:
        self.node = node
        self._now_ms = now_ms
        self.max_drift_ms = max_drift_ms
        self.last = Hlc.parse(last) if isinstance(last, str) else (last or Hlc(0, 0, node))

    def now(self) -> Hlc:
        """The clock for a local event: later than every clock seen so far."""
        wall = self._now_ms()
        if wall > self.last.wall_ms:
            self.last = Hlc(wall, 0, self.node)
        else:
            self.last = self._after(self.last.wall_ms, self.last.counter)
        return self.last

    def check(self, remote: Hlc | str) -> Hlc:
        """Parse and bound-check a remote clock without merging it."""
        other = Hlc.parse(remote) if isinstance(remote, str) else remote
        local = self._now_ms()
        if other.wall_ms - local > self.max_drift_ms:
            raise ClockDriftError(other.wall_ms, local, self.max_drift_ms)
        return other

    def check_text(self, remote: str) -> str:
        """:meth:`check` for a clock's text, giving the text back: for a page of pulled changes,
        whose latest clock is then found by comparing texts (string order is clock order) and
        parsed once, instead of one :class:`Hlc` built per change."""
        match = _TEXT.match(remote) if isinstance(remote, str) else None
        if not match:
            raise ClockError(f"not a clock value: {remote!r}")
        wall, local = int(match[1]), self._now_ms()
        if wall - local > self.max_drift_ms:
            raise ClockDriftError(wall, local, self.max_drift_ms)
        return remote

    def observe(self, remote: Hlc | str) -> Hlc:
        """Merge a remote clock; the next :meth:`now` is later than it."""
        return self.merge(self.check(remote))

    def merge(self, other: Hlc) -> Hlc:
        """:meth:`observe` for a clock :meth:`check` has bound-checked already (not again: the
        wall clock may have stepped back since, and the change it came with was admitted)."""
        wall = self._now_ms()
        top = max(wall, self.last.wall_ms, other.wall_ms)
        if top == self.last.wall_ms == other.wall_ms:
            self.last = self._after(top, max(self.last.counter, other.counter))
        elif top == self.last.wall_ms:
            self.last = self._after(top, self.last.counter)
        elif top == other.wall_ms:
            self.last = self._after(top, other.counter)
        else:
            self.last = Hlc(top, 0, self.node)
        return self.last

    def _after(self, wall_ms: int, counter: int) -> Hlc:
        """The next clock after (wall_ms, counter): the counter grows, and when it is
        full the clock moves 1 ms ahead instead (string order still holds)."""
        if counter >= MAX_COUNTER:
            return Hlc(wall_ms + 1, 0, self.node)
        return Hlc(wall_ms, counter + 1, self.node)
