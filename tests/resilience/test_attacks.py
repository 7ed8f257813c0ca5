"""The adversary's view of the hub: each attack over real HTTP on loopback, on SQLite and PostgreSQL.

tests/backend/ checks each rule of the hub at unit level. Here every test is one
attack, made the way a thief holding one laptop's key, a partner agency's
officer or someone on the network would make it, request by request, and each
asserts four things:

(a) the exact refusal (status and reason);
(b) nothing written: records, the change log and its head, feeds, devices and
    tokens as before (:func:`tests.resilience.adversary.witness`); where the
    attacker's own authentic change is refused by an agreement, its own feed
    moves past the refused link by design (docs/protocol.md) and the test says so;
(c) the audit entry: actor (device or anonymous), agency, object and reason;
(d) the audit chain still verifies afterwards.

The hub runs in-process behind werkzeug's threaded server (the ``live`` fixture
of tests/backend/conftest.py); the audit tampering test also runs the real
``fieldsync-hub audit verify`` command.
"""

# ruff: noqa: F811 - the hub fixtures of tests/backend/conftest.py are imported, then named as arguments
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select, text, update

from backend import audit, jobs
from backend.db import db
from backend.keystore import now
from backend.models import AuditEntry, EnrollmentToken, JobRun
from crypto import SigningKey, b64e, sign_change
from tests.backend.conftest import app, database_url, hub, live  # noqa: F401 - fixtures
from tests.backend.helpers import RESOURCE, Hub, Officer, error_body, raw, sign_as, signed_headers

from .adversary import State, assert_chain_intact, leaks, new_audit, unchanged_but_audit, witness

PUSH = "/api/v1/sync/push"
ENROLL = "/api/v1/enroll"
EXE = Path(sys.executable).with_name("fieldsync-hub")
HUB_CLI = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "backend.cli"]

SECRET_NOTE = "safe combination: 4-8-15-16 — código ✓"
SECRET_PHONE = "+1 (555) 0199-4242"


def partners(hub: Hub, live: str, **agreement: Any) -> tuple[Officer, Officer, Officer]:
    """SPD shares its resources with CSO (read-only unless ``agreement`` says otherwise); FBI gets
    nothing. One officer each: Sgt. Lee (SPD), Dep. Kim (CSO), Agent Ray (FBI)."""
    for code in ("SPD", "CSO", "FBI"):
        hub.agency(code)
    hub.agreement("SPD", "CSO", ["resources"], **agreement)
    return (
        Officer(live, hub.token("SPD", "Sgt. Lee")),
        Officer(live, hub.token("CSO", "Dep. Kim")),
        Officer(live, hub.token("FBI", "Agent Ray")),
    )


def accepted(results: list[dict[str, Any]]) -> bool:
    return all(r["status"] == "accepted" for r in results)


def push(live: str, officer: Officer, *wires: dict[str, Any]) -> list[dict[str, Any]]:
    """One signed push of ``wires`` by ``officer``'s laptop; its per-change verdicts."""
    response = raw(live, "POST", PUSH, {"changes": list(wires)}, officer=officer)
    assert response.status_code == 200, response.text[:500]
    return response.json()["results"]  # type: ignore[no-any-return]


def refused_changes(app: Flask, before: State, officer: Officer, wires: list[dict[str, Any]]) -> list[AuditEntry]:
    """(c): one ``change.rejected`` entry per wire, naming the pushing device, its agency and the change."""
    entries = new_audit(app, before)
    assert [(e.action, e.outcome) for e in entries] == [("change.rejected", "rejected")] * len(wires), entries
    assert [e.object for e in entries] == [w["id"] for w in wires]
    for entry, wire in zip(entries, wires, strict=True):
        assert (entry.actor, entry.agency) == (f"device:{officer.device_id}", officer.agency)
        assert entry.details["record"] == wire["record_id"] and entry.details["collection"] == wire["collection"]
        assert entry.details["reason"]
    return entries


def refused_requests(app: Flask, before: State, officer: Officer, objects: list[str]) -> list[AuditEntry]:
    """(c): one ``request.refused`` entry per refused request, naming the device, agency and request."""
    entries = new_audit(app, before)
    assert [(e.action, e.outcome) for e in entries] == [("request.refused", "refused")] * len(objects), entries
    assert [e.object for e in entries] == objects
    assert all((e.actor, e.agency) == (f"device:{officer.device_id}", officer.agency) for e in entries)
    return entries


