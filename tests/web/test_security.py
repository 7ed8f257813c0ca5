"""The web view's defences, seen from a real browser: headers, CSRF, roles, no GET changes, no outside assets."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from flask import Flask
from sqlalchemy import select

from backend.db import db
from backend.models import AuditEntry

from .conftest import ADMIN, STAFF, go, login
from .seed import Seeded

PAGES = ["/", "/records", "/audit", "/login"]


def test_security_headers_on_pages_static_files_and_the_api(live: str) -> None:
    for path in ["/login", "/static/hub.css", "/api/v1/registry", "/records"]:
        response = requests.get(live + path, timeout=10, allow_redirects=False)
        h = response.headers
        csp = h["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        assert "script-src" not in csp  # no script at all (default-src 'none' covers it)
        assert "frame-ancestors 'none'" in csp
        assert (
            h["Strict-Transport-Security"].startswith("max-age=")
            and int(h["Strict-Transport-Security"].split("=")[1].split(";")[0]) >= 15_552_000
        )
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Cache-Control"] == "no-store"
        assert h["X-Frame-Options"] == "DENY"


def test_a_form_posted_without_its_csrf_token_is_refused(page: Any, web_app: Flask) -> None:
    login(page, STAFF)
    # the logout form, with its token taken out, as a forged cross-site form would be
    page.locator("form[action='/logout'] input[name=csrf_token]").evaluate("e => e.remove()")
    with page.expect_response(lambda r: r.url.endswith("/logout")) as info:
        go(page.get_by_role("button", name="Log out"))
    assert info.value.status == 400
    assert "CSRF" in page.locator("main").inner_text()
    page.goto("/records")
    assert "/records" in page.url  # still logged in: the forged logout did nothing
    # a wrong token is refused just the same, and so is a login without one
    forged = page.request.post("/logout", form={"csrf_token": "forged"}, max_redirects=0)
    assert forged.status == 400
    with web_app.app_context():
        assert db.session.scalars(select(AuditEntry).where(AuditEntry.action == "logout")).all() == []


def test_a_login_form_without_its_token_is_refused(browser: Any, live: str, web_app: Flask) -> None:
    context = browser.new_context(base_url=live)
    try:
        context.new_page().goto("/login")  # a session exists, but this post does not carry its token
        response = context.request.post("/login", form={"name": STAFF[0], "password": STAFF[1]}, max_redirects=0)
        assert response.status == 400
        assert "CSRF" in response.text()
    finally:
        context.close()
    with web_app.app_context():
        assert db.session.scalars(select(AuditEntry).where(AuditEntry.action.like("login%"))).all() == []


def test_staff_get_403_on_admin_pages_and_the_refusal_is_audited(page: Any, web_app: Flask) -> None:
    login(page, STAFF)
    assert page.get_by_role("link", name="Admin").count() == 0  # not offered
    for path in ["/admin/", "/admin/users", "/admin/devices"]:
        response = page.goto(path)
        assert response.status == 403, path
        assert page.locator("h1").inner_text().startswith("403")
    # a POST to an admin action, with a valid CSRF token, is refused by role as well
    token = page.locator("form[action='/logout'] input[name=csrf_token]").get_attribute("value")
    refused = page.request.post("/admin/devices/token", form={"csrf_token": token, "agency": "SPD", "officer": "x"})
    assert refused.status == 403
    with web_app.app_context():
        denied = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "access.denied")).all()
        assert [e.object for e in denied] == [
            "GET /admin/",
            "GET /admin/users",
            "GET /admin/devices",
            "POST /admin/devices/token",
        ]
        assert {e.actor for e in denied} == {f"user:{STAFF[0]}"}


def test_an_admin_reaches_the_admin_pages(page: Any) -> None:
    login(page, ADMIN)
    go(page.get_by_role("link", name="Admin", exact=True))
    assert page.url.endswith("/admin/")


def test_no_state_change_by_get(page: Any, web_app: Flask) -> None:
    login(page, STAFF)
    response = page.goto("/logout")
    assert response.status == 405
    page.goto("/records")
    assert "/records" in page.url  # still logged in
    assert page.request.get("/login/banner").status == 405


def test_pages_load_nothing_from_outside_and_need_no_script(page: Any, live: str, seeded: Seeded) -> None:
    origin = urlsplit(live).netloc
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    login(page, STAFF)
    for path in [*PAGES[:-1], f"/records/{seeded.records['unit12']}"]:
        page.goto(path)
        assert page.locator("script").count() == 0, path
        assert page.locator("[style]").count() == 0, path  # the CSP would refuse inline style
        assert page.locator("link[rel=stylesheet]").get_attribute("href") == "/static/hub.css"
    outside = [u for u in requested if urlsplit(u).netloc != origin and not u.startswith("data:")]
    assert outside == []
    assert [p for p in problems if "Content Security Policy" in p] == []


def test_an_unknown_page_is_a_404_page_for_a_browser_and_json_for_a_script(page: Any, live: str) -> None:
    login(page, STAFF)
    response = page.goto("/no-such-page")
    assert response.status == 404 and page.locator("h1").inner_text().startswith("404")
    assert requests.get(live + "/no-such-page", timeout=10).json()["error"] == "not_found"


# what arrives in ``next`` once the query string is decoded
HOSTILE_NEXT = [
    "//evil.example/",
    "https://evil.example/",
    "/\\\\evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "/\t/evil.example/",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    " //evil.example",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example/x\n",
    "https:evil.example",
    "https:/evil.example",
    "javascript:alert(1)",
]


def test_login_never_redirects_to_another_site(page: Any, live: str) -> None:
    for target in HOSTILE_NEXT:
        page.context.clear_cookies()
        login(page, STAFF, next_path=f"/login?next={quote(target, safe='')}")
        assert page.url == live + "/", (target, page.url)
        assert page.get_by_role("heading", name="Dashboard").count() == 1
    # a user already logged in is sent on at once: the same check, read from the Location header
    for target in HOSTILE_NEXT:
        response = page.request.get(f"/login?next={quote(target, safe='')}", max_redirects=0)
        assert response.status == 302, target
        assert response.headers["location"] in ("/", live + "/"), (target, response.headers["location"])
    # a path on the hub is still honoured, query and all
    response = page.request.get(f"/login?next={quote('/records?collection=resources', safe='')}", max_redirects=0)
    assert response.headers["location"].endswith("/records?collection=resources")


def test_a_form_left_open_past_the_idle_limit_goes_back_to_the_login(page: Any, web_app: Flask) -> None:
    login(page, STAFF)
    web_app.config["SESSION_IDLE_MINUTES"] = 1 / 60
    time.sleep(2.2)
    go(page.get_by_role("button", name="Log out"))  # its token belonged to the ended session
    assert "/login" in page.url
    assert page.get_by_text("session ended after").count() == 1


def test_admins_are_offered_device_management_from_the_dashboard_and_staff_are_not(page: Any, seeded: Seeded) -> None:
    login(page, STAFF)
    assert page.get_by_role("link", name="Manage devices").count() == 0
    go(page.get_by_role("button", name="Log out"))
    login(page, ADMIN)
    go(page.get_by_role("link", name="Manage devices"))
    assert page.url.endswith("/admin/devices")
