"""The officer's day in ``fieldsync ui``: work with no hub, sync when it is back, a partner sees it.

Everything is real: the hub is its own ``fieldsync-hub serve`` process on
loopback (stopped while the officer works), each officer's ui is its own
``fieldsync ui`` process over an encrypted replica, and Chromium clicks.
"""

from __future__ import annotations

import re
import stat
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from playwright.sync_api import expect

from tests.e2e.conftest import FIELDSYNC, run_cli

from .conftest import pending, shot

SLOW_SYNC = 30_000  # ms: a sync runs in the ui's background thread; the page refreshes itself


def add_vehicle(page: Any, name: str) -> None:
    page.get_by_role("link", name="Resources", exact=True).click()
    page.get_by_role("link", name="+ Add resource").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Kind").select_option("vehicle")
    page.get_by_label("Quantity").fill("1")
    page.get_by_label("Location", exact=True).fill("HQ motor pool, bay 3")
    page.get_by_role("button", name="Add resource").click()
    expect(page.get_by_test_id("record-name")).to_have_text(name)


def book_it(page: Any, starts: str, ends: str, purpose: str) -> None:
    page.get_by_role("link", name="Book this").click()
    page.get_by_label("Starts").fill(starts)
    page.get_by_label("Ends").fill(ends)
    page.get_by_label("Purpose").fill(purpose)
    page.get_by_role("button", name="Book").click()


def sync_now(page: Any) -> None:
    page.get_by_role("button", name="Sync now").click()
    expect(page.get_by_role("button", name="Sync now")).to_be_enabled(timeout=SLOW_SYNC)


def test_offline_vehicle_and_booking_reach_the_hub_and_a_partner(
    two_agencies: Any, ui_of: Any, context: Any, browser: Any
) -> None:
    hub, adams, cruz = two_agencies
    hub.stop()  # the patrol car has no link

    ui = ui_of(adams)
    assert ui.url.startswith(f"http://127.0.0.1:{ui.port}/?key=")
    page = context.new_page()
    page.goto(ui.url)
    assert "key=" not in page.url  # the secret was exchanged for a cookie and left the address bar
    assert pending(page) == 0

    add_vehicle(page, "Unit 12")
    expect(page.get_by_test_id("unsynced")).to_be_visible()
    assert pending(page) == 1
    book_it(page, "2026-12-02T08:00", "2026-12-02T12:00", "Warrant service, 4 officers")
    bookings = page.get_by_test_id("bookings")
    expect(bookings).to_contain_text("APPROVED")  # its own agency's vehicle: approved at once
    expect(bookings).to_contain_text("Warrant service")
    assert pending(page) == 2
    shot(page, "resource-offline")

    sync_now(page)  # no hub: a calm message, the edits stay queued
    expect(page.get_by_test_id("sync-message")).to_contain_text("No link to the hub right now")
    expect(page.get_by_test_id("sync-message")).to_contain_text("Your 2 changes are kept on this laptop")
    assert pending(page) == 2
    shot(page, "sync-unreachable")
    assert not hub.records(), "nothing can have reached a stopped hub"

    hub.start()  # the link is back
    sync_now(page)
    expect(page.get_by_test_id("sync-message")).to_contain_text("Synced")
    expect(page.get_by_test_id("pending")).to_have_text("0")
    expect(page.get_by_test_id("last-sync")).to_contain_text("just now")
    expect(page.get_by_test_id("unsynced")).to_have_count(0)
    shot(page, "resource-synced")
    at_hub = {row["collection"]: row for row in hub.records()}
    assert at_hub["resources"]["values"]["name"] == "Unit 12"
    assert at_hub["reservations"]["values"]["purpose"] == "Warrant service, 4 officers"
    assert at_hub["reservations"]["values"]["state"] == "approved"
    assert at_hub["reservations"]["values"]["starts_at"].endswith("Z")

    # A CSO officer on another laptop, with their own ui, sees SPD's vehicle and its booking.
    other = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        theirs = other.new_page()
        theirs.goto(ui_of(cruz).url)
        expect(theirs.get_by_test_id("resources")).not_to_contain_text("Unit 12")
        sync_now(theirs)
        expect(theirs.get_by_test_id("sync-message")).to_contain_text("Synced")
        card = theirs.get_by_test_id("resources").get_by_role("listitem").filter(has_text="Unit 12")
        expect(card.get_by_test_id("agency")).to_have_text("SPD")
        expect(card.get_by_test_id("status")).to_have_text("AVAILABLE")
        shot(theirs, "partner-resources")
        card.get_by_role("link").click()
        expect(theirs.get_by_test_id("bookings")).to_contain_text("Warrant service")
        expect(theirs.get_by_text("SPD owns this resource")).to_be_visible()
    finally:
        other.close()


