"""The review queues in a real browser: resolve a conflict, decline a double booking, and see
the decision arrive on a field laptop (the real ``fieldsync`` CLI in its own home) at its next sync."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from backend.db import db
from backend.models import AuditEntry, ConflictRow, DoubleBookingRow, LogEntry, Record
from sync import HUB_DEVICE
from tests.backend.helpers import Hub
from tests.e2e.conftest import ENROLLED
from tests.e2e.conftest import Officer as CliOfficer

from .conftest import STAFF, login
from .seed import Seeded


def one(app: Flask, query: Any) -> Any:
    with app.app_context():
        found = db.session.scalar(query)
        if found is not None:
            db.session.expunge(found)
        return found


def cli_laptop(app: Flask, live: str, home: Path, agency: str, officer: str) -> CliOfficer:
    """A laptop enrolled with the served hub through ``fieldsync enroll`` (a real process)."""
    laptop = CliOfficer(officer, agency, home)
    out = laptop.run("enroll", "--hub", live, "--token", Hub(app).token(agency, officer)).stdout
    match = ENROLLED.search(out)
    assert match, out
    laptop.device_id = match["device"]
    return laptop


def test_a_conflict_resolved_in_the_browser_reaches_a_field_laptop_at_its_next_sync(
    seeded: Seeded, web_app: Flask, live: str, page: Any, shot: Any, tmp_path: Path
) -> None:
    unit12 = seeded.records["unit12"]
    moss = cli_laptop(web_app, live, tmp_path / "moss", "SPD", "Sgt. Pat Moss")
    moss.sync()
    before = {r["id"]: r for r in moss.list("resource")}[unit12]
    conflict = one(web_app, select(ConflictRow).where(ConflictRow.record_id == unit12))
    assert before["status"] == conflict.winner["value"]
    chosen = conflict.loser["value"]

    login(page, STAFF, next_path="/conflicts")
    card = page.locator("section.conflict").filter(has_text="Unit 12")
    assert card.count() == 1
    text = card.inner_text()
    for expected in ("deployed", "maintenance", "Sgt. Dana Lee", "Ofc. Luis Ramirez", "SPD", "status"):
        assert expected in text, expected
    assert re.search(r"\d{1,2}:\d{2}.*C[SD]T", text), text  # times in local time with the zone
    shot(page, "conflicts-queue")

    card.get_by_role("button", name=f"Keep “{chosen}”").click()
    assert page.get_by_text("Resolved.").count() == 1
    assert page.locator("section.conflict").count() == 0
    resolved_row = page.locator("table.data tbody tr").filter(has_text="Unit 12")
    assert STAFF[0] in resolved_row.inner_text() and chosen in resolved_row.inner_text()
    shot(page, "conflicts-resolved")

    # the hub's side: a hub-signed change naming the staff member, in the log
    entry = one(web_app, select(LogEntry).where(LogEntry.device == HUB_DEVICE))
    assert entry.wire["resolution"] == {"kind": "conflict", "resolves": conflict.id, "by": STAFF[0]}
    audited = one(web_app, select(AuditEntry).where(AuditEntry.action == "conflict.resolve"))
    assert audited.actor == f"user:{STAFF[0]}"

    # the laptop: next sync, it verifies the hub's signature against its pinned registry and applies it
    out = moss.sync().stdout
    after = {r["id"]: r for r in moss.list("resource")}[unit12]
    assert after["status"] == chosen, out
    assert moss.status()["refused"] == []
    rows = moss.replica_rows(f"SELECT device, wire FROM changes WHERE device = '{HUB_DEVICE}'")
    assert len(rows) == 1 and STAFF[0] in rows[0]["wire"]
    # and an officer who saw the conflict gets it too
    seeded.officers["lee"].pull()
    assert seeded.officers["lee"].state.records[unit12].values()["status"] == chosen


def test_a_double_booking_is_settled_by_declining_one_reservation(
    seeded: Seeded, web_app: Flask, page: Any, shot: Any
) -> None:
    booking = one(web_app, select(DoubleBookingRow))
    assert booking is not None and booking.status == "open"
    login(page, STAFF, next_path="/double-bookings")
    card = page.locator("section.booking")
    assert card.count() == 1
    text = card.inner_text()
    for expected in ("K9 Unit 3", "Night shift perimeter, fairgrounds", "Search warrant support", "Ofc. Luis Ramirez"):
        assert expected in text, expected
    shot(page, "double-bookings-queue")
    card.locator("article.side").filter(has_text="Search warrant support").get_by_role(
        "button", name="Decline this one"
    ).click()
    assert page.get_by_text("Reservation declined.").count() == 1
    assert page.locator("section.booking").count() == 0
    shot(page, "double-bookings-resolved")

    declined = seeded.records["booking_b"]
    assert one(web_app, select(DoubleBookingRow)).declined == declined
    assert one(web_app, select(Record).where(Record.record_id == declined)).values["state"] == "declined"
    ramirez = seeded.officers["ramirez"]
    ramirez.pull()
    assert ramirez.state.records[declined].values()["state"] == "declined"
    assert ramirez.state.records[seeded.records["booking_a"]].values()["state"] == "approved"


def test_a_resolution_posted_without_the_csrf_token_is_refused(seeded: Seeded, web_app: Flask, page: Any) -> None:
    login(page, STAFF, next_path="/conflicts")
    conflict = one(web_app, select(ConflictRow))
    answer = page.request.post("/conflicts/resolve", form={"conflict_id": conflict.id, "choice": "loser"})
    assert answer.status == 400
    answer = page.request.post(
        "/double-bookings/decline", form={"booking_id": "x", "reservation": "y", "csrf_token": "forged"}
    )
    assert answer.status == 400
    assert one(web_app, select(ConflictRow)).status == "open"
    assert one(web_app, select(LogEntry).where(LogEntry.device == HUB_DEVICE)) is None


def test_resolving_an_already_resolved_conflict_says_who_did_and_changes_nothing(
    seeded: Seeded, web_app: Flask, browser: Any, live: str, page: Any
) -> None:
    """Two commanders have the queue open; both choose. The second is told, nothing is written twice."""
    login(page, STAFF, next_path="/conflicts")
    other = browser.new_context(base_url=live).new_page()
    try:
        from .seed import ADMIN

        login(other, ADMIN, next_path="/conflicts")
        page.locator("section.conflict").get_by_role("button").first.click()
        other.locator("section.conflict").get_by_role("button").last.click()
        flash = other.locator(".flash-error").inner_text()
        assert "already resolved by" in flash and STAFF[0] in flash
    finally:
        other.context.close()
    with web_app.app_context():
        assert len(db.session.scalars(select(LogEntry).where(LogEntry.device == HUB_DEVICE)).all()) == 1
        tries = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "conflict.resolve").order_by(AuditEntry.seq)
        ).all()
        # the refused second choice is audited too, with the reason its author was shown
        assert [(e.actor, e.outcome) for e in tries] == [(f"user:{STAFF[0]}", "ok"), (f"user:{ADMIN[0]}", "refused")]
        assert "already resolved by" in tries[1].details["reason"]


def test_the_queue_needs_a_login(live: str, page: Any) -> None:
    page.goto("/conflicts")
    assert "/login" in page.url


def test_the_queue_filters_by_agency_and_collection(seeded: Seeded, page: Any) -> None:
    login(page, STAFF, next_path="/conflicts?agency=CSO")
    assert page.locator("section.conflict").count() == 0
    assert page.get_by_text("No open conflicts.").count() == 1
    page.get_by_label("Agency").select_option("SPD")
    page.get_by_label("Collection").select_option("resources")
    page.get_by_role("button", name="Filter").click()
    assert "agency=SPD" in page.url and "collection=resources" in page.url
    assert page.locator("section.conflict").count() == 1
    page.goto("/conflicts?collection=contacts")
    assert page.locator("section.conflict").count() == 0


def test_a_delete_against_an_edit_is_shown_in_words_and_can_be_settled_as_deleted(
    seeded: Seeded, web_app: Flask, page: Any
) -> None:
    lee, ramirez = seeded.officers["lee"], seeded.officers["ramirez"]
    drone = seeded.records["drone"]
    gone = lee.change("resources", {}, record_id=drone, deleted=True)
    edited = ramirez.change("resources", {"status": "available"}, record_id=drone)
    lee.push(gone)
    ramirez.push(edited)
    login(page, STAFF, next_path="/conflicts")
    card = page.locator("section.conflict").filter(has_text="deleted?")
    assert card.count() == 1
    sides = card.locator(".side-value").all_inner_texts()
    assert sorted(sides) == ["deleted", "kept (edited)"]
    card.get_by_role("button", name="Keep “deleted”").click()
    assert page.get_by_text("Resolved.").count() == 1
    assert one(web_app, select(Record).where(Record.record_id == drone)).deleted is True
    ramirez.pull()
    assert ramirez.state.records[drone].deleted
