"""Who can drive ``fieldsync ui``: only the browser given this run's address.

Each check is made against a real ``fieldsync ui`` process, with plain HTTP
(requests) where a browser would not send the bad request, and with Chromium
where it would.
"""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from .conftest import pending


@pytest.fixture
def running(adams: Any, ui_of: Any) -> Any:
    return ui_of(adams)


def authed(ui: Any) -> requests.Session:
    """A client that opened the printed address: it holds the session cookie."""
    session = requests.Session()
    answer = session.get(ui.url, allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and answer.headers["Location"] == "/"
    return session


def test_a_request_without_the_run_secret_is_refused(running: Any, context: Any) -> None:
    for path in ("/", "/resources", "/contacts", "/static/ui.css", "/sync"):
        answer = requests.get(running.base + path, timeout=10)
        assert answer.status_code == 403, path
        assert "Open the address that `fieldsync ui` printed" in answer.text
    assert requests.get(running.base + "/?key=" + "x" * 43, timeout=10).status_code == 403  # a wrong key
    assert requests.post(running.base + "/sync", timeout=10).status_code == 403
    page = context.new_page()
    answer = page.goto(running.base + "/resources")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    # the right address works, in the same browser
    page.goto(running.url)
    expect(page.get_by_test_id("syncbar")).to_be_visible()


def test_the_secret_becomes_an_httponly_strict_cookie_and_leaves_the_address(running: Any) -> None:
    answer = requests.get(running.url, allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and "key" not in answer.headers["Location"]
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"fieldsync_ui_{running.port}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert running.key not in cookie  # the cookie is not the key itself
    # kept filters survive the exchange; the key does not
    answer = requests.get(running.url + "&kind=vehicle", allow_redirects=False, timeout=10)
    assert answer.headers["Location"] == "/?kind=vehicle"


def test_a_wrong_host_header_is_refused_even_with_the_secret(running: Any) -> None:
    session = authed(running)
    assert session.get(running.base + "/resources", timeout=10).status_code == 200
    for host in (f"evil.example:{running.port}", "127.0.0.1", f"127.0.0.1:{running.port + 1}", "localhost"):
        answer = session.get(running.base + "/resources", headers={"Host": host}, timeout=10)
        assert answer.status_code == 403, host
        answer = requests.get(running.url, headers={"Host": host}, allow_redirects=False, timeout=10)
        assert answer.status_code == 403, host  # DNS rebinding: the key alone does not help
    answer = requests.get(running.url, headers={"Host": f"localhost:{running.port}"}, allow_redirects=False, timeout=10)
    assert answer.status_code == 303  # localhost:PORT is this server too


def test_a_post_without_csrf_token_or_from_another_origin_is_refused(running: Any, adams: Any) -> None:
    session = authed(running)
    form = {"name": "Unit 99", "kind": "vehicle", "status": "available"}
    answer = session.post(running.base + "/resources/new", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 400 and "CSRF" in answer.text
    page = session.get(running.base + "/resources/new", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    evil = {"Origin": "http://evil.example"}
    answer = session.post(
        running.base + "/resources/new", data={**form, "csrf_token": token[1]}, headers=evil, timeout=10
    )
    assert answer.status_code == 403
    answer = session.post(running.base + "/resources/new", data={**form, "csrf_token": "forged"}, timeout=10)
    assert answer.status_code == 400
    assert adams.status()["pending"] == 0 and adams.list("resource") == []  # nothing was written
    # and with the token, from this origin, the same form is accepted (the checks are not blanket refusals)
    answer = session.post(
        running.base + "/resources/new", data={**form, "csrf_token": token[1]}, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 303
    assert [r["name"] for r in adams.list("resource")] == ["Unit 99"]


def test_get_never_changes_anything(running: Any, adams: Any) -> None:
    session = authed(running)
    rid = adams.add("resource", kind="vehicle", name="Unit 5")
    before = adams.status()["pending"]
    assert session.get(f"{running.base}/resources/{rid}/status?status=deployed", timeout=10).status_code == 405
    assert session.get(running.base + "/resources/new?name=X&kind=vehicle", timeout=10).status_code == 200
    assert adams.status()["pending"] == before
    assert [r["status"] for r in adams.list("resource")] == ["available"]


def test_security_headers_on_every_answer(running: Any) -> None:
    session = authed(running)
    for path in ("/resources", "/static/ui.css", "/contacts", "/nowhere"):
        answer = session.get(running.base + path, timeout=10)
        headers = answer.headers
        assert "default-src 'self'" in headers["Content-Security-Policy"], path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
    page = session.get(running.base + "/resources", timeout=10).text
    assert "<script" not in page and " style=" not in page and "<style" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page), "no external asset"


def test_served_on_127_0_0_1_only_and_the_secret_stays_out_of_logs(running: Any) -> None:
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex(("127.0.0.2", running.port)) != 0  # bound to 127.0.0.1, not every address
    authed(running).get(running.base + "/resources", timeout=10)
    assert running.stop() == 0  # SIGTERM: a clean stop
    assert running.key not in running.log.read_text(errors="replace")


def test_unlock_on_the_page_when_there_is_no_terminal(adams: Any, ui_of: Any, context: Any) -> None:
    env = {k: v for k, v in adams.env.items() if k != "FIELDSYNC_PASSPHRASE"}
    ui = ui_of(adams, env=env)
    assert "the page will ask for it" in ui.printed
    page = context.new_page()
    page.goto(ui.url)
    expect(page.get_by_role("heading", name="Unlock")).to_be_visible()
    assert requests.get(ui.base + "/resources", timeout=10).status_code == 403  # still behind the secret
    page.get_by_label("Passphrase").fill("not the passphrase")
    page.get_by_role("button", name="Unlock").click()
    expect(page.get_by_test_id("error-passphrase")).to_contain_text("Wrong passphrase")
    page.get_by_label("Passphrase").fill(adams.env["FIELDSYNC_PASSPHRASE"])
    page.get_by_role("button", name="Unlock").click()
    expect(page.get_by_role("heading", name="Resources")).to_be_visible()
    assert pending(page) == 0


def test_sync_now_sends_the_browser_back_only_to_its_own_pages(running: Any) -> None:
    session = authed(running)
    token = re.search(r'name="csrf_token" value="([^"]+)"', session.get(running.base + "/contacts", timeout=10).text)
    assert token
    for back, expected in (
        ("/contacts?q=ortiz", "/contacts?q=ortiz"),
        ("/contacts?q=lt.%20ortiz&role=liaison", "/contacts?q=lt.%20ortiz&role=liaison"),
        ("/resources/0b6f0d5e-0000-4000-8000-000000000001", "/resources/0b6f0d5e-0000-4000-8000-000000000001"),
        ("//evil.example/", "/resources"),
        ("/\\evil.example", "/resources"),
        ("https://evil.example/", "/resources"),
        ("/\t/evil.example", "/resources"),  # browsers drop the tab: //evil.example
        ("/\n/evil.example", "/resources"),
        ("/%09/evil.example", "/resources"),
        ("/%2F/evil.example", "/resources"),
        (" //evil.example", "/resources"),
        ("/contacts?q=x\\y", "/resources"),
        ("/contacts?q=x\t//evil.example", "/resources"),
        ("/nowhere", "/resources"),  # not a page of the ui
        ("", "/resources"),
    ):
        answer = session.post(
            running.base + "/sync", data={"csrf_token": token[1], "next": back}, allow_redirects=False, timeout=10
        )
        assert answer.status_code == 303 and answer.headers["Location"] == expected, back
