"""Logging in: banner first, wrong passwords, lockout, logout and idle timeout end the session."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from backend import users
from backend.auth import accounts, sessions
from backend.db import db
from backend.models import AuditEntry, User, WebSession
from crypto.clock import as_utc, now

from .conftest import ADMIN, STAFF, go, login


def _audit(app: Flask, action: str) -> list[AuditEntry]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_banner_comes_before_the_login_form_and_login_lands_on_the_dashboard(page: Any, web_app: Flask, shot) -> None:
    page.goto("/records?collection=resources")
    assert "/login" in page.url
    assert page.get_by_text("authorized use only").count() >= 1
    assert page.get_by_label("User name").count() == 0  # no form before the banner is acknowledged
    shot(page, "login-banner")
    go(page.get_by_role("button", name="I understand and agree"))
    page.get_by_label("User name").fill(STAFF[0])
    page.get_by_label("Password").fill(STAFF[1])
    shot(page, "login-form")
    go(page.get_by_role("button", name="Log in"))
    assert page.url.endswith("/records?collection=resources")  # back where the user was going
    assert page.get_by_text(STAFF[0]).count() >= 1
    logins = _audit(web_app, "login")
    assert [e.actor for e in logins] == [f"user:{STAFF[0]}"] and logins[0].outcome == "ok"


def test_the_session_cookie_is_secure_httponly_samesite_and_rotates_at_login(page: Any) -> None:
    page.goto("/login")
    before = {c["name"]: c for c in page.context.cookies()}["fieldsync_session"]
    go(page.get_by_role("button", name="I understand and agree"))
    page.get_by_label("User name").fill(STAFF[0])
    page.get_by_label("Password").fill(STAFF[1])
    go(page.get_by_role("button", name="Log in"))
    after = {c["name"]: c for c in page.context.cookies()}["fieldsync_session"]
    assert after["secure"] and after["httpOnly"] and after["sameSite"] == "Lax"
    assert after["value"] != before["value"], "the pre-login token must not survive the login (fixation)"
    assert after["expires"] == -1  # a browser-session cookie


def test_a_wrong_password_is_refused_and_audited(page: Any, web_app: Flask) -> None:
    login(page, (STAFF[0], "not the password", "staff"))
    assert page.get_by_role("alert").inner_text().startswith("The user name or password is not right")
    login(page, ("nobody", "whatever-password", "staff"))
    assert page.get_by_role("alert").inner_text().startswith("The user name or password is not right")
    failed = _audit(web_app, "login.failed")
    assert [(e.actor, e.details["reason"]) for e in failed] == [
        (f"user:{STAFF[0]}", "wrong password"),
        ("user:nobody", "no such user"),
    ]
    assert "/login" in page.url and page.get_by_role("link", name="Records").count() == 0


def test_five_failures_lock_the_account_for_ten_minutes_even_for_the_right_password(page: Any, web_app: Flask) -> None:
    for attempt in range(5):
        login(page, (STAFF[0], f"wrong password {attempt}", "staff"))
    assert "locked for 10 minutes" in page.get_by_role("alert").inner_text()  # the generic answer says it may be
    login(page, STAFF)  # the right password, but locked
    assert page.get_by_role("alert").inner_text().startswith("The user name or password is not right, or")
    assert "/login" in page.url
    with web_app.app_context():
        user = db.session.scalar(select(User).where(User.name == STAFF[0]))
        assert user is not None and user.locked_until is not None
        # ten minutes later the lock has lifted: move the lock's end into the past
        user.locked_until = user.locked_until - timedelta(minutes=10, seconds=1)
        db.session.commit()
    login(page, STAFF)
    assert page.get_by_role("link", name="Dashboard").count() == 1
    assert [e.outcome for e in _audit(web_app, "login.locked")] == ["refused"]
    assert len(_audit(web_app, "login.refused")) == 1
    assert len(_audit(web_app, "login.failed")) == 4


def test_the_lock_lasts_ten_minutes_to_the_second(web_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lockout's length and its end, by a controlled clock (no browser, no sleep): the default
    settings (5 failures, 10 minutes); locked while ``locked_until > now``."""
    start = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
    clock = [start]
    monkeypatch.setattr(accounts, "now", lambda: clock[0])
    with web_app.app_context():
        for attempt in range(4):
            assert not accounts.authenticate(STAFF[0], f"wrong password {attempt}", client=None).ok
        user = db.session.scalar(select(User).where(User.name == STAFF[0]))
        assert user is not None and user.locked_until is None  # four do not lock
        clock[0] = start + timedelta(seconds=30)
        assert not accounts.authenticate(STAFF[0], "wrong password 4", client=None).ok  # the fifth locks
        db.session.refresh(user)
        assert as_utc(user.locked_until) == start + timedelta(minutes=10, seconds=30)
        clock[0] = start + timedelta(minutes=10, seconds=29)  # 9:59 into the lock
        assert not accounts.authenticate(STAFF[0], STAFF[1], client=None).ok
        clock[0] = start + timedelta(minutes=10, seconds=30)  # 10:00: the lock has lifted
        assert accounts.authenticate(STAFF[0], STAFF[1], client=None).ok
    assert len(_audit(web_app, "login.locked")) == len(_audit(web_app, "login.refused")) == 1
    assert [e.action for e in _audit(web_app, "login")] == ["login"]