def only_feed_moved(before: State, after: State, moved: dict[str, int]) -> None:
    """(b) for authentic changes refused by an agreement: each attacker's feed moved past its
    refused links (``moved``: device -> how many), everything else is as it was."""
    for device, count in moved.items():
        seq = before.feeds[device][0]
        assert after.feeds[device][0] == seq + count
        added = sorted(set(after.links) - set(before.links))
        assert [link for link in added if link[0] == device] == [
            (device, s, "rejected") for s in range(seq + 1, seq + count + 1)
        ]
    kept = {d: f for d, f in after.feeds.items() if d not in moved}
    assert kept == {d: f for d, f in before.feeds.items() if d not in moved}
    assert [link for link in after.links if link[0] not in moved] == [
        link for link in before.links if link[0] not in moved
    ]
    for name in ("records", "log", "log_head", "held", "equivocations", "conflicts", "tokens"):
        assert getattr(after, name) == getattr(before, name), f"the attack changed {name}"


# -- 1. forged changes -----------------------------------------------------------------------


def test_a_forged_change_is_refused_and_audited(hub: Hub, live: str) -> None:
    lee, _, _ = partners(hub, live)
    car = lee.create()
    assert accepted(push(live, lee, car))
    before = witness(hub.app)
    bad_signature = sign_as(lee, values={"status": "deployed"}, record_id=car["record_id"])
    signature = bad_signature["signature"]
    bad_signature["signature"] = ("A" if signature[0] != "A" else "B") + signature[1:]
    changed_value = sign_as(lee, values={"status": "available"}, record_id=car["record_id"])
    changed_value["fields"]["status"]["value"] = "out_of_service"  # after signing: the salted digest no longer matches
    results = push(live, lee, bad_signature, changed_value)
    assert [(r["id"], r["status"]) for r in results] == [
        (bad_signature["id"], "rejected"),
        (changed_value["id"], "rejected"),
    ]
    assert all(r["reason"] == "signature does not match the signed content" for r in results), results
    unchanged_but_audit(before, witness(hub.app))
    entries = refused_changes(hub.app, before, lee, [bad_signature, changed_value])
    assert all(e.details["reason"] == "signature does not match the signed content" for e in entries)
    assert_chain_intact(hub.app)
    # the refusals did not move lee's feed: the honest next change is the next link
    assert accepted(push(live, lee, lee.change("resources", {"status": "deployed"}, record_id=car["record_id"])))


def test_a_laptop_cannot_pass_its_change_off_as_a_hub_resolution(hub: Hub, live: str) -> None:
    """Staff decisions are hub-signed changes naming who chose: a laptop may not forge one, under
    its own device id or the hub's."""
    lee, _, _ = partners(hub, live)
    car = lee.create()
    assert accepted(push(live, lee, car))
    before = witness(hub.app)
    claim = {"kind": "conflict", "resolves": f"{car['record_id']}/status/x/y", "by": "Lt. Dana Cruz"}
    as_resolution = sign_change(
        {**sign_as(lee, values={"status": "deployed"}, record_id=car["record_id"]), "resolution": claim}, lee.key
    )
    as_hub = sign_change(
        {**sign_as(lee, values={"status": "deployed"}, record_id=car["record_id"]), "device": "hub"}, lee.key
    )
    results = push(live, lee, as_resolution, as_hub)
    assert [(r["status"], r["reason"]) for r in results] == [
        ("rejected", "only the hub signs resolutions"),
        ("rejected", "a device may push only its own changes"),
    ]
    unchanged_but_audit(before, witness(hub.app))
    entries = refused_changes(hub.app, before, lee, [as_resolution, as_hub])
    assert [e.details["reason"] for e in entries] == [r["reason"] for r in results]
    assert_chain_intact(hub.app)


# -- 2. changes re-signed by another agency's device -----------------------------------------


