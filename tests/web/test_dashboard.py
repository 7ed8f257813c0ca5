"""The dashboard: agencies, devices and their last sync, open conflicts, changes per day (SVG)."""

from __future__ import annotations

from typing import Any

from .conftest import STAFF, login
from .seed import Seeded


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
    shot(page, "dashboard")


def test_the_dashboard_works_on_a_tablet_width(page: Any, seeded: Seeded, shot) -> None:
    page.set_viewport_size({"width": 820, "height": 1180})
    login(page, STAFF)
    assert page.get_by_role("link", name="Records", exact=True).is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 820, "the page must not scroll sideways on a tablet (tables scroll inside their frame)"
    shot(page, "dashboard-tablet")