def test_logout_ends_the_session_on_the_server(page: Any, web_app: Flask) -> None:
    login(page, STAFF)
    cookie = {c["name"]: c for c in page.context.cookies()}["fieldsync_session"]
    go(page.get_by_role("button", name="Log out"))
    assert "/login" in page.url
    with web_app.app_context():
        assert db.session.scalars(select(WebSession).where(WebSession.user_id.is_not(None))).all() == []
    # the old cookie, replayed, is worth nothing
    page.context.add_cookies([{k: cookie[k] for k in ("name", "value", "domain", "path", "secure", "httpOnly")}])
    page.goto("/records")
    assert "/login" in page.url
    assert [e.actor for e in _audit(web_app, "logout")] == [f"user:{STAFF[0]}"]


def test_removing_an_account_ends_its_sessions_at_once(page: Any, web_app: Flask) -> None:
    login(page, STAFF)
    page.goto("/records")
    assert "/records" in page.url
    with web_app.app_context():
        users.remove_user(STAFF[0], actor="test")
        db.session.commit()
        assert db.session.scalars(select(WebSession).where(WebSession.user_id.is_not(None))).all() == []
    page.goto("/records")
    assert "/login" in page.url
    assert [e.details["sessions_ended"] for e in _audit(web_app, "user.remove")] == [1]


def test_deleting_a_user_row_ends_its_sessions_too(page: Any, web_app: Flask) -> None:
    """The foreign key cascades: even a removal that bypasses users.remove_user leaves no live session."""
    login(page, STAFF)
    with web_app.app_context():
        db.session.delete(db.session.scalar(select(User).where(User.name == STAFF[0])))
        db.session.commit()
        assert db.session.scalars(select(WebSession).where(WebSession.user_id.is_not(None))).all() == []
    page.goto("/records")
    assert "/login" in page.url


def test_an_idle_session_ends(page: Any, web_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The idle window (the default 30 minutes) by a controlled clock: the sessions module's ``now`` is
    stood still and moved by hand, so the browser's speed plays no part (no sleep)."""
    idle = timedelta(minutes=float(web_app.config["SESSION_IDLE_MINUTES"]))
    clock = [now()]
    monkeypatch.setattr(sessions, "now", lambda: clock[0])  # the hub runs in this process (a werkzeug thread)
    login(page, STAFF)
    clock[0] += idle - timedelta(seconds=1)  # a second short of the window
    page.goto("/records")
    assert "/login" not in page.url and "/records" in page.url  # activity keeps it alive ...
    clock[0] += idle - timedelta(seconds=1)
    page.goto("/records")
    assert "/login" not in page.url and "/records" in page.url  # ... and starts the window again
    clock[0] += idle + timedelta(seconds=1)  # a second past it
    page.goto("/records")
    assert "/login" in page.url
    assert page.get_by_text(re.compile("session ended after")).count() == 1
    assert [e.actor for e in _audit(web_app, "session.expired")] == [f"user:{STAFF[0]}"]


def test_an_admin_is_shown_as_admin(page: Any) -> None:
    login(page, ADMIN)
    assert page.locator(".role-admin").text_content() == "admin"
