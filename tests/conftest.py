"""Fixtures shared by every suite: a real PostgreSQL for the hub's tests, a real Chromium for
the browser tests, and the rule that CI never skips silently.

The server's address comes from ``FIELDSYNC_TEST_POSTGRES`` (``make test`` and
.ci/run set it; default: the machine's local server on 127.0.0.1:5432). Each
test session gets its own fresh database on that server, dropped at the end.
If the server is down, the fixture tries to start it (``pg_ctlcluster``).

Rules this module owns:

- Where a service a test needs cannot be had (no PostgreSQL, no Chromium), the
  test is skipped with the reason shown in the summary (``-ra``), except under
  its switch, where that is a failure: ``FIELDSYNC_REQUIRE_POSTGRES=1``,
  ``FIELDSYNC_REQUIRE_BROWSER=1`` (.ci/run sets both: CI machines have them, so
  a missing one is a broken machine, not a reason to pass) - :func:`unavailable`.
- The run's closing lines count the skipped tests and group them by reason.
  Under ``FIELDSYNC_NO_SKIPS=1`` (.ci/run) or ``CI=true``, any skip fails the
  run (exit status 1) with a line that says so: a green CI run ran every test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

PG_URL = os.environ.get("FIELDSYNC_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NO_SKIPS = "FIELDSYNC_NO_SKIPS"


def unavailable(reason: str, *, switch: str) -> NoReturn:
    """Skip for ``reason``, or fail when ``switch`` is set to 1 (there the service is required)."""
    if os.environ.get(switch) == "1":
        pytest.fail(f"{reason} - required here ({switch}=1)", pytrace=False)
    pytest.skip(reason)


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
    if reason:
        unavailable(f"PostgreSQL variant skipped: {reason}", switch="FIELDSYNC_REQUIRE_POSTGRES")
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
        reason = f"browser tests skipped: no Chromium at {CHROMIUM} (make test installs it)"
        unavailable(reason, switch="FIELDSYNC_REQUIRE_BROWSER")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def _no_skips() -> bool:
    return os.environ.get(NO_SKIPS) == "1" or os.environ.get("CI", "").lower() == "true"


def _skipped(stats: dict[str, list[Any]]) -> Counter[str]:
    """Skipped tests per reason (a skip's report carries (file, line, reason) in ``longrepr``)."""
    reasons: Counter[str] = Counter()
    for report in stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    return reasons


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outside the terminal's own: its closing line comes first
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Any:
    """Where skips are not allowed, a run that skipped any test fails, and its last line says why."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = sum(_skipped(reporter.stats).values()) if reporter is not None else 0
    refused = _no_skips() and skipped > 0
    if refused and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    try:
        return (yield)
    finally:
        if refused and reporter is not None:
            reporter.write_line(
                f"FAILED: {skipped} test(s) skipped where skips are not allowed ({NO_SKIPS}=1 or CI=true)",
                red=True,
                bold=True,
            )


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The closing lines: how many tests were skipped, grouped by reason (-ra then lists each)."""
    reasons = _skipped(terminalreporter.stats)
    if not reasons:
        return
    terminalreporter.section("skipped tests", sep="-")
    for reason, count in reasons.most_common():
        terminalreporter.line(f"{count:5d}  {reason}")
    rule = "this run fails" if _no_skips() else f"under {NO_SKIPS}=1 or CI=true this would fail the run"
    terminalreporter.line(f"{sum(reasons.values())} test(s) skipped: {rule}")
