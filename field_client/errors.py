"""Exceptions raised by the field client.

::

    ClientError
    ├── HubUnavailable   network failure, timeout or 5xx: retry later (with backoff)
    └── HubRefused       the hub answered 4xx with an error envelope: retrying will not help

``HubRefused`` carries ``status``, ``code``, ``message`` and ``details`` from the
hub's JSON error envelope.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Root of every error raised by :mod:`field_client`."""


class HubUnavailable(ClientError):
    retryable = True


class HubRefused(ClientError):
    retryable = False

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"hub refused ({status} {code}): {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or {}
