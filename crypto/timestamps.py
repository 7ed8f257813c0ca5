"""Time in signed objects.

Rules this module owns: every time inside something signed is UTC, written as
RFC 3339 with whole seconds and a ``Z`` (``2026-11-22T21:40:00Z``), so the same
instant always has the same bytes; parsing accepts only that form, with ASCII
digits only, and only dates that exist.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .errors import KeyFormatError

_FORM = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("signed times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, *, what: str = "time") -> datetime:
    if not isinstance(text, str) or not _FORM.match(text):
        raise KeyFormatError(f"{what} must look like 2026-01-31T23:59:59Z, got {text!r}")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise KeyFormatError(f"{what} is not a real date and time: {text!r}") from None


def utcnow() -> datetime:
    return datetime.now(UTC)