def test_it_syncs_by_itself_and_keeps_trying_while_there_is_no_link(
    hub_process: Any, adams: Any, ui_of: Any, context: Any
) -> None:
    hub = hub_process
    hub.stop()
    adams.add("resource", kind="vehicle", name="Unit 7")
    ui = ui_of(adams, "--sync-every", "2")
    page = context.new_page()
    page.goto(ui.url)
    # the first try at start finds no hub: said calmly, the change stays queued, nobody pressed anything
    expect(page.get_by_test_id("sync-message")).to_contain_text("No link to the hub right now", timeout=SLOW_SYNC)
    expect(page.get_by_test_id("sync-message")).to_contain_text("tries again by itself")
    assert pending(page) == 1
    hub.start()
    deadline_ms = 60_000  # backoff after failures: 2.5-5 s, then 5-10 s (jittered)
    for _ in range(deadline_ms // 1000):
        page.reload()
        if pending(page) == 0:
            break
        page.wait_for_timeout(1000)
    assert pending(page) == 0
    assert [row["values"]["name"] for row in hub.records()] == ["Unit 7"]


def test_a_failed_try_is_shown_apart_from_the_last_successful_sync(
    hub_process: Any, adams: Any, ui_of: Any, context: Any
) -> None:
    hub = hub_process
    hub.stop()
    page = context.new_page()
    page.goto(ui_of(adams).url)
    expect(page.get_by_test_id("last-try")).to_have_count(0)  # nothing tried yet: nothing to say
    sync_now(page)
    expect(page.get_by_test_id("sync-message")).to_contain_text("No link to the hub right now")
    expect(page.get_by_test_id("last-sync")).to_have_text("never")  # never synced: not "just now"
    expect(page.get_by_test_id("last-try")).to_contain_text("Last try: just now")
    expect(page.get_by_test_id("last-try")).to_contain_text(", no link")

    hub.start()
    sync_now(page)
    expect(page.get_by_test_id("sync-message")).to_contain_text("Synced")
    expect(page.get_by_test_id("last-sync")).to_contain_text("just now")
    expect(page.get_by_test_id("last-try")).to_have_count(0)  # the try was the sync

    hub.stop()
    sync_now(page)
    bar = page.get_by_test_id("syncbar")
    expect(page.get_by_test_id("sync-message")).to_contain_text("No link to the hub right now")
    expect(page.get_by_test_id("last-try")).to_contain_text(", no link")
    expect(page.get_by_test_id("last-sync")).to_contain_text("under a minute ago")
    assert bar.inner_text().count("just now") == 1  # only the try is "just now"; the success is not
    shot(page, "sync-failed-try")


def test_ui_refuses_to_start_without_a_replica_or_with_a_wrong_passphrase(adams: Any, tmp_path: Any) -> None:
    out = run_cli([FIELDSYNC, "--home", tmp_path / "nowhere", "ui", "--no-browser"], adams.env, check=False)
    assert out.returncode != 0 and "run `fieldsync enroll` first" in out.stderr
    env = {**adams.env, "FIELDSYNC_PASSPHRASE": "wrong passphrase!"}
    out = run_cli([FIELDSYNC, "--home", adams.home, "ui", "--no-browser"], env, check=False)
    assert out.returncode != 0 and "wrong passphrase" in out.stderr and "Traceback" not in out.stderr


def test_without_no_browser_it_opens_a_private_redirect_file_not_the_keyed_address(
    adams: Any, ui_of: Any, tmp_path: Any, browser: Any
) -> None:
    opened = tmp_path / "opened.txt"
    fake = tmp_path / "record-url"  # a "browser" that only writes down its arguments (what `ps` would show)
    fake.write_text(f'#!/bin/sh\nprintf "%s" "$*" > "{opened}"\n')
    fake.chmod(0o755)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    ui = ui_of(adams, env={**adams.env, "BROWSER": str(fake), "XDG_RUNTIME_DIR": str(runtime)}, browser=True)
    for _ in range(100):
        if opened.exists() and opened.read_text():
            break
        time.sleep(0.1)
    argument = opened.read_text()
    assert argument.startswith("file://") and "key" not in argument and ui.key not in argument
    launcher = Path(unquote(urlsplit(argument).path))
    assert launcher.parent.parent == runtime  # in $XDG_RUNTIME_DIR, in a folder of its own
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o600
    assert stat.S_IMODE(launcher.parent.stat().st_mode) == 0o700
    assert ui.key not in launcher.read_text()  # a one-time key, not the run's
    assert f"fieldsync ui is running at {ui.url}" in ui.printed  # the terminal still shows the address

    # the file, opened by a real browser, lands on the ui (the keyed address is in no argument)
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(argument)
        expect(page.get_by_test_id("syncbar")).to_be_visible()
        assert page.url.startswith(ui.base) and "key=" not in page.url
        one_time = re.search(r"key=([A-Za-z0-9_-]+)", launcher.read_text())
        assert one_time
        page.goto(f"{ui.base}/?key={one_time[1]}")  # its history entry, in this browser: just the page
        expect(page.get_by_test_id("syncbar")).to_be_visible()
    finally:
        ctx.close()
    used = requests.get(f"{ui.base}/?key={one_time[1]}", allow_redirects=False, timeout=10)
    assert used.status_code == 403  # burned: another browser (or user) cannot reuse it
    assert requests.get(ui.url, allow_redirects=False, timeout=10).status_code == 303  # the printed key still works
    assert ui.stop() == 0
    assert not launcher.exists() and not launcher.parent.exists()  # removed when the ui stops
