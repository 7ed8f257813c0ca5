"""The dashboard: agencies, devices and their last sync, open conflicts, changes per day (SVG)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select

from backend.db import db
from backend.models import LogEntry

from .conftest import STAFF, login
from .seed import Seeded

BOTH = pytest.mark.parametrize("web_app", ["sqlite", "postgresql"], indirect=True)


@BOTH
def test_dashboard_shows_agencies_devices_conflicts_and_the_chart(page: Any, seeded: Seeded, shot) -> None:
    login(page, STAFF)
    agencies = page.locator("table.data").nth(0)
    rows = agencies.locator("tbody tr")
    assert rows.count() == 3
    spd = rows.filter(has_text="Springfield Police Department")
    cells = spd.locator("td").all_inner_texts()
    assert cells[0] == "SPD" and cells[2] == "2"  # two active laptops
    assert "CST" in cells[4] or "CDT" in cells[4], cells  # last sync in the display zone, with its name
    devices = page.locator("table.data").nth(1).locator("tbody tr")
    assert devices.count() == 4
    assert devices.filter(has_text="Sgt. Dana Lee").locator(".badge-ok").inner_text() == "active"
    tiles = page.locator(".tiles")
    assert tiles.locator(".tile", has_text="open conflict").locator(".num").inner_text() == "1"
    assert tiles.locator(".tile", has_text="open double booking").locator(".num").inner_text() == "1"
    chart = page.locator("svg.chart")
    assert chart.get_attribute("role") == "img"
    bars = chart.locator("rect.bar")
    assert bars.count() == 1  # every seeded change arrived today
    assert bars.first.locator("title").text_content().endswith(" changes")
    total = int(page.locator(".tile", has_text="changes accepted").locator(".num").inner_text().replace(",", ""))
    assert chart.locator("text.count").text_content() == str(total)


def test_the_dashboard_works_on_a_tablet_width(page: Any, seeded: Seeded, shot) -> None:
    page.set_viewport_size({"width": 820, "height": 1180})
    login(page, STAFF)
    assert page.get_by_role("link", name="Records", exact=True).is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 820, "the page must not scroll sideways on a tablet (tables scroll inside their frame)"
    # and no table is cut off inside its frame: secondary columns give way instead
    cut = page.evaluate(
        "[...document.querySelectorAll('.table-wrap')].filter(w => w.scrollWidth > w.clientWidth + 1).length"
    )
    assert cut == 0
    headers = page.locator("#device-table thead th")
    visible = [h.inner_text().rstrip("↕▲▼ ") for h in headers.all() if h.is_visible()]
    assert visible == ["Agency", "Officer", "Status", "Last push", "Last pull"]
    shot(page, "dashboard-tablet")


@BOTH
def test_changes_per_day_counts_each_local_day(page: Any, web_app: Flask, seeded: Seeded, shot) -> None:
    """Entries accepted on earlier days land in their own local (America/Chicago) day's bar."""
    tz = ZoneInfo("America/Chicago")
    today = datetime.now(UTC).astimezone(tz).date()
    with web_app.app_context():
        entries = list(db.session.scalars(select(LogEntry).order_by(LogEntry.seq)))
        # 4 entries two days ago at 23:30 local (the next UTC day already), 3 five days ago
        late = datetime.combine(today - timedelta(days=2), time(23, 30), tz).astimezone(UTC)
        for entry in entries[:4]:
            entry.accepted_at = late
        for entry in entries[4:7]:
            entry.accepted_at = datetime.combine(today - timedelta(days=5), time(9, 0), tz).astimezone(UTC)
        db.session.commit()
        total = len(entries)
    login(page, STAFF)
    labels = page.locator("svg.chart rect.bar title").all_text_contents()
    assert labels == [
        f"{today - timedelta(days=5)}: 3 changes",
        f"{today - timedelta(days=2)}: 4 changes",
        f"{today}: {total - 7} changes",
    ]
    shot(page, "dashboard")


def test_times_follow_the_display_zone_setting_and_an_unknown_zone_stops_the_hub(tmp_path: Any) -> None:
    import os

    from backend import create_app
    from backend.web.timefmt import localtime
    from crypto import b64e

    config = {"DATABASE_URL": f"sqlite:///{tmp_path}/h.db", "INSTANCE_PATH": str(tmp_path / "i"),
              "KEK": b64e(os.urandom(32)), "SECRET_KEY": "x"}  # fmt: skip
    moment = "2026-07-01T18:30:00Z"
    for zone, shown in [("UTC", "2026-07-01 18:30 UTC"), ("Europe/Berlin", "2026-07-01 20:30 CEST"),
                        ("America/Chicago", "2026-07-01 13:30 CDT")]:  # fmt: skip
        app = create_app({**config, "DISPLAY_TZ": zone})
        with app.app_context():
            assert localtime(moment) == shown
            assert localtime(datetime(2026, 7, 1, 18, 30)) == shown  # SQLite's naive UTC
            db.engine.dispose()
    with pytest.raises(RuntimeError, match="Mars/Olympus"):
        create_app({**config, "DISPLAY_TZ": "Mars/Olympus"})
