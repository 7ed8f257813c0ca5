"""Command staff's decisions reach the officer's page: a REAL resolution, end to end.

Two officers edit one field while apart (real ``fieldsync`` CLI processes against
a real ``fieldsync-hub serve``), a partner's request is approved over a booking
(a double booking), then a staff member logs in to the hub's own web view in
Chromium and settles both. After "Sync now" the officer's ``fieldsync ui``
shows who decided (the signed ``resolution.by``), the badge drops to nothing,
and the records show what was chosen.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import FIELDSYNC_HUB, run_cli
from tests.web.conftest import go, login

from .conftest import shot
from .test_ui_pages import opened
from .test_ui_sync import sync_now

STAFF = ("Lt. Dana Lee", "staff password for the review test")


def test_a_staff_resolution_shows_who_decided_and_clears_the_badge(
    two_agencies: Any, ui_of: Any, context: Any, browser: Any
) -> None:
    hub, adams, cruz = two_agencies
    run_cli(
        [FIELDSYNC_HUB, "user", "add", STAFF[0], "--role", "staff"], {**hub.env, "FIELDSYNC_USER_PASSWORD": STAFF[1]}
    )
    unit = adams.add("resource", kind="vehicle", name="Unit 12")
    adams.add("reservation", resource_id=unit, starts_at="2026-12-02T08:00:00Z", ends_at="2026-12-02T12:00:00Z",
              purpose="Warrant service")  # fmt: skip
    adams.sync()
    cruz.sync()
    # apart: both set the status (Cruz's is the later edit, so it wins by the merge rule) ...
    adams.update("resource", unit, status="maintenance")
    cruz.update("resource", unit, status="deployed")
    # ... and CSO asks for the vehicle over SPD's booking, which SPD approves: a double booking
    request = cruz.add("reservation", resource_id=unit, starts_at="2026-12-02T10:00:00Z",
                       ends_at="2026-12-02T14:00:00Z", purpose="Prisoner transport")  # fmt: skip
    adams.sync()
    cruz.sync()
    adams.sync()
    adams.update("reservation", request, state="approved")
    adams.sync()
    assert [c["field"] for c in hub.conflicts()] == ["status"]
    assert len(hub.query("SELECT id FROM double_bookings WHERE status = 'open'")) == 1

    page = opened(ui_of(adams), context)
    expect(page.get_by_test_id("concerns")).to_have_text("2")  # one conflict, one double booking, both open
    page.get_by_role("link", name="Conflicts").click()
    expect(page.get_by_test_id("conflicts").get_by_test_id("decision")).to_contain_text("The other value was kept")
    expect(page.get_by_test_id("double-bookings").get_by_test_id("decision")).to_contain_text("SPD decides")

    # command staff settle both in the hub's web view: Adams's "maintenance", and CSO's request declined
    staff = browser.new_context(base_url=hub.url, viewport={"width": 1280, "height": 860})
    try:
        desk = staff.new_page()
        desk.set_default_timeout(15_000)
        login(desk, STAFF, next_path="/conflicts")
        card = desk.locator("section.conflict").filter(has_text="Unit 12")
        go(card.get_by_role("button", name="Keep “maintenance”"))
        expect(desk.get_by_text("Resolved.")).to_be_visible()
        desk.goto("/double-bookings")
        theirs = desk.locator("article.side").filter(has_text="Prisoner transport")
        go(theirs.get_by_role("button", name="Decline this one"))
        expect(desk.get_by_text("Reservation declined.")).to_be_visible()
    finally:
        staff.close()
    assert hub.query("SELECT status, resolved_by FROM conflicts") == [{"status": "resolved", "resolved_by": STAFF[0]}]

    sync_now(page)  # the officer's page: the hub-signed decisions arrive, are verified, and are shown
    expect(page.get_by_test_id("sync-message")).to_contain_text("Synced")
    expect(page.get_by_test_id("concerns")).to_have_count(0)  # nothing open: no badge
    conflict = page.get_by_test_id("conflicts").get_by_role("listitem")
    expect(conflict.get_by_test_id("resolved-by")).to_have_text(f"Resolved by command staff: {STAFF[0]}, hub-signed.")
    expect(conflict.get_by_test_id("decision")).to_contain_text("They chose maintenance")
    booking = page.get_by_test_id("double-bookings").get_by_role("listitem")
    expect(booking.get_by_test_id("resolved-by")).to_have_text(f"Resolved by command staff: {STAFF[0]}, hub-signed.")
    expect(booking.get_by_test_id("decision")).to_contain_text("They declined CSO's booking")
    expect(booking.get_by_test_id("decision")).to_contain_text("(Warrant service) stands")
    expect(booking.get_by_test_id("decision")).not_to_contain_text("decides")
    shot(page, "conflicts-resolved")
    page.get_by_role("link", name="Unit 12").first.click()
    expect(page.get_by_test_id("record-name").locator("xpath=..").get_by_test_id("status")).to_have_text("MAINTENANCE")
    expect(
        page.get_by_test_id("bookings").get_by_role("listitem").filter(has_text="Prisoner transport")
    ).to_contain_text("DECLINED")
    assert adams.status()["conflicts"] == 0 and adams.status()["double_bookings"] == 0  # the CLI agrees
