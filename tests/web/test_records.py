"""Merged records: filters, sorting by link, paging; record detail with provenance; escaping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from backend.db import db
from backend.models import AuditEntry, LogEntry
from field_client.bundle import verify_bundle

from .conftest import STAFF, go, login
from .seed import HOSTILE_NAME, Seeded


def _titles(page: Any) -> list[str]:
    return page.locator("#records tbody tr td:first-child").all_inner_texts()


@pytest.mark.parametrize("web_app", ["sqlite", "postgresql"], indirect=True)
def test_find_a_record_with_the_filters_and_open_its_detail(page: Any, seeded: Seeded, shot) -> None:
    login(page, STAFF, next_path="/records")
    assert len(_titles(page)) == 12  # every live record: 7 resources, 2 contacts, 3 reservations
    shot(page, "records")
    page.get_by_label("Collection").select_option("resources")
    page.get_by_label("Agency").select_option("SPD")
    go(page.get_by_role("button", name="Filter"))
    assert sorted(_titles(page)) == ["K9 Unit 3", "Thermal drone DJI-2", "Unit 12"]
    assert "collection=resources" in page.url and "agency=SPD" in page.url  # a plain GET: bookmarkable
    page.get_by_label("Status").select_option("maintenance")
    go(page.get_by_role("button", name="Filter"))
    assert sorted(_titles(page)) == ["Thermal drone DJI-2", "Unit 12"]  # Unit 12: the later laptop's value won
    page.get_by_label("Status").select_option("")
    page.get_by_label("Text").fill("station 3")  # free text, any case, in a nested location
    go(page.get_by_role("button", name="Filter"))
    assert _titles(page) == ["Unit 12"]
    row = page.locator("#records tbody tr").first
    assert row.locator(".badge").inner_text() == "maintenance"  # status in words, with a colour class
    assert "badge-warn" in row.locator(".badge").get_attribute("class")
    go(row.get_by_role("link", name="Unit 12"))
    assert page.url.endswith(f"/records/{seeded.records['unit12']}")
    shot(page, "record-detail")
    fields = {
        r.locator("th").inner_text(): r.locator("td").all_inner_texts() for r in page.locator("#fields tbody tr").all()
    }
    value, by, when, signature, versions = fields["status"]
    assert value == "maintenance" and "Ofc. Luis Ramirez" in by and "SPD" in by
    assert when.endswith(("CST", "CDT")) and signature == "verified" and versions == "3"
    assert fields["name"][0] == "Unit 12" and "Sgt. Dana Lee" in fields["name"][1]
    assert fields["location"][0] == "text: Station 3, bay 2"
    assert page.locator("#history tbody tr").count() == 3
    assert page.locator("#history .badge-ok").count() == 3
    assert page.locator("#conflicts tbody tr").count() == 1
    assert page.get_by_text("1 open conflict on this record").count() == 1


def test_sorting_is_a_link_and_works_without_javascript(browser: Any, live: str, seeded: Seeded) -> None:
    context = browser.new_context(base_url=live, java_script_enabled=False)
    page = context.new_page()
    try:
        login(page, STAFF, next_path="/records?collection=resources")
        go(page.locator("#records thead").get_by_role("link", name="Title"))
        titles = _titles(page)
        assert titles == sorted(titles) and len(titles) == 7
        go(page.locator("#records thead").get_by_role("link", name="Title"))  # again: descending
        assert _titles(page) == sorted(titles, reverse=True)
        assert page.locator("th[aria-sort=descending]").count() == 1
    finally:
        context.close()


@pytest.mark.parametrize("web_app", ["sqlite", "postgresql"], indirect=True)
def test_paging_walks_every_record_once_forward_and_back(page: Any, web_app: Flask, live: str) -> None:
    from .seed import seed

    seed(web_app, live, extra_resources=120)
    login(page, STAFF, next_path="/records?sort=title&q=barricade")
    assert page.get_by_text("120 records match").count() == 1
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        seen += _titles(page)
        nxt = page.locator("a[rel=next]")
        if not nxt.count():
            break
        go(nxt)
    assert pages == 3 and seen == [f"Barricade set {i:03d}" for i in range(120)]
    go(page.locator("a[rel=prev]"))
    assert _titles(page) == seen[50:100]
    go(page.locator("a[rel=prev]"))
    assert _titles(page) == seen[:50]
    assert page.locator("a[rel=prev]").count() == 0
    # the default order (newest first): many records share a second, the id breaks the ties
    page.goto("/records?q=barricade")
    walked: list[str] = []
    while True:
        walked += _titles(page)
        nxt = page.locator("a[rel=next]")
        if not nxt.count():
            break
        go(nxt)
    assert sorted(walked) == seen
    page.goto("/records?after=not-a-cursor")
    assert page.locator("h1").inner_text().startswith("400")


def test_provenance_bundle_downloads_with_the_web_session_and_verifies_offline(
    page: Any, web_app: Flask, seeded: Seeded, tmp_path: Path
) -> None:
    record_id = seeded.records["unit12"]
    login(page, STAFF, next_path=f"/records/{record_id}")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download provenance bundle").click()
    path = tmp_path / "bundle.json"
    info.value.save_as(path)
    assert info.value.suggested_filename == f"provenance-{record_id}.json"
    bundle = json.loads(path.read_text())
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    assert report.changes == 3 and bundle["record"]["values"]["notes"] == "Fuel card in glovebox"  # staff see all
    with web_app.app_context():
        exports = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "provenance.export")).all()
        assert [(e.actor, e.object) for e in exports] == [(f"user:{STAFF[0]}", record_id)]
    # without a web session there is no bundle: the login page instead
    anonymous = page.context.browser.new_context(base_url=page.url.split("/records")[0])
    try:
        response = anonymous.request.get(f"/records/{record_id}/provenance.json", max_redirects=0)
        assert response.status == 302 and "/login" in response.headers["location"]
    finally:
        anonymous.close()


def test_a_record_named_with_html_and_script_is_shown_as_text(page: Any, seeded: Seeded, shot) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, STAFF, next_path="/records?q=trailer")
    assert _titles(page) == [HOSTILE_NAME]
    assert page.locator("#records img").count() == 0 and page.locator("main script").count() == 0
    go(page.get_by_role("link", name="Trailer 7"))
    assert page.locator("h1").inner_text().startswith(HOSTILE_NAME)
    assert page.locator("main img, main script").count() == 0
    assert "&lt;script&gt;" in page.content()
    assert dialogs == []
    shot(page, "record-hostile-name")


def test_a_record_whose_log_entry_was_altered_shows_not_verified(page: Any, web_app: Flask, seeded: Seeded) -> None:
    record_id = seeded.records["k9"]
    with web_app.app_context():
        entry = db.session.scalar(select(LogEntry).where(LogEntry.record_id == record_id))
        wire = json.loads(json.dumps(entry.wire))
        wire["fields"]["name"]["value"] = "K9 Unit 4"  # someone edits the stored change
        entry.wire = wire
        db.session.commit()
    login(page, STAFF, next_path=f"/records/{record_id}")
    assert page.locator("#history .badge-bad").inner_text() == "not verified"
    assert page.get_by_text("some changes do not verify").count() == 1
