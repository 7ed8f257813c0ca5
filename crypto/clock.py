"""The one clock: the current time, and the one text form of an instant in signed objects.

Rules this module owns:

- Every time inside something signed is UTC, written as RFC 3339 with whole
  seconds and a ``Z`` (``2026-11-22T21:40:00Z``), so the same instant always
  has the same bytes; parsing accepts only that form, with ASCII digits only,
  and only dates that exist.
- :func:`now` is the time a hub or a laptop records or signs: aware UTC, to
  the second (what a signed object can carry); :func:`stamp` is the same
  instant as that text. :func:`utcnow` keeps the microseconds, for deadlines
  and validity checks.
- A stored time is read back as aware UTC (:func:`as_utc`): SQLite hands back
  naive UTC, PostgreSQL aware times.

Every package that reads the wall clock for a record goes through here (the
hub's ``backend``, the laptop's ``field_client``), so a test can hold time
still in one place and no two modules disagree on the form. The hybrid logical
clock (sync.hlc) reads wall time itself, injected, in milliseconds.
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


def now() -> datetime:
    """The current time as records and signed objects carry it: aware UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def stamp() -> str:
    """:func:`now` in the signed-time text form (``2026-11-22T21:40:00Z``)."""
    return format_time(now())


def as_utc(moment: datetime) -> datetime:
    """A stored time as aware UTC (SQLite hands back naive UTC, PostgreSQL aware)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
