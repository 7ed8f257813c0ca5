"""The ui's other pages: unlock, the sync bar and its page, conflicts; template filters.

The sync bar is on every page (a context processor): pending changes, the
last successful sync, "Sync now", and what the hub refused and why. When the
last try failed, the time of that try ("last try: 14:05, no link") is shown
apart from the last successful sync, so neither reads as the other. A hub
that cannot be reached is a calm, expected state in a patrol car: the bar
says the edits are kept and will go out later, not that something broke.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from .. import overview, review
from ..device import Device
from ..errors import ReplicaError, WrongPassphrase
from ..replica import Replica
from . import state_of

bp = Blueprint("pages", __name__)
OPEN_WHEN_LOCKED = {"pages.unlock", "static"}


@bp.before_app_request
def require_unlocked() -> Any:
    if state_of(current_app).replica is None and request.endpoint not in OPEN_WHEN_LOCKED:
        return redirect(url_for("pages.unlock"), 303)
    return None


@bp.route("/unlock", methods=["GET", "POST"])
def unlock() -> Any:
    ui = state_of(current_app)
    if ui.replica is not None:
        return redirect(url_for("ui.resources"), 303)
    error = None
    if request.method == "POST":
        try:
            replica = Replica.open(ui.home, request.form.get("passphrase", ""))
            try:
                Device(replica)
            except ReplicaError:
                replica.close()
                raise
        except WrongPassphrase:
            error = "Wrong passphrase. Try again (nothing was opened)."
        except ReplicaError as exc:
            error = str(exc)
        else:
            ui.unlocked(replica)
            return redirect(url_for("ui.resources"), 303)
    return render_template("unlock.html", error=error, home=ui.home), (422 if error else 200)


@bp.post("/sync")
def sync_now() -> Any:
    ui = state_of(current_app)
    assert ui.syncer is not None
    ui.syncer.request()  # the sync bar says "Syncing…" until it is done
    return redirect(way_back(request.form.get("next", "")) or url_for("ui.resources"), 303)


_PATH = re.compile(r"/[A-Za-z0-9_\-/]*")
_QUERY = re.compile(r"[A-Za-z0-9_\-.~%+=&]*")


def way_back(back: str) -> str | None:
    """``back`` if it is one of the ui's own pages (a path its routes answer, with a plain query),
    else None. Nothing else is allowed: browsers drop tabs and newlines and read ``\\`` as ``/``, so
    ``/\t/evil.example`` or ``/\\evil.example`` would leave the laptop; ``%``-escapes in the path
    (``/%09/evil.example``) and a path that starts ``//`` are refused for the same reason."""
    path, _, query = back.partition("?")
    if not _PATH.fullmatch(path) or path.startswith("//") or not _QUERY.fullmatch(query):
        return None
    try:
        current_app.url_map.bind("127.0.0.1").match(path, "GET")
    except HTTPException:  # not a page of ours (404, 405) or one that redirects elsewhere
        return None
    return back


@bp.get("/sync")
def sync_page() -> str:
    ui = state_of(current_app)
    assert ui.replica is not None
    return render_template("sync.html", rejected=review.rejected(ui.replica))


@bp.get("/conflicts")
def conflicts() -> str:
    ui = state_of(current_app)
    assert ui.replica is not None
    return render_template("conflicts.html", found=review.concerning(Device(ui.replica)))


def sync_bar() -> dict[str, Any]:
    """Context for every page: the sync bar's figures, read fresh from the replica."""
    ui = state_of(current_app)
    if ui.replica is None:
        return {"bar": None}
    device = Device(ui.replica)
    info = overview.status(device)
    syncer = ui.syncer
    outcome = syncer.outcome if syncer else None
    return {
        "bar": {
            "officer": info["officer"],
            "agency": info["agency"],
            "pending": info["pending"],
            "last_sync_at": info["last_sync_at"],
            "last_error": info["last_sync_error"],
            # the last try failed: the bar says when it last synced AND when it last tried, apart
            "failed": (outcome.kind != "ok") if outcome else bool(info["last_sync_error"]),
            "no_link": bool(outcome and outcome.kind == "unreachable"),
            "last_try_at": outcome.at if outcome else info["last_try_at"],
            "running": bool(syncer and syncer.running),
            "outcome": outcome,
            "rejected": _last_refused(ui.replica, outcome),
            "rejected_count": len(info["rejected"]),
            "refused_count": len(info["refused"]),
            "concerns": _concern_count(device),
            "auto": bool(syncer and syncer.every),
        },
        "me": {"agency": device.agency, "device": device.device_id},
    }


def _last_refused(replica: Replica, outcome: Any) -> list[dict[str, Any]]:
    """What the last sync of this run had refused (the full list is on the sync page)."""
    if outcome is None or not outcome.report or not outcome.report.get("rejected"):
        return []
    ids = {item["id"] for item in outcome.report["rejected"]}
    return [item for item in review.rejected(replica) if item["change_id"] in ids]


def _concern_count(device: Device) -> int:
    """Open items only: what command staff settled (a hub-signed resolution) no longer counts."""
    found = review.concerning(device)
    return sum(1 for c in found["conflicts"] if c["open"]) + sum(1 for b in found["double_bookings"] if b["open"])


# -- template filters ------------------------------------------------------------------------
def _moment(text: Any) -> datetime | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def when(text: Any) -> str:
    """A UTC time as the laptop's local time: 'Mon 23 Nov 14:00'."""
    moment = _moment(text)
    return moment.astimezone().strftime("%a %d %b %H:%M") if moment else ("" if text is None else str(text))


def ago(text: Any, fresh: str = "just now") -> str:
    """'4 min ago', '2 h ago', or the date; ``fresh`` under a minute (the sync bar says "under a
    minute ago" of a success when the try since failed: "just now" beside "no link" reads as a lie)."""
    moment = _moment(text)
    if moment is None:
        return "never"
    seconds = (datetime.now(UTC) - moment).total_seconds()
    if seconds < 60:
        return fresh
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return when(text)


def hlc_when(hlc: Any) -> str:
    """A clock value (``0001763846400123-000002-node``) as local time."""
    try:
        moment = datetime.fromtimestamp(int(str(hlc)[:16]) / 1000, UTC)
    except ValueError:
        return ""
    return moment.astimezone().strftime("%a %d %b %H:%M")


def label(text: Any) -> str:
    return "" if text is None else str(text).replace("_", " ")


def zone() -> str:
    return datetime.now().astimezone().strftime("%Z (UTC%z)")


FILTERS = {"when": when, "ago": ago, "label": label, "hlc_when": hlc_when}
bp.add_app_template_global(zone, "zone")
