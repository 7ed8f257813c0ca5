"""The admin pages and ``fieldsync-hub`` share one path: accounts removed from the command line
lose their web sessions at once, and the CLI's new ``user remove``/``user list`` behave as the pages do."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from backend import cli, create_app
from backend.db import db
from backend.models import AuditEntry, User, WebSession
from crypto import b64e

from .conftest import STAFF, login


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FIELDSYNC_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setenv("FIELDSYNC_DATABASE_URL", f"sqlite:///{tmp_path}/hub.db")
    monkeypatch.setenv("FIELDSYNC_KEK", b64e(os.urandom(32)))
    monkeypatch.setenv("FIELDSYNC_ADMIN_PASSWORD", "first-admin-password")
    monkeypatch.setenv("FIELDSYNC_USER_PASSWORD", "a-staff-password-1")
    return tmp_path


def run(*args: str, ok: bool = True) -> Any:
    result = CliRunner().invoke(cli.main, list(args))
    assert (result.exit_code == 0) is ok, result.output
    return result


def test_user_remove_and_list_from_the_command_line(hub_env: Path) -> None:
    run("init")
    run("user", "add", "cmdr.ray", "--role", "staff")
    names = [u["name"] for u in json.loads(run("user", "list", "--json").output)]
    assert names == ["admin", "cmdr.ray"]
    assert "removed" in run("user", "remove", "cmdr.ray").output
    assert "no user cmdr.ray" in run("user", "remove", "cmdr.ray", ok=False).output
    assert "last admin" in run("user", "remove", "admin", ok=False).output
    assert [u["name"] for u in json.loads(run("user", "list", "--json").output)] == ["admin"]
    app = create_app()
    with app.app_context():
        (entry,) = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "user.remove"))
        assert entry.object == "cmdr.ray" and entry.actor.startswith("cli:")


def test_removing_an_account_with_the_cli_ends_its_browser_session(
    web_app: Any, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(page, STAFF, next_path="/records")
    assert page.url.endswith("/records")
    monkeypatch.setattr(cli, "_app", lambda: web_app)  # the command against the served hub's database
    run("user", "remove", STAFF[0])
    with web_app.app_context():
        assert db.session.scalar(select(User).where(User.name == STAFF[0])) is None
        assert db.session.scalars(select(WebSession).where(WebSession.user_id.is_not(None))).all() == []
    page.goto("/records")
    assert "/login" in page.url
