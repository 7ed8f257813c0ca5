"""Fixtures for ``fieldsync ui`` in a real browser.

The hub is the real ``fieldsync-hub serve`` process on loopback and each
officer a real home folder enrolled with ``fieldsync enroll`` (the helpers of
tests/e2e, imported, not copied). Each officer's ui is ``fieldsync ui
--no-browser`` as its own process: the test reads the address it prints and
drives it with Playwright (Debian's Chromium, the session ``browser``).
Screenshots of the pages go to ``test-artifacts/ui/`` (``FIELDSYNC_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import FIELDSYNC, Hub, Officer, hub_process, hub_template, officer  # noqa: F401

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = Path(os.environ.get("FIELDSYNC_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "ui"
ADDRESS = re.compile(r"running at (?P<url>http://127\.0\.0\.1:(?P<port>\d+)/\?key=(?P<key>[A-Za-z0-9_-]+))")
START_TIMEOUT = 20


class Ui:
    """One ``fieldsync ui`` process of one officer."""

    def __init__(self, person: Officer, *extra: str, env: dict[str, str] | None = None, browser: bool = False) -> None:
        self.person = person
        self.log = person.home.parent / f"ui-{person.name}.log"
        self._err = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        options = ["--sync-every", "0", *extra] + ([] if browser else ["--no-browser"])
        self.proc = subprocess.Popen(
            [str(FIELDSYNC), "--home", str(person.home), "ui", *options],
            env=env or person.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        self.printed = self._read_address()
        found = ADDRESS.search(self.printed)
        assert found, self.printed
        self.url, self.port, self.key = found["url"], int(found["port"]), found["key"]
        self.base = f"http://127.0.0.1:{self.port}"

    def _read_address(self) -> str:
        assert self.proc.stdout is not None
        seen = ""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                seen += line
                if ADDRESS.search(line):
                    return seen
                if not line and self.proc.poll() is not None:
                    break
            elif self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"fieldsync ui printed no address:\n{seen}\n{self.log.read_text(errors='replace')}")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._err.close()
        return self.proc.returncode


@pytest.fixture
def ui_of() -> Iterator[Callable[..., Ui]]:
    """``ui_of(officer, *options)``: start that officer's ``fieldsync ui``; all stopped at the end."""
    started: list[Ui] = []

    def start(person: Officer, *extra: str, env: dict[str, str] | None = None, browser: bool = False) -> Ui:
        ui = Ui(person, *extra, env=env, browser=browser)
        started.append(ui)
        return ui

    yield start
    for ui in started:
        ui.stop()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


def shot(page: Any, name: str) -> Path:
    """Keep a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def pending(page: Any) -> int:
    return int(page.get_by_test_id("pending").inner_text())


@pytest.fixture
def two_agencies(hub_process: Hub, officer: Callable[[str, str], Officer]) -> tuple[Hub, Officer, Officer]:  # noqa: F811
    """SPD's officer Adams and CSO's officer Cruz, enrolled; SPD shares resources, reservations and
    contacts with CSO (CSO may write a resource's status); CSO shares its own with SPD."""
    hub_process.admin(
        "agreement", "add", "--from", "SPD", "--to", "CSO",
        "--collections", "resources,reservations,contacts", "--write", "status",
    )  # fmt: skip
    hub_process.admin("agreement", "add", "--from", "CSO", "--to", "SPD", "--collections", "resources,contacts")
    return hub_process, officer("SPD", "adams"), officer("CSO", "cruz")


@pytest.fixture
def adams(officer: Callable[[str, str], Officer]) -> Officer:  # noqa: F811
    """SPD's officer Adams alone, enrolled with this test's hub."""
    return officer("SPD", "adams")
