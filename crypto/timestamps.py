"""Time in signed objects.

Rules this module owns: every time inside something signed is UTC, written as
RFC 3339 with whole seconds and a ``Z`` (``2026-11-22T21:40:00Z``), so the same
instant always has the same bytes; parsing accepts only that form.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .errors import KeyFormatError

_FORM = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("signed times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, *, what: str = "time") -> datetime:
    if not isinstance(text, str) or not _FORM.match(text):
        raise KeyFormatError(f"{what} must look like 2026-01-31T23:59:59Z, got {text!r}")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
