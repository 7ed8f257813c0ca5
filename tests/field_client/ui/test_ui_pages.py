"""The ui's pages in Chromium: forms judged like the CLI, nothing written on error, escaping,
filters, the phone-book, refusals and conflicts shown with what the hub decided."""

from __future__ import annotations

import json
import uuid
from typing import Any

from playwright.sync_api import expect

from .conftest import pending, shot
from .test_ui_sync import sync_now

XSS = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


def opened(ui: Any, context: Any) -> Any:
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    page.goto(ui.url)
    return page


def test_a_name_with_script_is_shown_as_text(adams: Any, ui_of: Any, context: Any) -> None:
    rid = adams.add("resource", kind="vehicle", name=XSS, notes=XSS)
    adams.add("contact", name=XSS, role="liaison", jurisdiction=XSS)
    page = opened(ui_of(adams), context)
    expect(page.get_by_test_id("resources").get_by_test_id("name")).to_have_text(XSS)
    page.goto(page.url.split("/resources")[0] + f"/resources/{rid}")
    expect(page.get_by_test_id("record-name")).to_have_text(XSS)
    expect(page.get_by_text(XSS).first).to_be_visible()
    page.get_by_role("link", name="Contacts").click()
    expect(page.get_by_test_id("contacts").get_by_test_id("name")).to_have_text(XSS)
    assert page.locator("script").count() == 0 and page.locator("main img").count() == 0
    assert page.dialogs == []
    assert "&lt;script&gt;" in page.content()


def test_validation_errors_beside_the_field_and_nothing_written(adams: Any, ui_of: Any, context: Any) -> None:
    page = opened(ui_of(adams), context)
    page.get_by_role("link", name="+ Add resource").click()
    page.get_by_label("Name").fill("Generator 3")
    page.get_by_label("Kind").select_option("equipment")
    page.get_by_label("Quantity").fill("lots")
    page.get_by_label("Latitude").fill("39.78")  # without a longitude
    page.get_by_role("button", name="Add resource").click()
    expect(page.get_by_test_id("error-quantity")).to_have_text("'lots' is not a whole number.")
    expect(page.get_by_test_id("form-errors")).to_contain_text("nothing was written")
    expect(page.get_by_label("Name")).to_have_value("Generator 3")  # what was typed stays
    assert pending(page) == 0
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add resource").click()
    expect(page.get_by_test_id("error-location.lat")).to_contain_text("Give both lat and lon")
    assert pending(page) == 0
    shot(page, "form-error")
    assert adams.status()["pending"] == 0 and adams.list("resource") == []

    page.get_by_role("link", name="Contacts").click()
    page.get_by_role("link", name="+ Add contact").click()
    page.get_by_label("Name").fill("Lt. Maria Ortiz")
    page.get_by_label("Role").select_option("liaison")
    page.get_by_label("Phone").fill("call me maybe")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_role("button", name="Add contact").click()
    expect(page.get_by_test_id("error-phone")).to_contain_text("Not a phone number.")
    expect(page.get_by_test_id("error-email")).to_contain_text("Not a valid email address.")
    assert adams.status()["pending"] == 0 and adams.list("contact") == []
    # the CLI says the same of the same values
    out = adams.run("contact", "add", "--name", "X", "--role", "liaison", "--phone", "call me maybe", check=False)
    assert out.returncode != 0 and "Not a phone number." in out.stderr

    page.get_by_label("Phone").fill("+1 217 555 0142")
    page.get_by_label("Email").fill("m.ortiz@spd.example")
    page.get_by_role("button", name="Add contact").click()
    expect(page.get_by_test_id("record-name")).to_have_text("Lt. Maria Ortiz")
    assert pending(page) == 1


def test_booking_that_ends_before_it_starts_is_refused(adams: Any, ui_of: Any, context: Any) -> None:
    adams.add("resource", kind="vehicle", name="Unit 12")
    page = opened(ui_of(adams), context)
    page.get_by_test_id("resources").get_by_role("link").first.click()
    page.get_by_role("link", name="Book this").click()
    page.get_by_label("Starts").fill("2026-12-02T12:00")
    page.get_by_label("Ends").fill("2026-12-02T08:00")
    page.get_by_role("button", name="Book").click()
    expect(page.get_by_test_id("error-ends_at")).to_contain_text("Must be after starts_at.")
    assert adams.status()["pending"] == 1 and adams.list("reservation") == []