def test_a_change_re_signed_by_another_agencys_device_is_refused(hub: Hub, live: str) -> None:
    lee, kim, _ = partners(hub, live)
    car = lee.create()
    assert accepted(push(live, lee, car))
    kim.pull()
    rid = car["record_id"]
    before = witness(hub.app)
    # SPD's edit, re-signed with the CSO laptop's key: as SPD's device (it names lee) ...
    lees_edit = sign_as(lee, values={"status": "out_of_service"}, record_id=rid)
    as_lee = sign_change(lees_edit, kim.key)
    # ... and as CSO's own device, keeping SPD's agency and record (a write the read-only agreement does not grant)
    as_kim = kim.change("resources", {"status": "out_of_service"}, record_id=rid, agency="SPD")
    # ... and claiming CSO's agency for SPD's record (a CSO write to "its own" record)
    claimed = kim.change("resources", {"status": "out_of_service", "name": "Ours"}, record_id=rid, agency="CSO")
    results = push(live, kim, as_lee, as_kim, claimed)
    assert [r["status"] for r in results] == ["rejected"] * 3
    assert results[0]["reason"] == "a device may push only its own changes"
    assert results[1]["reason"] == "the agreement from SPD does not let CSO write status"
    assert results[1]["details"] == {"status": ["Not writable under the agreement."]}
    assert results[2]["reason"] == "record belongs to agency SPD, change names CSO"
    # pushed from SPD's own laptop, the re-signed change fails SPD's certificate
    (from_lee,) = push(live, lee, as_lee)
    assert (from_lee["status"], from_lee["reason"]) == ("rejected", "signature does not match the signed content")
    after = witness(hub.app)
    only_feed_moved(before, after, {kim.device_id: 2})  # kim's two authentic (own-feed) changes
    entries = new_audit(hub.app, before)
    assert [(e.action, e.actor, e.agency, e.object) for e in entries] == [
        ("change.rejected", f"device:{kim.device_id}", "CSO", w["id"]) for w in (as_lee, as_kim, claimed)
    ] + [("change.rejected", f"device:{lee.device_id}", "SPD", as_lee["id"])]
    assert [e.details["reason"] for e in entries] == [r["reason"] for r in results] + [from_lee["reason"]]
    assert [e.details["owner"] for e in entries] == ["SPD", "SPD", "CSO", "SPD"]
    assert entries[1].details["fields"] == {"status": ["Not writable under the agreement."]}
    assert all(e.details["record"] == rid for e in entries)
    assert_chain_intact(hub.app)


def test_a_change_claiming_another_agency_in_its_header_is_refused(hub: Hub, live: str) -> None:
    """A CSO laptop creating a record in SPD's name, and sending SPD's code in a request header."""
    _, kim, _ = partners(hub, live, write=["status"])
    before = witness(hub.app)
    created = kim.create(agency="SPD")
    response = raw(live, "POST", PUSH, {"changes": [created]}, officer=kim, headers={"X-Fieldsync-Agency": "SPD"})
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert (result["status"], result["reason"]) == ("rejected", "agency CSO cannot create resources for agency SPD")
    only_feed_moved(before, witness(hub.app), {kim.device_id: 1})
    (entry,) = refused_changes(hub.app, before, kim, [created])
    assert entry.details["reason"] == result["reason"] and entry.details["owner"] == "SPD"
    assert_chain_intact(hub.app)


# -- 3. replayed requests ----------------------------------------------------------------------


def test_a_replayed_request_is_refused_and_audited(hub: Hub, live: str) -> None:
    lee, _, _ = partners(hub, live)
    data = json.dumps({"changes": [lee.create()]}).encode()
    headers = signed_headers(lee, "POST", PUSH, data)
    first = raw(live, "POST", PUSH, data=data, headers=headers)
    assert first.status_code == 200 and accepted(first.json()["results"])
    pull = "/api/v1/sync/pull?cursor=0"
    pull_headers = signed_headers(lee, "GET", pull)
    assert raw(live, "GET", pull, headers=pull_headers).status_code == 200
    before = witness(hub.app)
    # the exact same signed request again (a push and a pull)
    replay = error_body(raw(live, "POST", PUSH, data=data, headers=headers), 401)
    assert replay == {
        "error": "unauthorized",
        "message": "replayed request: this nonce was already used",
        "details": {},
    }
    error_body(raw(live, "GET", pull, headers=pull_headers), 401)
    # the same nonce, with a new signature over a new body and a new time
    fresh = lee.create()
    data2 = json.dumps({"changes": [fresh]}).encode()
    later = datetime.now(UTC) + timedelta(seconds=2)
    headers2 = signed_headers(lee, "POST", PUSH, data2, at=later, nonce=headers["X-Fieldsync-Nonce"])
    assert headers2["X-Fieldsync-Signature"] != headers["X-Fieldsync-Signature"]
    again = error_body(raw(live, "POST", PUSH, data=data2, headers=headers2), 401)
    assert again["message"] == "replayed request: this nonce was already used"
    unchanged_but_audit(before, witness(hub.app))
    entries = refused_requests(hub.app, before, lee, [f"POST {PUSH}", "GET /api/v1/sync/pull", f"POST {PUSH}"])
    assert all(e.details["reason"] == "replayed request: this nonce was already used" for e in entries)
    assert_chain_intact(hub.app)
    # the refused push was not half-done: the same change, sent properly, is accepted
    assert accepted(push(live, lee, fresh))


