"""The admin pages in a real browser: key rotation, device revocation (then the device's push is
refused), agreements with errors beside the fields, users (removal ends their sessions at once),
403 for staff, and no state change without the CSRF token."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from backend.db import db
from backend.models import Agency, AgencyKey, Agreement, AuditEntry, Device, RegistryEntry, User, WebSession
from tests.backend.helpers import raw

from .conftest import ADMIN, STAFF, login
from .seed import Seeded

ADMIN_PAGES = ("/admin/", "/admin/agencies", "/admin/devices", "/admin/agreements", "/admin/users")


def count(app: Flask, model: Any, *where: Any) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def audited(app: Flask, action: str) -> list[AuditEntry]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def csrf_token(page: Any) -> str:
    return str(page.locator("input[name=csrf_token]").first.get_attribute("value"))


def test_staff_get_403_on_every_admin_page_and_no_admin_link(seeded: Seeded, web_app: Flask, page: Any) -> None:
    login(page, STAFF)
    assert page.get_by_role("link", name="Admin").count() == 0
    spd = seeded.officers["lee"].device_id
    for path in (*ADMIN_PAGES, "/admin/agencies/SPD/rotate", f"/admin/devices/{spd}/revoke", "/admin/users/1/remove"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        assert "admin accounts only" in page.content()
    token = csrf_token(page)  # a valid token does not help a staff account
    for path, form in (
        ("/admin/agencies/SPD/rotate", {}),
        (f"/admin/devices/{spd}/revoke", {"reason": "x"}),
        ("/admin/users", {"name": "x", "role": "admin", "password": "p" * 14, "confirm": "p" * 14}),
    ):
        assert page.request.post(path, form={**form, "csrf_token": token}).status == 403, path
    assert count(web_app, AgencyKey) == 3 and count(web_app, Device, Device.status == "revoked") == 0
    assert count(web_app, User) == 2
    assert len(audited(web_app, "access.denied")) == len(ADMIN_PAGES) + 6


def test_admin_forms_refuse_a_post_without_the_csrf_token(seeded: Seeded, web_app: Flask, page: Any) -> None:
    login(page, ADMIN, next_path="/admin/")
    spd = seeded.officers["lee"].device_id
    for path, form in (
        ("/admin/agencies", {"code": "XYZ", "name": "Nope"}),
        ("/admin/agencies/SPD/rotate", {}),
        (f"/admin/devices/{spd}/revoke", {"reason": "x"}),
        ("/admin/agreements", {"from_agency": "SHP", "to_agency": "CSO", "collections": "resources"}),
        ("/admin/users", {"name": "x", "role": "admin", "password": "p" * 14, "confirm": "p" * 14}),
        ("/admin/devices/token", {"agency": "SPD", "officer": "x"}),
    ):
        assert page.request.post(path, form=form).status == 400, path
        assert page.request.post(path, form={**form, "csrf_token": "forged"}).status == 400, path
    assert count(web_app, Agency, Agency.code == "XYZ") == 0
    assert count(web_app, AgencyKey) == 3
    assert count(web_app, Device, Device.status == "revoked") == 0
    assert count(web_app, Agreement) == 3 and count(web_app, User) == 2


def test_revoke_a_device_in_the_browser_with_confirmation_then_its_push_is_refused(
    seeded: Seeded, web_app: Flask, live: str, page: Any, shot: Any
) -> None:
    lee = seeded.officers["lee"]
    login(page, ADMIN, next_path="/admin/devices")
    shot(page, "admin-devices")
    row = page.locator("table.data tbody tr").filter(has_text="Sgt. Dana Lee")
    row.get_by_role("link", name="Revoke…").click()
    assert page.url.endswith(f"/admin/devices/{lee.device_id}/revoke")
    assert count(web_app, Device, Device.status == "revoked") == 0  # the link only asks
    page.get_by_label("Reason").fill("Laptop lost at the fairgrounds")
    shot(page, "admin-revoke-confirm")
    page.get_by_role("button", name="Revoke this device").click()
    assert page.url.endswith("/admin/devices")
    assert page.get_by_text("revoked after its change").count() == 1
    assert "revoked" in page.locator("table.data tbody tr").filter(has_text="Sgt. Dana Lee").inner_text()

    answer = raw(live, "POST", "/api/v1/sync/push", {"changes": [lee.create()]}, officer=lee)
    assert answer.status_code == 403, answer.text
    (entry,) = audited(web_app, "device.revoke")
    assert entry.actor == f"user:{ADMIN[0]}" and entry.details["reason"] == "Laptop lost at the fairgrounds"
    with web_app.app_context():
        revocations = [r.entry for r in db.session.scalars(select(RegistryEntry)) if r.entry["type"] == "revocation"]
    assert [r["device_id"] for r in revocations] == [lee.device_id]


def test_rotate_an_agency_key_after_confirmation(seeded: Seeded, web_app: Flask, page: Any, shot: Any) -> None:
    login(page, ADMIN, next_path="/admin/agencies")
    shot(page, "admin-agencies")
    page.locator("table.data tbody tr").filter(has_text="Springfield").get_by_role("link", name="Rotate key…").click()
    shot(page, "admin-rotate-confirm")
    assert count(web_app, AgencyKey, AgencyKey.agency == "SPD") == 1
    page.get_by_role("button", name="Rotate the key of SPD").click()
    assert page.get_by_text("Key of SPD rotated").count() == 1
    assert count(web_app, AgencyKey, AgencyKey.agency == "SPD") == 2
    assert count(web_app, AgencyKey, AgencyKey.agency == "SPD", AgencyKey.retired_at.is_(None)) == 1
    assert [e.actor for e in audited(web_app, "agency.rotate_key")] == [f"user:{ADMIN[0]}"]
    # laptops keep verifying: an officer pulls the longer registry against the one it pinned
    seeded.officers["chen"].pull()


def test_create_an_agency_with_errors_beside_the_fields(web_app: Flask, live: str, page: Any) -> None:
    login(page, ADMIN, next_path="/admin/agencies")
    page.get_by_label("Code").fill("bad code")
    page.get_by_label("Name").fill("Lowercase Police")
    page.get_by_role("button", name="Create agency and key").click()
    field = page.locator(".field.has-error").filter(has=page.get_by_label("Code"))
    assert "capitals" in field.inner_text()
    assert count(web_app, Agency) == 0
    page.get_by_label("Code").fill("RPD")
    page.get_by_role("button", name="Create agency and key").click()
    assert page.get_by_text("Agency RPD created").count() == 1
    assert count(web_app, Agency) == 1 and audited(web_app, "agency.create")[0].actor == f"user:{ADMIN[0]}"


def test_add_an_agreement_errors_beside_the_fields_and_nothing_written(
    seeded: Seeded, web_app: Flask, page: Any, shot: Any
) -> None:
    login(page, ADMIN, next_path="/admin/agreements")
    page.get_by_label("From (shares its records)").select_option("SHP")
    page.get_by_label("To (may see them)").select_option("CSO")
    page.get_by_label("Withheld fields").fill("notes, badge_number")
    page.get_by_role("button", name="Add agreement").click()
    # no collection ticked: the service refuses and says so beside "Collections"
    collections = page.locator(".field.has-error").filter(has_text="Collections")
    assert collections.count() == 1 and "Choose from" in collections.inner_text()
    assert page.get_by_label("Withheld fields").input_value() == "notes, badge_number"  # the input is kept
    assert count(web_app, Agreement) == 3
    page.get_by_label("resources").check()
    page.get_by_role("button", name="Add agreement").click()
    withheld = page.locator(".field.has-error").filter(has=page.get_by_label("Withheld fields"))
    assert "badge_number" in withheld.inner_text()
    assert count(web_app, Agreement) == 3
    shot(page, "admin-agreement-errors")
    page.get_by_label("Withheld fields").fill("notes")
    page.get_by_label("Writable fields").fill("status")
    page.get_by_role("button", name="Add agreement").click()
    assert page.get_by_text("Agreement added: CSO sees SHP's resources").count() == 1
    shot(page, "admin-agreements")
    with web_app.app_context():
        row = db.session.scalar(select(Agreement).where(Agreement.from_agency == "SHP", Agreement.to_agency == "CSO"))
        assert (row.collections, row.withhold, row.write) == (["resources"], ["notes"], ["status"])
    (entry,) = audited(web_app, "agreement.add")[-1:]
    assert entry.actor == f"user:{ADMIN[0]}" and entry.object == "SHP->CSO" and entry.outcome == "ok"
    # the two refused forms are in the audit log too, with the reason the page gave
    refused = [e for e in audited(web_app, "agreement.add") if e.outcome == "refused"]
    assert [(e.actor, e.object) for e in refused] == [(f"user:{ADMIN[0]}", "SHP->CSO")] * 2
    assert "badge_number" in refused[1].details["reason"]
    # from now on a laptop of CSO receives SHP's resources, with notes withheld (the agreement is not
    # retroactive: what CSO's cursor already passed stays unseen; see the report)
    okafor, chen = seeded.officers["okafor"], seeded.officers["chen"]
    wire = okafor.create("resources", {"kind": "vehicle", "name": "Interceptor 44", "notes": "spare key: trooper 9"})
    assert okafor.push(wire)[0]["status"] == "accepted"
    chen.pull()
    seen = chen.state.records[wire["record_id"]]
    assert seen.values()["name"] == "Interceptor 44" and "notes" not in seen.values()
    assert "notes" in seen.withheld()

    # ending it: a confirmation page first, then the POST
    page.goto("/admin/agreements")
    row = page.locator("table.data tbody tr").filter(has_text="SHP").filter(has_text="CSO")
    row.get_by_role("link", name="Remove…").click()
    assert count(web_app, Agreement) == 4  # asking changes nothing
    page.get_by_role("button", name="Remove the agreement").click()
    assert page.get_by_text("Agreement from SHP to CSO removed.").count() == 1
    assert count(web_app, Agreement) == 3
    assert audited(web_app, "agreement.remove")[0].actor == f"user:{ADMIN[0]}"


def test_add_a_user_then_removing_it_ends_its_session_at_once(
    web_app: Flask, browser: Any, live: str, page: Any, shot: Any
) -> None:
    login(page, ADMIN, next_path="/admin/users")
    page.get_by_label("User name").fill("analyst.ray")
    page.get_by_label("Role").select_option("staff")
    page.get_by_label("Password", exact=True).fill("analyst-password-1")
    page.get_by_label("Password again").fill("analyst-password-2")
    page.get_by_role("button", name="Add user").click()
    assert "differ" in page.locator(".field.has-error").filter(has=page.get_by_label("Password again")).inner_text()
    assert count(web_app, User) == 2
    page.get_by_label("Password", exact=True).fill("analyst-password-1")
    page.get_by_label("Password again").fill("analyst-password-1")
    page.get_by_role("button", name="Add user").click()
    assert page.get_by_text("User analyst.ray added (staff)").count() == 1

    theirs = browser.new_context(base_url=live).new_page()
    try:
        login(theirs, ("analyst.ray", "analyst-password-1", "staff"), next_path="/records")
        assert theirs.url.endswith("/records")
        page.reload()
        shot(page, "admin-users")
        page.locator("table.data tbody tr").filter(has_text="analyst.ray").get_by_role("link", name="Remove…").click()
        assert "1 open session" in page.content()
        shot(page, "admin-user-remove-confirm")
        page.get_by_role("button", name="Remove analyst.ray").click()
        assert page.get_by_text("User analyst.ray removed").count() == 1
        with web_app.app_context():
            assert db.session.scalar(select(User).where(User.name == "analyst.ray")) is None
        assert count(web_app, WebSession, WebSession.user_id.is_not(None)) == 1  # only the admin's
        theirs.goto("/records")
        assert "/login" in theirs.url  # the removed account's session ended at once
    finally:
        theirs.context.close()
    (entry,) = audited(web_app, "user.remove")
    assert entry.actor == f"user:{ADMIN[0]}" and entry.details["sessions_ended"] == 1


def test_an_admin_cannot_remove_their_own_account_nor_the_last_admin(web_app: Flask, page: Any) -> None:
    login(page, ADMIN, next_path="/admin/users")
    with web_app.app_context():
        me = db.session.scalar(select(User.id).where(User.name == ADMIN[0]))
    page.goto(f"/admin/users/{me}/remove")
    assert "cannot remove your own account" in page.locator(".flash-error").inner_text()
    assert count(web_app, User) == 2


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_show_and_need_a_login(web_app: Flask, page: Any, path: str) -> None:
    page.goto(path)
    assert "/login" in page.url
    login(page, ADMIN, next_path=path)
    assert page.url.endswith(path)
    sections = page.get_by_role("navigation", name="Admin sections")
    assert sections.get_by_role("link").all_inner_texts() == ["Agencies & keys", "Devices", "Agreements", "Users"]


def test_issue_an_enrollment_token_in_the_browser(seeded: Seeded, web_app: Flask, page: Any, shot: Any) -> None:
    login(page, ADMIN, next_path="/admin/devices")
    page.get_by_label("Agency").last.select_option("CSO")
    page.get_by_label("Officer").fill("Dep. Sam Ortiz")
    page.get_by_role("button", name="Issue a one-time token").click()
    token = page.locator("code.token-value").inner_text()
    assert len(token) > 20
    enroll = page.locator("form").filter(has=page.get_by_role("button", name="Issue a one-time token"))
    assert enroll.get_by_label("Agency").input_value() == "CSO"  # the form stays ready for the next laptop
    shot(page, "admin-enrollment-token")
    (entry,) = [e for e in audited(web_app, "token.issued") if e.actor == f"user:{ADMIN[0]}"]
    assert entry.agency == "CSO"
