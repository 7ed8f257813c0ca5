"""Times for people: every time is stored in UTC and shown in ``DISPLAY_TZ``, with the zone.

A shift commander reads "07:42 CET", never a bare "06:42" that might be UTC.
The zone is an IANA name (``Europe/Berlin``, ``America/Chicago``); an unknown
name stops the hub at start, not halfway through a page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, current_app
from markupsafe import Markup, escape

from crypto.clock import as_utc
from sync.provenance import hlc_time


def zone() -> ZoneInfo:
    return ZoneInfo(str(current_app.config["DISPLAY_TZ"]))


def to_datetime(value: Any) -> datetime | None:
    """A datetime, an ISO 8601 string (``...Z``) or a hlc string, as aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    text = str(value)
    try:
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        pass
    try:
        return hlc_time(text)
    except (ValueError, TypeError, IndexError):
        return None


def localtime(value: Any, seconds: bool = False) -> str:
    """``2026-12-01 07:42 CET`` (``—`` for no time)."""
    moment = to_datetime(value)
    if moment is None:
        return "—"
    local = moment.astimezone(zone())
    return local.strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "")) + " " + (local.tzname() or "")


def when(value: Any, seconds: bool = False) -> Markup:
    """A ``<time>`` element: local time shown, the UTC instant in ``datetime``."""
    moment = to_datetime(value)
    if moment is None:
        return Markup("—")
    utc = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Markup(f'<time datetime="{escape(utc)}" title="{escape(utc)}">{escape(localtime(moment, seconds))}</time>')


def init_app(app: Flask) -> None:
    try:
        ZoneInfo(str(app.config["DISPLAY_TZ"]))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RuntimeError(f"FIELDSYNC_DISPLAY_TZ={app.config['DISPLAY_TZ']!r} is not a known time zone") from exc
    app.add_template_filter(localtime, "localtime")
    app.add_template_filter(when, "when")

    @app.context_processor
    def _zone() -> dict[str, Any]:
        now = datetime.now(UTC).astimezone(zone())
        return {"display_zone": str(current_app.config["DISPLAY_TZ"]), "display_zone_abbr": now.tzname()}