def test_a_request_signed_for_another_path_or_body_is_refused(hub: Hub, live: str) -> None:
    lee, _, _ = partners(hub, live)
    data = json.dumps({"changes": [lee.create()]}).encode()
    other = json.dumps({"changes": [lee.create()]}).encode()
    before = witness(hub.app)
    cases = [
        signed_headers(lee, "GET", "/api/v1/sync/pull?cursor=0", b""),  # a pull's signature on a push
        signed_headers(lee, "POST", "/api/v1/enroll", data),  # signed for another path
        signed_headers(lee, "POST", PUSH, other),  # signed over another body
    ]
    for headers in cases:
        body = error_body(raw(live, "POST", PUSH, data=data, headers=headers), 401)
        assert body["message"] == "request signature refused: signature does not match the signed content", body
    unchanged_but_audit(before, witness(hub.app))
    entries = refused_requests(hub.app, before, lee, [f"POST {PUSH}"] * 3)
    assert all("signature" in e.details["reason"] for e in entries)
    assert_chain_intact(hub.app)


# -- 4. a change replayed under another record id --------------------------------------------


def test_a_change_replayed_under_another_record_id_is_refused(hub: Hub, live: str) -> None:
    lee, kim, _ = partners(hub, live, write=["status"])
    car = lee.create()
    deploy = lee.change("resources", {"status": "deployed"}, record_id=car["record_id"])
    assert accepted(push(live, lee, car))
    truck = lee.create(values={**RESOURCE, "name": "Truck 3"})
    lee.seq, lee.prev = 1, car and lee.prev  # (deploy and truck were signed, not sent)
    before = witness(hub.app)
    moved = {**deploy, "record_id": truck["record_id"]}  # the same change, aimed at another record
    renamed = {**moved, "id": str(uuid.uuid4())}  # ... with a fresh change id too
    results = push(live, lee, moved, renamed)
    assert [(r["status"], r["reason"]) for r in results] == [
        ("rejected", "signature does not match the signed content")
    ] * 2
    # a partner replaying SPD's signed change from its own laptop
    (by_kim,) = push(live, kim, moved)
    assert (by_kim["status"], by_kim["reason"]) == ("rejected", "a device may push only its own changes")
    unchanged_but_audit(before, witness(hub.app))
    entries = new_audit(hub.app, before)
    assert [(e.action, e.actor, e.object, e.details["record"]) for e in entries] == [
        ("change.rejected", f"device:{lee.device_id}", moved["id"], truck["record_id"]),
        ("change.rejected", f"device:{lee.device_id}", renamed["id"], truck["record_id"]),
        ("change.rejected", f"device:{kim.device_id}", moved["id"], truck["record_id"]),
    ]
    assert [e.details["reason"] for e in entries] == [r["reason"] for r in results] + [by_kim["reason"]]
    # the accepted change sent again is only a duplicate: nothing new, nothing audited
    (dup,) = push(live, lee, car)
    assert dup["status"] == "duplicate"
    unchanged_but_audit(before, witness(hub.app))
    assert len(new_audit(hub.app, before)) == 3
    assert_chain_intact(hub.app)


# -- 5. a revoked laptop -----------------------------------------------------------------------


def test_a_revoked_laptop_can_neither_push_nor_pull(hub: Hub, live: str) -> None:
    lee, kim, _ = partners(hub, live)
    car = lee.create()
    assert accepted(push(live, lee, car))
    pending = lee.change("resources", {"status": "deployed"}, record_id=car["record_id"])
    hub.revoke(lee.device_id)
    before = witness(hub.app)
    message = f"device {lee.device_id} was revoked: lost laptop"
    for method, path, body in (
        ("POST", PUSH, {"changes": [pending]}),
        ("GET", "/api/v1/sync/pull?cursor=0", None),
        ("GET", f"/api/v1/records/{car['record_id']}/provenance", None),
    ):
        answer = error_body(raw(live, method, path, body, officer=lee), 403)
        assert answer == {"error": "forbidden", "message": message, "details": {}}
    # its signed change cannot come in through a partner's laptop either
    (through_kim,) = push(live, kim, pending)
    assert (through_kim["status"], through_kim["reason"]) == ("rejected", "a device may push only its own changes")
    unchanged_but_audit(before, witness(hub.app))
    entries = new_audit(hub.app, before)
    assert [(e.action, e.actor, e.agency, e.object) for e in entries] == [
        ("request.refused", f"device:{lee.device_id}", "SPD", f"POST {PUSH}"),
        ("request.refused", f"device:{lee.device_id}", "SPD", "GET /api/v1/sync/pull"),
        ("request.refused", f"device:{lee.device_id}", "SPD", f"GET /api/v1/records/{car['record_id']}/provenance"),
        ("change.rejected", f"device:{kim.device_id}", "CSO", pending["id"]),
    ]
    assert [e.details["reason"] for e in entries[:3]] == [message] * 3
    assert_chain_intact(hub.app)


