"""Take the screenshots in docs/officers-ui.md from real pages over seeded data.

    .venv/bin/python -m tests.field_client.ui.docs_screenshots [docs/img]

Everything is real and on loopback: a fresh hub (``fieldsync-hub``) in a
temporary folder, three officers of two agencies enrolled with ``fieldsync``,
a day of edits through the CLI (with a conflict, a double booking and a
refused write; command staff settle one conflict in the hub's web view), then
Adams's ``fieldsync ui`` with the hub stopped, driven by Chromium. Nothing is
left running.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tests.conftest import CHROMIUM
from tests.e2e.conftest import AGENCIES, ENROLLED, FIELDSYNC_HUB, Hub, Officer, free_port, run_cli
from tests.web.conftest import go, login

from .conftest import Ui

STAFF = ("Lt. Dana Lee", "docs screenshots staff password")
DAY = (datetime.now(UTC) + timedelta(days=1)).replace(hour=14, minute=0, second=0, microsecond=0)


def at(hours: float) -> str:
    return (DAY + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def enroll(hub: Hub, agency: str, name: str, base: Path) -> Officer:
    token = hub.admin("device", "token", agency, "--officer", name).stdout.strip()
    person = Officer(name, agency, base / f"home-{name}")
    found = ENROLLED.search(person.run("enroll", "--hub", hub.url, "--token", token).stdout)
    assert found, "enrollment failed"
    return person


def staff_resolves(hub: Hub, browser: Any, resource: str, keep: str) -> None:
    """A staff member logs in to the hub's web view and keeps ``keep`` in the conflict on ``resource``."""
    run_cli(
        [FIELDSYNC_HUB, "user", "add", STAFF[0], "--role", "staff"], {**hub.env, "FIELDSYNC_USER_PASSWORD": STAFF[1]}
    )
    context = browser.new_context(base_url=hub.url)
    try:
        page = context.new_page()
        login(page, STAFF, next_path="/conflicts")
        go(page.locator("section.conflict").filter(has_text=resource).get_by_role("button", name=f"Keep “{keep}”"))
        page.get_by_text("Resolved.").wait_for()
    finally:
        context.close()


def seed(hub: Hub, base: Path, browser: Any) -> dict[str, Officer]:
    hub.admin("agreement", "add", "--from", "SPD", "--to", "CSO", "--collections",
              "resources,reservations,contacts", "--write", "status")  # fmt: skip
    hub.admin("agreement", "add", "--from", "CSO", "--to", "SPD", "--collections", "resources,reservations,contacts")
    adams, baker, cruz = (enroll(hub, a, n, base) for a, n in (("SPD", "Ofc. Adams"), ("SPD", "Sgt. Baker"),
                                                                ("CSO", "Dep. Cruz")))  # fmt: skip
    ortiz = adams.add("contact", name="Lt. Maria Ortiz", role="liaison", agency_unit="Patrol Division",
                      phone="+1 217 555 0142", radio="TAC-2", jurisdiction="Springfield")  # fmt: skip
    howell = adams.add("contact", name="Sgt. Ben Howell", role="point_of_contact", agency_unit="Fleet",
                       phone="+1 217 555 0177", email="b.howell@spd.example", jurisdiction="Springfield")  # fmt: skip
    cruz.add("contact", name="Capt. Dana Reyes", role="commander", agency_unit="Field Operations",
             phone="+1 217 555 0300", radio="SO-1", jurisdiction="Sangamon County")  # fmt: skip
    ortega = cruz.add("contact", name="Dep. Luis Ortega", role="liaison", agency_unit="Marine Unit",
                      phone="+1 217 555 0321", radio="MARINE-3", jurisdiction="Sangamon County")  # fmt: skip
    unit12 = adams.add("resource", kind="vehicle", name="Unit 12", quantity=1, point_of_contact=howell,
                       location={"text": "HQ motor pool, bay 3"}, notes="Keys at the front desk")  # fmt: skip
    unit14 = adams.add("resource", kind="vehicle", name="Unit 14", status="deployed", point_of_contact=howell)
    adams.add("resource", kind="equipment", name="Generator 3", status="maintenance", notes="Fuel filter on order")
    adams.add("resource", kind="personnel", name="K-9 team Rex", point_of_contact=ortiz)
    adams.add("resource", kind="facility", name="Mobile command post", status="out_of_service")
    boat = cruz.add("resource", kind="vehicle", name="Boat 2", point_of_contact=ortega,
                    location={"text": "Lake Springfield dock"})  # fmt: skip
    cruz.add("resource", kind="equipment", name="Drone 1", status="deployed")
    for person in (adams, cruz, baker, adams):
        person.sync()
    # Offline, a day's worth: the same status set twice, one vehicle booked twice, a write the agreement refuses.
    adams.update("resource", unit14, status="available")
    cruz.update("resource", unit14, status="maintenance")
    adams.add("reservation", resource_id=unit12, starts_at=at(0), ends_at=at(4), purpose="Warrant service, 4 officers")
    baker.add("reservation", resource_id=unit12, starts_at=at(2), ends_at=at(6), purpose="Court transport")
    adams.add("reservation", resource_id=boat, starts_at=at(20), ends_at=at(26), purpose="Search along the north shore")
    adams.update("resource", boat, name="Boat 2 (SPD crew)")
    for person in (adams, baker, cruz, adams):
        person.sync()
    staff_resolves(hub, browser, "Unit 14", "available")  # Adams's value, chosen at the hub
    adams.sync()
    return {"adams": adams, "baker": baker, "cruz": cruz}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fieldsync-shots-") as tmp:
        base = Path(tmp)
        hub = Hub(base / "instance", free_port())
        hub.admin("init")
        for code, name in AGENCIES.items():
            hub.admin("agency", "create", code, "--name", name)
        hub.start()
        ui = None
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
                people = seed(hub, base, browser)
                hub.stop()  # back in the car: no link
                adams = people["adams"]
                ui = Ui(adams)
                page = browser.new_page(viewport={"width": 1100, "height": 860})
                page.goto(ui.url)
                page.get_by_role("link", name="Generator 3").click()
                page.get_by_role("button", name="available").click()
                page.get_by_role("button", name="Sync now").click()
                page.get_by_text("No link to the hub right now").wait_for()
                page.get_by_role("link", name="Resources", exact=True).click()
                page.screenshot(path=str(out / "ui-resources.png"))
                page.get_by_role("link", name="Unit 12").click()
                page.screenshot(path=str(out / "ui-resource.png"), full_page=True)
                page.get_by_role("link", name="Contacts").click()
                page.screenshot(path=str(out / "ui-contacts.png"))
                page.get_by_role("link", name="+ Add contact").click()
                page.get_by_label("Name").fill("Dep. Kim Park")
                page.get_by_label("Role").select_option("liaison")
                page.get_by_label("Phone").fill("call dispatch")
                page.get_by_role("button", name="Add contact").click()
                page.get_by_test_id("error-phone").wait_for()
                page.screenshot(path=str(out / "ui-form-error.png"))
                page.get_by_role("link", name="Conflicts").click()
                page.screenshot(path=str(out / "ui-conflicts.png"), full_page=True)
                page.get_by_role("link", name="see why").click()
                page.screenshot(path=str(out / "ui-refusals.png"))
                browser.close()
        finally:
            if ui is not None:
                ui.stop()
            hub.stop()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