def test_an_edit_writes_only_the_fields_changed(adams: Any, ui_of: Any, context: Any) -> None:
    elsewhere = str(uuid.uuid4())  # a point of contact this laptop does not hold: an edit must keep it
    adams.add("resource", kind="vehicle", name="Unit 12", quantity=1, notes="keys at desk", point_of_contact=elsewhere)
    page = opened(ui_of(adams), context)
    page.get_by_test_id("resources").get_by_role("link").first.click()
    page.get_by_role("link", name="Edit resource").click()
    expect(page.get_by_label("Notes")).to_have_value("keys at desk")
    page.get_by_label("Notes").fill("")
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status").filter(has_text="Changes saved")).to_contain_text("notes, quantity")
    page.get_by_role("button", name="deployed").click()
    expect(page.get_by_test_id("record-name").locator("xpath=..").get_by_test_id("status")).to_have_text("DEPLOYED")
    page.get_by_role("link", name="Edit resource").click()
    page.get_by_role("button", name="Save changes").click()  # nothing changed: nothing written
    expect(page.get_by_text("Nothing changed.")).to_be_visible()
    rows = adams.replica_rows("SELECT wire FROM outbox ORDER BY seq")
    written = [sorted(json.loads(r["wire"])["fields"]) for r in rows]
    assert written[1:] == [["notes", "quantity"], ["status"]]
    (record,) = adams.list("resource")
    assert record["quantity"] == 2 and record["notes"] is None and record["status"] == "deployed"
    assert record["point_of_contact"] == elsewhere


def test_filters_and_the_phone_book(two_agencies: Any, ui_of: Any, context: Any) -> None:
    _, adams, cruz = two_agencies
    adams.add("resource", kind="vehicle", name="Unit 12", status="deployed")
    adams.add("resource", kind="equipment", name="Light tower 7", notes="needs diesel")
    cruz.add("resource", kind="vehicle", name="Boat 2", location={"text": "Lake dock"})
    adams.add("contact", name="Lt. Maria Ortiz", role="liaison", jurisdiction="Springfield", phone="+1 217 555 0142")
    cruz.add("contact", name="Sgt. Dan Okafor", role="commander", jurisdiction="Sangamon County", radio="TAC-2")
    for person in (cruz, adams):
        person.sync()
    page = opened(ui_of(adams), context)
    names = page.get_by_test_id("resources").get_by_test_id("name")
    expect(names).to_have_count(3)
    page.get_by_label("Kind").select_option("vehicle")
    page.get_by_role("button", name="Filter").click()
    expect(names).to_have_text(["Unit 12", "Boat 2"])  # own agency first
    page.get_by_label("Agency").select_option("CSO")
    page.get_by_role("button", name="Filter").click()
    expect(names).to_have_text(["Boat 2"])
    expect(page.get_by_test_id("resources").get_by_test_id("agency")).to_have_text(["CSO"])
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Status").select_option("deployed")
    page.get_by_role("button", name="Filter").click()
    expect(names).to_have_text(["Unit 12"])
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Search").fill("DIESEL")
    page.get_by_role("button", name="Filter").click()
    expect(names).to_have_text(["Light tower 7"])
    page.get_by_label("Search").fill("lake")
    page.get_by_role("button", name="Filter").click()
    expect(names).to_have_text(["Boat 2"])

    page.get_by_role("link", name="Contacts").click()
    people = page.get_by_test_id("contacts").get_by_test_id("name")
    expect(people).to_have_text(["Lt. Maria Ortiz", "Sgt. Dan Okafor"])
    for field, value, who in (
        ("Jurisdiction", "Sangamon County", "Sgt. Dan Okafor"),
        ("Role", "liaison", "Lt. Maria Ortiz"),
        ("Agency", "CSO", "Sgt. Dan Okafor"),
    ):
        if page.get_by_role("link", name="Clear").count():
            page.get_by_role("link", name="Clear").click()
        page.get_by_label(field).select_option(value)
        page.get_by_role("button", name="Search").click()
        expect(people).to_have_text([who])
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Search").fill("okafor")
    page.get_by_role("button", name="Search").click()
    expect(people).to_have_text(["Sgt. Dan Okafor"])
    page.get_by_label("Search").fill("tac-2")
    page.get_by_role("button", name="Search").click()
    expect(people).to_have_text(["Sgt. Dan Okafor"])
    page.get_by_role("link", name="Clear").click()
    expect(page.get_by_role("link", name="+1 217 555 0142")).to_have_attribute("href", "tel:+12175550142")