# -- 6. writes no agreement grants ----------------------------------------------------------------


def test_writes_to_another_agencys_record_that_no_agreement_grants_are_refused(hub: Hub, live: str) -> None:
    lee, kim, ray = partners(hub, live, withhold=["notes"])  # read-only, notes withheld
    car = lee.create(values={**RESOURCE, "notes": SECRET_NOTE})
    contact = lee.create("contacts", {"name": "Lt. Diaz", "role": "liaison", "phone": SECRET_PHONE})
    assert accepted(push(live, lee, car, contact))
    kim.pull()
    rid = car["record_id"]
    before = witness(hub.app)
    status = kim.change("resources", {"status": "deployed"}, record_id=rid)  # shared read-only
    notes = kim.change("resources", {"notes": "moved"}, record_id=rid)  # withheld from CSO
    phone = kim.change("contacts", {"phone": "555-0000"}, record_id=contact["record_id"], agency="SPD")  # not shared
    stranger = ray.change("resources", {"status": "out_of_service"}, record_id=rid, agency="SPD")  # no agreement
    results = push(live, kim, status, notes, phone) + push(live, ray, stranger)
    assert [(r["status"], r["reason"]) for r in results] == [
        ("rejected", "the agreement from SPD does not let CSO write status"),
        ("rejected", "the agreement from SPD does not let CSO write notes"),
        ("rejected", "no agreement lets CSO write SPD's contacts"),
        ("rejected", "no agreement lets FBI write SPD's resources"),
    ]
    only_feed_moved(before, witness(hub.app), {kim.device_id: 3, ray.device_id: 1})
    entries = new_audit(hub.app, before)
    assert [(e.action, e.actor, e.agency, e.object, e.details["record"]) for e in entries] == [
        ("change.rejected", f"device:{kim.device_id}", "CSO", status["id"], rid),
        ("change.rejected", f"device:{kim.device_id}", "CSO", notes["id"], rid),
        ("change.rejected", f"device:{kim.device_id}", "CSO", phone["id"], contact["record_id"]),
        ("change.rejected", f"device:{ray.device_id}", "FBI", stranger["id"], rid),
    ]
    assert [e.details["reason"] for e in entries] == [r["reason"] for r in results]
    assert [e.details.get("fields") for e in entries[:2]] == [
        {"status": ["Not writable under the agreement."]},
        {"notes": ["Not writable under the agreement."]},
    ]
    assert_chain_intact(hub.app)


# -- 7. reading what no agreement shares ---------------------------------------------------------


def _fetch(live: str, officer: Officer, path: str, *, gzipped: bool) -> tuple[int, bytes]:
    """A signed GET; the answer's bytes as they crossed the wire, inflated here if gzipped."""
    headers = signed_headers(officer, "GET", path) | {"Accept-Encoding": "gzip" if gzipped else "identity"}
    with requests.get(live + path, headers=headers, timeout=(5, 30), stream=True) as response:
        wire = response.raw.read(decode_content=False)
        encoding = response.headers.get("Content-Encoding")
    if gzipped and len(wire) > 1024:
        assert encoding == "gzip"
    return response.status_code, gzip.decompress(wire) if encoding == "gzip" else wire


