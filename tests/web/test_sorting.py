"""Tables that sort by a plain link in their column header (server-side, no JavaScript):
the dashboard's devices, the audit log, the admin lists of devices and users."""

from __future__ import annotations

from typing import Any

from flask import Flask

from .conftest import ADMIN, STAFF, go, login
from .seed import Seeded


def _column(page: Any, table: str, n: int) -> list[str]:
    return page.locator(f"{table} tbody tr td:nth-child({n})").all_inner_texts()


def _sort_by(page: Any, table: str, label: str) -> None:
    go(page.locator(f"{table} thead").get_by_role("link", name=label))


def test_the_dashboard_devices_sort_by_officer_and_back(page: Any, seeded: Seeded) -> None:
    login(page, STAFF)
    officers = _column(page, "#device-table", 3)
    assert len(officers) == 4
    _sort_by(page, "#device-table", "Officer")
    assert "sort=officer" in page.url and "dir=asc" in page.url
    assert _column(page, "#device-table", 3) == sorted(officers, key=str.casefold)
    assert page.locator("#device-table th[aria-sort=ascending]").inner_text().startswith("Officer")
    _sort_by(page, "#device-table", "Officer")  # a second click turns it round
    assert _column(page, "#device-table", 3) == sorted(officers, key=str.casefold, reverse=True)
    _sort_by(page, "#device-table", "Agency")
    agencies = _column(page, "#device-table", 2)
    assert agencies == sorted(agencies) and agencies[0] == "CSO"
    page.goto("/?sort=nonsense&dir=sideways")  # unknown keys fall back to the default order
    assert len(_column(page, "#device-table", 3)) == 4


def test_the_audit_log_sorts_by_actor_and_action_and_keeps_its_filters(page: Any, seeded: Seeded) -> None:
    login(page, STAFF, next_path="/audit")
    _sort_by(page, "#audit", "Actor")
    actors = _column(page, "#audit", 3)
    assert actors == sorted(actors) and len(set(actors)) > 1
    _sort_by(page, "#audit", "Action")
    actions = _column(page, "#audit", 5)
    assert actions == sorted(actions)
    _sort_by(page, "#audit", "Action")
    assert _column(page, "#audit", 5) == sorted(actions, reverse=True)
    page.get_by_label("Outcome").select_option("ok")  # filtering keeps the sort
    go(page.get_by_role("button", name="Filter"))
    assert "sort=action" in page.url and "dir=desc" in page.url and "outcome=ok" in page.url
    filtered = _column(page, "#audit", 5)
    assert filtered == sorted(filtered, reverse=True)
    assert set(_column(page, "#audit", 7)) == {"ok"}
    _sort_by(page, "#audit", "Time")  # back to time order: newest first is the second click
    _sort_by(page, "#audit", "Time")
    seqs = [int(n) for n in _column(page, "#audit", 1)]
    assert seqs == sorted(seqs, reverse=True)


def test_sorted_audit_pages_walk_every_entry_once(page: Any, web_app: Flask) -> None:
    from backend import audit
    from backend.db import db

    with web_app.app_context():
        for n in range(120):
            audit.record(f"test.action{n % 7}", actor=f"user:tester{n % 11:02d}")
        db.session.commit()
    login(page, STAFF, next_path="/audit?sort=actor&dir=asc")
    seen: list[tuple[str, int]] = []
    while True:
        seen += [
            (r.locator("td").nth(2).inner_text(), int(r.locator("td").nth(0).inner_text()))
            for r in page.locator("#audit tbody tr").all()
        ]
        more = page.locator("a[rel=next]")
        if not more.count():
            break
        go(more)
    assert len(seen) == len({s for _, s in seen}) and len(seen) >= 120
    assert seen == sorted(seen)


def test_the_admin_devices_and_users_sort_by_column(page: Any, seeded: Seeded) -> None:
    login(page, ADMIN, next_path="/admin/devices")
    _sort_by(page, "table.data", "Officer")
    officers = _column(page, "table.data", 3)
    assert len(officers) == 4 and officers == sorted(officers, key=str.casefold)
    _sort_by(page, "table.data", "Officer")
    assert _column(page, "table.data", 3) == sorted(officers, key=str.casefold, reverse=True)
    filters = page.locator("form.filters")
    filters.locator("select[name=agency]").select_option("SPD")  # the agency filter keeps the sort
    go(filters.get_by_role("button", name="Filter"))
    assert "sort=officer" in page.url
    assert _column(page, "table.data", 3) == sorted(
        [o for o in officers if o.startswith(("Ofc.", "Sgt."))], reverse=True
    )
    page.goto("/admin/users")
    names = [n.replace(" (you)", "") for n in _column(page, "table.data", 1)]
    assert names == sorted(names)
    _sort_by(page, "table.data", "Name")
    assert [n.replace(" (you)", "") for n in _column(page, "table.data", 1)] == sorted(names, reverse=True)
    _sort_by(page, "table.data", "Role")
    assert _column(page, "table.data", 2) == ["admin", "staff"]