def test_refusals_and_conflicts_with_what_the_hub_decided(two_agencies: Any, ui_of: Any, context: Any) -> None:
    hub, adams, cruz = two_agencies
    unit = adams.add("resource", kind="vehicle", name="Unit 12")
    adams.sync()
    cruz.sync()
    # Offline, both set the status; Cruz also renames SPD's vehicle, which the agreement does not allow.
    adams.update("resource", unit, status="maintenance")
    cruz.update("resource", unit, status="deployed")
    cruz.update("resource", unit, name="Borrowed 12")
    adams.sync()
    page = opened(ui_of(cruz), context)
    assert pending(page) == 2
    sync_now(page)
    refusals = page.get_by_test_id("refusals")
    expect(refusals).to_contain_text("the hub refused 1 change of yours")
    expect(refusals).to_contain_text("does not let CSO write name")
    expect(page.get_by_test_id("pending")).to_have_text("0")
    page.get_by_role("link", name="All refusals and why").click()
    expect(page.get_by_test_id("refused-list")).to_contain_text("name")
    shot(page, "refusals")
    page.get_by_role("link", name="Conflicts").click()
    conflicts = page.get_by_test_id("conflicts")
    expect(conflicts).to_contain_text("Unit 12 — status")
    expect(conflicts).to_contain_text("Yours: deployed")
    expect(conflicts.get_by_test_id("decision")).to_contain_text("Your value was kept")
    expect(page.get_by_test_id("concerns")).to_have_text("1")
    shot(page, "conflicts")
    hub_conflicts = hub.conflicts()
    assert [c["field"] for c in hub_conflicts] == ["status"] and hub_conflicts[0]["winner"]["value"] == "deployed"


def test_delete_asks_first_and_only_own_records(two_agencies: Any, ui_of: Any, context: Any) -> None:
    _, adams, cruz = two_agencies
    adams.add("contact", name="Old liaison", role="liaison")
    boat = cruz.add("resource", kind="vehicle", name="Boat 2")
    cruz.sync()
    adams.sync()
    page = opened(ui_of(adams), context)
    page.get_by_role("link", name="Contacts").click()
    page.get_by_role("link", name="Old liaison").click()
    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading", name="Delete contact Old liaison?")).to_be_visible()
    assert adams.list("contact") != []  # the confirmation page changed nothing
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Deleted Old liaison")).to_be_visible()
    expect(page.get_by_test_id("contacts").get_by_test_id("name")).to_have_count(0)
    assert adams.list("contact") == [] and pending(page) == 1

    page.get_by_role("link", name="Resources", exact=True).click()
    page.get_by_role("link", name="Boat 2").click()
    expect(page.get_by_role("link", name="Delete…")).to_have_count(0)  # CSO's boat: no delete offered
    page.goto(page.url.rsplit("/resources/", 1)[0] + f"/records/{boat}/delete")
    expect(page.get_by_text("Only CSO may delete its records")).to_be_visible()
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Not deleted: only CSO may delete its records")).to_be_visible()
    assert [r["name"] for r in adams.list("resource")] == ["Boat 2"] and pending(page) == 1


def test_a_partner_request_approved_over_a_booking_shows_as_a_double_booking(
    two_agencies: Any, ui_of: Any, context: Any
) -> None:
    hub, adams, cruz = two_agencies
    unit = adams.add("resource", kind="vehicle", name="Unit 12")
    adams.add("reservation", resource_id=unit, starts_at="2026-12-02T08:00:00Z", ends_at="2026-12-02T12:00:00Z",
              purpose="Warrant service")  # fmt: skip
    adams.sync()
    cruz.sync()
    request = cruz.add_record("reservation", resource_id=unit, starts_at="2026-12-02T10:00:00Z",
                              ends_at="2026-12-02T14:00:00Z", purpose="Prisoner transport")  # fmt: skip
    assert request["state"] == "requested"  # a partner's vehicle: a request until SPD decides
    cruz.sync()
    page = opened(ui_of(adams), context)
    sync_now(page)
    page.get_by_role("link", name="Unit 12").click()
    bookings = page.get_by_test_id("bookings")
    expect(bookings.get_by_role("listitem").filter(has_text="Prisoner transport")).to_contain_text("REQUESTED")
    bookings.get_by_role("listitem").filter(has_text="Prisoner transport").get_by_role("button", name="Approve").click()
    expect(page.get_by_text("Booking is now approved")).to_be_visible()
    expect(page.get_by_test_id("concerns")).to_have_text("1")
    page.get_by_role("link", name="Conflicts").click()
    doubles = page.get_by_test_id("double-bookings")
    expect(doubles).to_contain_text("Unit 12")
    expect(doubles).to_contain_text("Warrant service")
    expect(doubles).to_contain_text("Prisoner transport")
    expect(doubles.get_by_test_id("decision")).to_contain_text("Both still approved: SPD decides")
    # SPD declines the request after all: settled, and the hub agrees after the sync
    page.get_by_role("link", name="Unit 12").click()
    theirs = page.get_by_test_id("bookings").get_by_role("listitem").filter(has_text="Prisoner transport")
    expect(theirs.get_by_role("button", name="Cancel booking")).to_have_count(0)  # CSO's request: SPD only decides
    theirs.get_by_role("link", name="Edit").click()
    page.get_by_label("State").select_option("declined")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Changes saved on this laptop (state)")).to_be_visible()
    page.get_by_role("link", name="Conflicts").click()
    expect(page.get_by_test_id("double-bookings").get_by_test_id("decision")).to_contain_text("Settled")
    sync_now(page)
    expect(page.get_by_test_id("pending")).to_have_text("0")
    states = {r["values"]["purpose"]: r["values"]["state"] for r in hub.records() if r["collection"] == "reservations"}
    assert states == {"Warrant service": "approved", "Prisoner transport": "declined"}