def test_what_no_agreement_shares_appears_nowhere_in_what_the_partner_receives(hub: Hub, live: str) -> None:
    lee, kim, ray = partners(hub, live, withhold=["notes"])
    car = lee.create(values={**RESOURCE, "notes": SECRET_NOTE})
    contact = lee.create("contacts", {"name": "Lt. Diaz", "role": "liaison", "phone": SECRET_PHONE})
    edit = lee.change("resources", {"notes": SECRET_NOTE + " (changed)"}, record_id=car["record_id"])
    fillers = [lee.create(values={**RESOURCE, "name": f"Unit {i}"}) for i in range(12)]  # so answers exceed 1 KiB
    assert accepted(push(live, lee, car, contact, edit, *fillers))
    secrets = [
        SECRET_NOTE,
        SECRET_PHONE,
        "Lt. Diaz",
        contact["id"],
        contact["record_id"],
        car["fields"]["notes"]["salt"],
        edit["fields"]["notes"]["salt"],
    ]
    # SPD's own laptop gets them all: the search below can find them
    _, own = _fetch(live, lee, "/api/v1/sync/pull?cursor=0", gzipped=True)
    assert all(leaks(own, s) for s in secrets)
    before = witness(hub.app)
    answers: list[tuple[str, bytes]] = []
    for reader in (kim, ray):
        for gzipped in (True, False):
            for path in ("/api/v1/sync/pull?cursor=0", "/api/v1/sync/pull?cursor=0&limit=2", "/api/v1/registry"):
                status, body = _fetch(live, reader, path, gzipped=gzipped)
                assert status == 200, body[:300]
                answers.append((f"{reader.agency} {path}", body))
    # the shared record's bundle reaches CSO with notes as digests; the contact's is 404, as is FBI's
    status, bundle = _fetch(live, kim, f"/api/v1/records/{car['record_id']}/provenance", gzipped=True)
    assert status == 200 and json.loads(bundle)["record"]["values"]["name"] == "Unit 12"
    answers.append(("CSO bundle", bundle))
    refusals = [
        (kim, contact["record_id"], "not shared with CSO"),
        (ray, car["record_id"], "not shared with FBI"),
        (kim, str(uuid.uuid4()), "no such record"),
    ]
    for reader, record_id, _ in refusals:
        status, body = _fetch(live, reader, f"/api/v1/records/{record_id}/provenance", gzipped=True)
        assert status == 404 and json.loads(body)["message"] == f"no record {record_id}"
        answers.append((f"{reader.agency} 404", body))
    # a partner sending SPD's code in a header sees no more
    spoofed = signed_headers(kim, "GET", "/api/v1/sync/pull?cursor=0") | {"X-Fieldsync-Agency": "SPD"}
    answers.append(
        ("CSO spoofing SPD", requests.get(live + "/api/v1/sync/pull?cursor=0", headers=spoofed, timeout=30).content)
    )
    for where, body in answers:
        # a 404 repeats the id the reader asked for, and nothing more
        for secret in secrets if "404" not in where else secrets[:3] + secrets[5:]:
            assert not leaks(body, secret), (where, secret, leaks(body, secret))
    # CSO does get the shared fields, and the withheld one as a digest it can still verify
    assert [c.id for c in kim.pull()] == [car["id"], edit["id"]] + [f["id"] for f in fillers]
    assert kim.state.view()[car["record_id"]]["name"] == "Unit 12"
    assert set(kim.state.records[car["record_id"]].withheld()) == {"notes"}
    # nothing was written; each refused bundle is audited with its reader and the real reason
    unchanged_but_audit(before, witness(hub.app))
    entries = [e for e in new_audit(hub.app, before) if e.action == "provenance.read"]
    assert [(e.actor, e.agency, e.object, e.outcome, e.details["reason"]) for e in entries] == [
        (f"device:{r.device_id}", r.agency, record_id, "refused", reason) for r, record_id, reason in refusals
    ]
    assert_chain_intact(hub.app)


# -- 8. enrollment -------------------------------------------------------------------------------


def _key() -> str:
    return SigningKey.generate().verify_key.to_text()


