"""Fixtures shared by every suite: a real PostgreSQL for the hub's tests.

The server's address comes from ``FIELDSYNC_TEST_POSTGRES`` (``make test`` and
.ci/run set it; default: the machine's local server on 127.0.0.1:5432). Each
test session gets its own fresh database on that server, dropped at the end.
If the server is down, the fixture tries to start it (``pg_ctlcluster``); only
where no PostgreSQL can be had are the PostgreSQL variants skipped, with the
reason shown in the summary (``-ra``) — except under ``FIELDSYNC_REQUIRE_POSTGRES=1``
(.ci/run sets it: CI machines have a server), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("FIELDSYNC_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _connect(url: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(_dsn(url), autocommit=True, connect_timeout=3)


def _start_local_server() -> None:
    if not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").is_dir():
        return
    for version in os.listdir("/etc/postgresql"):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    time.sleep(1)


def postgres_unavailable() -> str | None:
    try:
        _connect(PG_URL).close()
        return None
    except Exception:
        _start_local_server()
    try:
        _connect(PG_URL).close()
        return None
    except Exception as exc:
        return f"no PostgreSQL at {PG_URL} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database for this test session on the configured server."""
    reason = postgres_unavailable()
    if reason and os.environ.get("FIELDSYNC_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required here (FIELDSYNC_REQUIRE_POSTGRES=1): {reason}")
    if reason:
        pytest.skip(f"PostgreSQL variant skipped: {reason}")
    name = f"fieldsync_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with _connect(PG_URL) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_URL.rpartition("/")
    yield f"{base}/{name}"
    with _connect(PG_URL) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


CHROMIUM = os.environ.get("FIELDSYNC_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (``make test`` installs it when missing).

    Shared by the browser suites (tests/web for the hub's pages, the officer's
    ``fieldsync ui``): one headless browser per test session; each test opens its
    own context (``browser.new_context()``) so cookies never leak between tests.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests skipped: no Chromium at {CHROMIUM} (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()
