"""Login defences a reviewer found missing: names that exist look like names that do not,
the failure counter holds under concurrent guesses, and a pre-login CSRF token dies at login."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from backend.auth import accounts
from backend.db import db
from backend.models import AuditEntry, User

from .conftest import STAFF, go, login


def _count_password_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Spy on the real Argon2id check (it still runs): one entry per verification."""
    calls: list[str] = []
    real = accounts.check_password

    def counting(user: User, password: str) -> bool:
        calls.append(user.name or "(decoy)")
        return real(user, password)

    monkeypatch.setattr(accounts, "check_password", counting)
    return calls


def test_an_unknown_name_and_a_locked_account_get_the_same_answer_for_the_same_work(
    web_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_password_checks(monkeypatch)
    with web_app.app_context():
        web_app.config["LOGIN_MAX_FAILURES"] = 5
        for attempt in range(5):
            accounts.authenticate(STAFF[0], f"wrong {attempt}", client=None)
        assert len(calls) == 5  # each wrong password: one check
        user = db.session.scalar(select(User).where(User.name == STAFF[0]))
        assert user is not None and user.locked_until is not None
        calls.clear()
        locked = accounts.authenticate(STAFF[0], STAFF[1], client=None)
        assert len(calls) == 1, "a locked account must cost one Argon2id check like any other attempt"
        calls.clear()
        unknown = accounts.authenticate("nobody.here", "whatever", client=None)
        assert calls == ["(decoy)"]
        calls.clear()
        wrong = accounts.authenticate("admin.kim", "not it", client=None)
        assert len(calls) == 1
    assert not locked.ok and not unknown.ok and not wrong.ok
    assert locked.message == unknown.message == wrong.message
    assert locked.message is not None and "locked" in locked.message  # a locked officer still learns it may be


def test_the_form_shows_the_same_text_to_a_locked_account_and_an_unknown_name(page: Any) -> None:
    for attempt in range(5):
        login(page, (STAFF[0], f"wrong password {attempt}", "staff"))
    login(page, STAFF)  # right password, locked
    locked = page.get_by_role("alert").inner_text()
    login(page, ("no.such.officer", "any password at all", "staff"))
    unknown = page.get_by_role("alert").inner_text()
    assert locked == unknown
    assert "locked for 10 minutes" in locked


def _prepared_client(live: str) -> tuple[dict[str, str], str]:
    """A pre-login session past the banner: (headers with its cookie, its CSRF token).
    The cookie is Secure, so requests would not send it over http: it goes by hand."""
    first = requests.get(f"{live}/login", timeout=10)
    cookie = first.cookies["fieldsync_session"]
    match = re.search(r'name="csrf_token" value="([^"]+)"', first.text)
    assert match is not None
    headers = {"Cookie": f"fieldsync_session={cookie}"}
    ack = requests.post(
        f"{live}/login/banner", data={"csrf_token": match[1]}, headers=headers, timeout=10, allow_redirects=False
    )
    assert ack.status_code == 302
    return headers, match[1]


@pytest.mark.parametrize("web_app", ["sqlite", "postgresql"], indirect=True)
def test_twenty_concurrent_wrong_passwords_lock_at_exactly_the_fifth(web_app: Flask, live: str) -> None:
    clients = [_prepared_client(live) for _ in range(20)]
    start = threading.Barrier(len(clients))
    statuses: list[int] = []

    def guess(n: int, headers: dict[str, str], token: str) -> None:
        start.wait()
        response = requests.post(
            f"{live}/login",
            data={"csrf_token": token, "name": STAFF[0], "password": f"guess number {n}"},
            headers=headers,
            timeout=120,
            allow_redirects=False,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=guess, args=(n, *c)) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert statuses == [401] * 20
    with web_app.app_context():
        user = db.session.scalar(select(User).where(User.name == STAFF[0]))
        assert user is not None and user.locked_until is not None
        assert user.failed_logins == 0  # the lock reset the count
        counts = dict(
            db.session.execute(
                select(AuditEntry.action, func.count())
                .where(AuditEntry.action.like("login%"))
                .group_by(AuditEntry.action)
            ).all()
        )
        failures = [
            e.details["failures"]
            for e in db.session.scalars(
                select(AuditEntry).where(AuditEntry.action == "login.failed").order_by(AuditEntry.seq)
            )
        ]
    assert counts == {"login.failed": 4, "login.locked": 1, "login.refused": 15}
    assert failures == [1, 2, 3, 4]


def test_a_csrf_token_from_before_the_login_is_refused_after_it(page: Any, web_app: Flask) -> None:
    page.goto("/login")
    go(page.get_by_role("button", name="I understand and agree"))
    before = page.locator("form input[name=csrf_token]").first.get_attribute("value")
    page.get_by_label("User name").fill(STAFF[0])
    page.get_by_label("Password").fill(STAFF[1])
    go(page.get_by_role("button", name="Log in"))
    assert page.get_by_role("link", name="Dashboard").count() == 1
    stale = page.request.post("/logout", form={"csrf_token": before}, max_redirects=0)
    assert stale.status == 400, "a token planted or read before login must not work after it"
    page.goto("/records")
    assert "/records" in page.url  # still logged in: the stale logout did nothing
    fresh = page.locator("form[action='/logout'] input[name=csrf_token]").get_attribute("value")
    assert fresh != before
    assert page.request.post("/logout", form={"csrf_token": fresh}, max_redirects=0).status == 302
