"""Exceptions raised by the field client.

::

    ClientError
    ├── HubUnavailable   network failure, timeout or 5xx: retry later (with backoff)
    ├── HubRefused       the hub answered 4xx with an error envelope: retrying will not help
    ├── ReplicaError     the local replica cannot be used as asked
    │   ├── WrongPassphrase
    │   ├── NotEnrolled / AlreadyEnrolled
    │   ├── ReplicaDamaged   corrupt file, or a replica older than one already seen
    │   └── HighWaterInvalid the high-water mark beside the replica fails its MAC or names another device
    ├── HubUntrusted     the hub showed a rolled-back or forked history: stop, alert
    ├── BadHubAddress    not https, or plain http to another machine (field_client.huburl)
    ├── RecordNotFound
    └── EditRefused      a local edit that fails validation (``messages``: field -> errors)
        └── FeedClosed   the laptop may not sign now (restored replica not yet resynced, burned seqs,
                         a tampered high-water mark)

``HubRefused`` carries ``status``, ``code``, ``message`` and ``details`` from the
hub's JSON error envelope.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Root of every error raised by :mod:`field_client`."""


class HubUnavailable(ClientError):
    retryable = True


class BadHubAddress(ClientError):
    """The hub address given at enrollment cannot be used (see :mod:`field_client.huburl`)."""


class HubRefused(ClientError):
    retryable = False

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"hub refused ({status} {code}): {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or {}


class ReplicaError(ClientError):
    """The local replica cannot be used as asked."""


class WrongPassphrase(ReplicaError):
    pass


class NotEnrolled(ReplicaError):
    pass


class AlreadyEnrolled(ReplicaError):
    pass


class ReplicaDamaged(ReplicaError):
    pass


class HighWaterInvalid(ReplicaError):
    pass


class RecordNotFound(ClientError):
    def __init__(self, record_id: str) -> None:
        super().__init__(f"no record {record_id} on this laptop")
        self.record_id = record_id


class EditRefused(ClientError):
    """A local edit that fails validation or policy; ``messages`` maps fields to errors."""

    def __init__(self, message: str, messages: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.messages = messages or {}


class FeedClosed(EditRefused):
    """The laptop must not sign a new change: its replica is older than its high-water mark and
    has not been resynced yet, or seqs it signed on a newer copy are lost (burned)."""


class HubUntrusted(ClientError):
    """The hub showed an older or different history than one it signed before (rollback, fork),
    or a registry that does not extend the pinned one. Sync stops until a person looks."""
