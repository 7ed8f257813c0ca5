"""The audit log page: entries newest first, filters, and the chain's status checked on every view."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from backend.db import db
from backend.models import AuditEntry

from .conftest import STAFF, go, login
from .seed import Seeded


def test_audit_page_shows_logins_and_an_intact_chain(page: Any, web_app: Flask, seeded: Seeded, shot) -> None:
    login(page, ("cmdr.lee", "a wrong password", "staff"))
    login(page, STAFF, next_path="/audit")
    chain = page.locator("#chain")
    assert "chain intact" in chain.inner_text()
    first = page.locator("#audit tbody tr").first.locator("td").all_inner_texts()
    assert first[2] == f"user:{STAFF[0]}" and first[4] == "login" and first[6] == "ok"
    assert first[1].endswith(("CST", "CDT"))
    second = page.locator("#audit tbody tr").nth(1).locator("td").all_inner_texts()
    assert second[4] == "login.failed" and second[6] == "refused" and "wrong password" in second[7]
    shot(page, "audit-log")
    page.get_by_label("Action").select_option("user.add")
    go(page.get_by_role("button", name="Filter"))
    assert sorted(r.locator("td").nth(5).inner_text() for r in page.locator("#audit tbody tr").all()) == [
        "admin.kim",
        "cmdr.lee",
    ]


def test_an_edited_entry_turns_the_chain_status_red(page: Any, web_app: Flask) -> None:
    login(page, STAFF, next_path="/audit")
    assert "chain intact" in page.locator("#chain").inner_text()
    with web_app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.add"))
        entry.object = "someone.else"  # rewrite history behind the hub's back
        db.session.commit()
        seq = entry.seq
    page.reload()
    assert "chain intact" in page.locator("#chain").inner_text()  # the same head, checked seconds ago
    go(page.get_by_role("link", name="check again now"))
    chain = page.locator("#chain")
    assert "chain broken" in chain.inner_text()
    assert f"entry {seq} was altered" in chain.inner_text()
    assert "chain-bad" in chain.get_attribute("class")
    page.goto("/audit")  # and it stays red on later views (the failed check is what is reused)
    assert "chain broken" in page.locator("#chain").inner_text()


def test_check_again_now_runs_at_most_once_a_minute(page: Any, web_app: Flask) -> None:
    """Any logged-in account could otherwise keep the hub re-hashing a large log by reloading it."""
    from datetime import timedelta

    from backend.web import queries

    login(page, STAFF, next_path="/audit?check=now")
    assert "chain intact" in page.locator("#chain").inner_text()
    with web_app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.add"))
        entry.object = "someone.else"
        db.session.commit()
    go(page.get_by_role("link", name="check again now"))
    chain = page.locator("#chain").inner_text()
    assert "chain intact" in chain, "a second forced check within the minute reuses the last result"
    assert "at most once a minute: the last forced check ran" in chain
    with web_app.app_context():
        key = str(db.engine.url)
    queries._last_forced[key] -= timedelta(seconds=queries.FORCED_CHECK_SECONDS + 1)  # a minute later
    go(page.get_by_role("link", name="check again now"))
    assert "chain broken" in page.locator("#chain").inner_text()