def test_edit_a_contact_and_a_booking(adams: Any, ui_of: Any, context: Any) -> None:
    unit = adams.add("resource", kind="vehicle", name="Unit 12")
    adams.add("reservation", resource_id=unit, starts_at="2026-12-02T08:00:30Z", ends_at="2026-12-02T12:00:00Z")
    adams.add("contact", name="Lt. Maria Ortiz", role="liaison", phone="555-0100")
    page = opened(ui_of(adams), context)
    page.get_by_role("link", name="Contacts").click()
    page.get_by_role("link", name="Lt. Maria Ortiz").click()
    page.get_by_role("link", name="Edit contact").click()
    page.get_by_label("Phone").fill("+1 217 555 0142")
    page.get_by_label("Radio").fill("TAC-2")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("link", name="Call +1 217 555 0142")).to_be_visible()
    page.get_by_role("link", name="Resources", exact=True).click()
    page.get_by_role("link", name="Unit 12").click()
    page.get_by_test_id("bookings").get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Starts")).not_to_have_value("")
    page.get_by_label("Ends").fill("2026-12-02T07:00")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_test_id("error-ends_at")).to_contain_text("Must be after starts_at.")
    page.get_by_label("Ends").fill("2026-12-02T23:00")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Changes saved on this laptop (ends_at)")).to_be_visible()
    (contact,) = adams.list("contact")
    (booking,) = adams.list("reservation")
    assert contact["phone"] == "+1 217 555 0142" and contact["radio"] == "TAC-2"
    assert booking["starts_at"] == "2026-12-02T08:00:30Z" and booking["ends_at"].endswith("Z")  # not touched
    assert pending(page) == 5


def test_a_resource_page_flags_overlapping_approved_bookings(adams: Any, ui_of: Any, context: Any) -> None:
    unit = adams.add("resource", kind="vehicle", name="Unit 12")
    for starts, ends, purpose in (
        ("2026-12-02T08:00:00Z", "2026-12-02T12:00:00Z", "Warrant service"),
        ("2026-12-02T10:00:00Z", "2026-12-02T14:00:00Z", "Court transport"),  # overlaps 10:00-12:00
        ("2026-12-02T14:00:00Z", "2026-12-02T16:00:00Z", "Training run"),  # touches the end: no overlap
        ("2026-12-03T08:00:00Z", "2026-12-03T09:00:00Z", "Next day"),
    ):
        assert adams.add_record("reservation", resource_id=unit, starts_at=starts, ends_at=ends,
                                purpose=purpose)["state"] == "approved"  # fmt: skip
    page = opened(ui_of(adams), context)
    page.get_by_role("link", name="Unit 12").click()
    cards = page.get_by_test_id("bookings").get_by_role("listitem")
    expect(page.get_by_test_id("double-booking-note")).to_contain_text("two approved bookings of this resource overlap")
    warrant, court, training, next_day = (cards.nth(i) for i in range(4))  # by start time
    expect(warrant.get_by_test_id("agency").locator("xpath=..")).to_contain_text("Warrant service")
    expect(court.get_by_test_id("agency").locator("xpath=..")).to_contain_text("Court transport")
    expect(warrant.get_by_test_id("double-booking")).to_contain_text("DOUBLE BOOKING: both approved for ")
    expect(warrant.get_by_test_id("double-booking")).to_contain_text("with SPD's booking from ")
    assert warrant.get_by_test_id("double-booking").inner_text() != court.get_by_test_id("double-booking").inner_text()
    for quiet in (training, next_day):
        expect(quiet.get_by_test_id("double-booking")).to_have_count(0)
    shot(page, "resource-double-booking")
    court.get_by_role("button", name="Cancel booking").click()  # settled here: no longer flagged
    expect(page.get_by_text("Booking is now cancelled")).to_be_visible()
    expect(page.get_by_test_id("double-booking")).to_have_count(0)
    expect(page.get_by_test_id("double-booking-note")).to_have_count(0)
