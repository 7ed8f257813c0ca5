"""Exceptions raised by fieldsync's sync core.

::

    SyncError
    ├── ClockError          a clock value that cannot be used
    │   └── ClockDriftError a remote clock absurdly far ahead of ours
    ├── ValidationError     record values or a change envelope that fail the schemas
    ├── ChangeRejected      a well-formed change the engine refuses (wrong owner, ...)
    │   └── ReservationRefused  a booking the reservation rules refuse (``messages`` per field)
    └── ProvenanceError     a change whose signature chain does not verify

Each carries structured fields (``messages``, ``reason``, ``change_id``) so
the hub can turn it into a JSON error and the CLI into one clear line.
"""

from __future__ import annotations

from typing import Any


class SyncError(Exception):
    """Root of every error raised by :mod:`sync`."""


class ClockError(SyncError):
    """A hybrid logical clock value that is malformed or unusable."""


def _span(ms: int) -> str:
    """A duration for people: hours, minutes or seconds, whichever reads best."""
    if ms >= 3_600_000:
        return f"{ms / 3_600_000:.1f} hours"
    if ms >= 60_000:
        return f"{ms / 60_000:.1f} minutes"
    return f"{ms / 1000:.1f} seconds"


class ClockDriftError(ClockError):
    def __init__(self, remote_ms: int, local_ms: int, max_drift_ms: int) -> None:
        self.remote_ms, self.local_ms, self.max_drift_ms = remote_ms, local_ms, max_drift_ms
        super().__init__(
            f"remote clock is {_span(remote_ms - local_ms)} ahead of ours, beyond the allowed "
            f"{_span(max_drift_ms)}; check the sender's system clock"
        )


class ValidationError(SyncError):
    """Field-level errors: ``messages`` maps a field name to a list of messages."""

    def __init__(self, messages: dict[str, Any]) -> None:
        self.messages = messages
        parts = [
            f"{name}: {'; '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
            for name, msgs in messages.items()
        ]
        super().__init__("invalid " + ", ".join(parts))


class ChangeRejected(SyncError):
    def __init__(self, reason: str, *, change_id: str | None = None) -> None:
        self.reason, self.change_id = reason, change_id
        super().__init__(f"change {change_id}: {reason}" if change_id else reason)


class ReservationRefused(ChangeRejected):
    """A booking :mod:`sync.reservations` refuses: ``reason``, and ``messages`` (field -> messages)."""

    def __init__(self, reason: str, messages: dict[str, list[str]] | None = None) -> None:
        super().__init__(reason)
        self.messages = messages or {}


class ProvenanceError(SyncError):
    def __init__(self, reason: str, *, change_id: str | None = None) -> None:
        self.reason, self.change_id = reason, change_id
        super().__init__(f"change {change_id}: {reason}" if change_id else reason)