def test_enrollment_with_a_used_expired_foreign_or_garbage_token_is_refused(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    hub.agency("CSO")
    used = hub.token("SPD", "Sgt. Lee")
    assert raw(live, "POST", ENROLL, {"token": used, "public_key": _key()}).status_code == 201
    expired = hub.token("SPD", "Dep. Old", ttl=60)
    with hub.app.app_context():
        db.session.execute(
            update(EnrollmentToken)
            .where(EnrollmentToken.officer == "Dep. Old")
            .values(expires_at=now() - timedelta(seconds=1))
        )
        db.session.commit()
    spd = hub.token("SPD", "Ofc. Pat")  # an SPD token a CSO officer got hold of
    before = witness(hub.app)
    cases: list[tuple[dict[str, Any], int, str, str | None, str | None]] = [
        ({"token": used}, 409, "this enrollment token was already used", "SPD", "Sgt. Lee"),
        ({"token": expired}, 403, "this enrollment token has expired; ask for a new one", "SPD", "Dep. Old"),
        ({"token": spd, "agency": "CSO"}, 422, "the request does not match its schema", None, None),
        ({"token": "CSO"}, 401, "unknown enrollment token", None, None),
        ({"token": b64e(os.urandom(32))}, 401, "unknown enrollment token", None, None),
        ({"token": "' OR 1=1 --"}, 401, "unknown enrollment token", None, None),
        ({"token": "\uff54\uff4f\uff4b\uff45\uff4e\u202e\u0000\u2713"}, 401, "unknown enrollment token", None, None),
        ({"token": "x" * 201}, 422, "the request does not match its schema", None, None),
        ({"token": ["a", "list"]}, 422, "the request does not match its schema", None, None),
    ]
    for body, status, message, _, _ in cases:
        answer = error_body(raw(live, "POST", ENROLL, {**body, "public_key": _key()}), status)
        assert answer["message"] == message, (body, answer)
    unchanged_but_audit(before, witness(hub.app))
    entries = new_audit(hub.app, before)
    assert [(e.action, e.actor, e.outcome) for e in entries] == [("device.enroll", "anonymous", "refused")] * len(cases)
    assert [(e.details["reason"], e.agency, e.object) for e in entries] == [c[2:] for c in cases]
    assert all(e.details["from"] == "127.0.0.1" for e in entries)
    assert_chain_intact(hub.app)
    # the SPD token was not spent by the refused attempt, and it makes an SPD laptop, whoever asks
    pat = Officer(live, spd)
    assert pat.agency == "SPD" and pat.certificate["agency"] == "SPD"


# -- oversize requests ----------------------------------------------------------------------------


def test_an_oversize_push_is_refused_and_audited(app: Flask, hub: Hub, live: str) -> None:
    lee, _, _ = partners(hub, live)
    app.config["MAX_CONTENT_LENGTH"] = 4000
    app.config["MAX_BATCH"] = 3
    before = witness(hub.app)
    big = json.dumps({"changes": [lee.create(values={**RESOURCE, "notes": "n" * 5000})]}).encode()
    answer = error_body(raw(live, "POST", PUSH, data=big, headers=signed_headers(lee, "POST", PUSH, big)), 413)
    assert answer["error"] == "payload_too_large"
    many = [sign_as(lee, seq=i) for i in range(1, 5)]
    answer = error_body(raw(live, "POST", PUSH, {"changes": many}, officer=lee), 413)
    assert answer["message"] == "a push carries at most 3 changes"
    unchanged_but_audit(before, witness(hub.app))
    entries = refused_requests(hub.app, before, lee, [f"POST {PUSH}"] * 2)
    assert entries[0].details["reason"] == "the request body is over 4000 bytes"
    assert entries[1].details["reason"] == "a push carries at most 3 changes"
    assert_chain_intact(hub.app)


def test_attacker_chosen_text_of_any_length_is_refused_and_audited_not_a_server_error(hub: Hub, live: str) -> None:
    """A huge device header, path or change id lands in audit columns of fixed size (PostgreSQL
    refuses an over-long value): the refusal must still be answered and recorded."""
    lee, _, _ = partners(hub, live)
    before = witness(hub.app)
    long_device = "d" * 5000
    headers = signed_headers(lee, "POST", PUSH, b"{}") | {"X-Fieldsync-Device": long_device}
    assert error_body(raw(live, "POST", PUSH, data=b"{}", headers=headers), 401)["message"] == "unknown device"
    long_path = f"/api/v1/records/{'r' * 3000}/provenance"
    assert error_body(raw(live, "GET", long_path), 401)["message"] == "request is not signed by a device"
    forged = sign_as(lee)
    forged["id"] = "c" * 5000  # no longer what was signed
    forged["record_id"] = "x" * 5000
    (result,) = push(live, lee, forged)
    assert (result["status"], result["reason"]) == ("rejected", "signature does not match the signed content")
    unchanged_but_audit(before, witness(hub.app))
    entries = new_audit(hub.app, before)
    assert [(e.action, e.actor, e.object) for e in entries] == [
        ("request.refused", "device:" + "d" * 192 + "…", f"POST {PUSH}"),
        ("request.refused", "device:unknown", f"GET {long_path}"[:299] + "…"),
        ("change.rejected", f"device:{lee.device_id}", "c" * 299 + "…"),
    ]
    assert entries[2].details["record"] == "x" * 100 and entries[2].details["reason"] == result["reason"]
    assert_chain_intact(hub.app)


# -- 9. the audit log itself ---------------------------------------------------------------------


def _hub_cli(app: Flask, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
    env.update(FIELDSYNC_INSTANCE=app.instance_path, FIELDSYNC_DATABASE_URL=app.config["DATABASE_URL"])
    return subprocess.run(
        [*HUB_CLI, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False
    )


def _sql(app: Flask, statement: str, **params: Any) -> None:
    with app.app_context():
        db.session.execute(text(statement), params)
        db.session.commit()
        db.session.remove()


def _problems(app: Flask) -> list[str]:
    with app.app_context():
        problems = audit.verify().problems
        db.session.remove()
    return problems


@pytest.mark.parametrize("tamper", ["edited", "deleted", "inserted"])
def test_a_tampered_audit_log_is_named_and_raises_an_alarm(app: Flask, hub: Hub, live: str, tamper: str) -> None:
    lee, _, _ = partners(hub, live)
    forged = sign_as(lee)
    forged["fields"]["name"]["value"] = "Unit 99"
    assert push(live, lee, forged)[0]["status"] == "rejected"  # the evidence someone wants gone
    assert accepted(push(live, lee, lee.create()))
    hub.token("SPD", "Ofc. Pat")  # one more entry after it
    with app.app_context():
        (target,) = db.session.scalars(select(AuditEntry.seq).where(AuditEntry.action == "change.rejected"))
        size = len(list(db.session.scalars(select(AuditEntry.seq))))
        db.session.remove()
    if tamper == "edited":  # the rejection now blames someone else
        _sql(app, "UPDATE audit_log SET actor = 'device:someone-else' WHERE seq = :s", s=target)
        expected = [f"entry {target} was altered: its content no longer matches its hash"]
    elif tamper == "deleted":
        _sql(app, "DELETE FROM audit_log WHERE seq = :s", s=target)
        expected = [
            f"entries {target}..{target} are missing (deleted)",
            f"entry {target + 1} does not follow the entry before it (an entry was removed or inserted)",
        ]
    else:  # a well-formed entry (right prev, right hash) slipped in after the last one, behind the head's back
        with app.app_context():
            last = db.session.get(AuditEntry, size)
            assert last is not None
            row = {c.name: getattr(last, c.name) for c in AuditEntry.__table__.columns}
            row |= {
                "seq": size + 1,
                "actor": "user:mallory",
                "action": "user.add",
                "object": "backdoor",
                "prev": last.hash,
            }
            body = {
                k: row[k] for k in ("seq", "at", "actor", "agency", "action", "object", "outcome", "details", "prev")
            }
            row["hash"] = audit._hash(body)
            db.session.execute(AuditEntry.__table__.insert().values(**row))
            db.session.commit()
            db.session.remove()
        expected = [
            f"the log ends at entry {size + 1} but its head records {size} entries "
            "(entries were deleted at the end, or the head was edited)"
        ]
    assert _problems(app) == expected
    if tamper == "edited":  # the administrator's command names it and fails (one process is enough)
        cli = _hub_cli(app, "audit", "verify")
        assert cli.returncode == 1 and cli.stdout == ""
        assert cli.stderr.splitlines() == [*expected, f"Error: audit log is NOT intact: 1 problem(s) in {size} entries"]
    # the scheduled check raises the alarm: an audit entry of its own, and the job's outcome
    assert jobs.run_due(app, only="audit-verify", force=True) == {"audit-verify": "ran"}
    with app.app_context():
        alarm = db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        run = db.session.get(JobRun, "audit-verify")
        assert alarm is not None and (alarm.action, alarm.outcome, alarm.actor) == (
            "audit.broken",
            "broken",
            "hub:scheduler",
        )
        assert alarm.details["problems"] == expected
        assert run is not None and run.last_summary is not None and run.last_summary["ok"] is False
        db.session.remove()
    # the alarm is itself a sound link: the break is still named, and nothing else is
    if tamper == "inserted":  # the alarm links to the head the hub wrote, past the intruder
        expected = [f"entries {size + 1}..{size + 1} were inserted: entry {size + 2} links to entry {size}"]
    after = _problems(app)
    assert after == expected
    # and the hub keeps working: attacks after the tampering are still refused and audited
    second = sign_as(lee)
    second["signature"] = "A" * 86
    assert push(live, lee, second)[0]["status"] == "rejected"
    assert _problems(app) == after
