"""Browser tests of the hub's pages: the real app over real HTTP on 127.0.0.1, driven by Chromium.

- ``web_app``: the hub on a fresh SQLite file, migrated with the real migrations,
  with an admin (``ADMIN``) and a staff (``STAFF``) account. Settings a test
  needs to shorten (``SESSION_IDLE_MINUTES``, ``LOGIN_LOCK_MINUTES``) are read
  per request, so a test may change ``web_app.config`` while the server runs.
  The session cookie stays ``Secure`` as in production: Chromium treats
  http://127.0.0.1 as a secure origin and sends it.
- ``live``: that app served by werkzeug in a thread on a free loopback port.
- ``seeded``: the overnight operation of tests/web/seed.py pushed through the API.
- ``page``: a fresh browser context (no cookies) and page with ``base_url=live``.
- ``login(page, user)``: banner, then the login form, as a person would.
- ``shot(page, name)``: a full-page screenshot kept as a test artifact (the
  folder is printed at the end of the run); with ``FIELDSYNC_DOCS_IMG=docs/img``
  a copy goes there for the guides.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from backend import bootstrap, create_app, keystore, schema
from backend.db import db
from crypto import b64e
from tests.conftest import PG_URL, _connect

from .seed import ADMIN, STAFF, Seeded, add_users, seed

__all__ = ["ADMIN", "STAFF"]


@pytest.fixture
def web_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """SQLite by default; ``@pytest.mark.parametrize("web_app", ["sqlite", "postgresql"], indirect=True)``
    runs a test on a fresh PostgreSQL database too (created for it, dropped after)."""
    backend = getattr(request, "param", "sqlite")
    pg_name = None
    if backend == "postgresql":
        base_url = str(request.getfixturevalue("postgres_url"))  # skips, with the reason, without PostgreSQL
        pg_name = f"fieldsync_web_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with _connect(PG_URL) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        url = f"{base_url.rpartition('/')[0]}/{pg_name}"
    else:
        url = f"sqlite:///{tmp_path}/hub.db"
    app = create_app(
        {
            "DATABASE_URL": url,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "KEK": b64e(os.urandom(32)),
            "SECRET_KEY": b64e(os.urandom(32)),
            "TESTING": True,
            "DISPLAY_TZ": "America/Chicago",
        }
    )
    with app.app_context():
        schema.upgrade()
        bootstrap.start_hub()
        db.session.commit()
        keystore.reset_cache()
    add_users(app)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if pg_name:
        with _connect(PG_URL) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


@pytest.fixture
def live(web_app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, web_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def seeded(web_app: Flask, live: str) -> Seeded:
    return seed(web_app, live)


@pytest.fixture
def page(browser: Any, live: str) -> Iterator[Any]:
    context = browser.new_context(base_url=live, viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def go(locator: Any) -> None:
    """Click a link or a submit button and wait until the page it leads to has loaded
    (a bare click returns before the next page is there; reading it then is a race)."""
    with locator.page.expect_navigation():
        locator.click()


def login(page: Any, user: tuple[str, str, str], *, next_path: str = "/") -> Any:
    """Log in as a person would: the banner first, then name and password."""
    page.goto(next_path)
    banner = page.get_by_role("button", name="I understand and agree")
    if banner.count():  # once per browser session, before the first login
        go(banner)
    page.get_by_label("User name").fill(user[0])
    page.get_by_label("Password").fill(user[1])
    go(page.get_by_role("button", name="Log in"))
    return page


ARTIFACTS = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    folder = tmp_path_factory.getbasetemp() / "artifacts"
    folder.mkdir(exist_ok=True)
    pytestconfig.stash[ARTIFACTS] = folder
    return folder


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Name the screenshots' folder at the end of the run (fixture output would be captured)."""
    folder = config.stash.get(ARTIFACTS, None)
    shots = sorted(folder.glob("*.png")) if folder else []
    if shots:
        terminalreporter.write_line(f"web screenshots ({len(shots)}) kept in {folder}")


@pytest.fixture
def shot(artifacts: Path) -> Callable[[Any, str], Path]:
    docs = os.environ.get("FIELDSYNC_DOCS_IMG")

    def take(page: Any, name: str) -> Path:
        path = artifacts / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if docs:
            Path(docs).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(docs) / path.name)
        return path

    return take
