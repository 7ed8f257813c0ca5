"""Attacks on confidentiality: a partner agency reading what no agreement shares (see test_attacks.py)."""

# ruff: noqa: F811 - the hub fixtures of tests/backend/conftest.py are imported, then named as arguments
from __future__ import annotations

import base64
import gzip
import json
import uuid

import requests

from tests.backend.conftest import app, database_url, hub, live  # noqa: F401 - fixtures
from tests.backend.helpers import RESOURCE, Hub, Officer, signed_headers

from .adversary import (
    SECRET_NOTE,
    SECRET_PHONE,
    accepted,
    assert_chain_intact,
    leaks,
    new_audit,
    partners,
    push,
    unchanged_but_audit,
    witness,
)

# -- 7. reading what no agreement shares ---------------------------------------------------------


def _fetch(live: str, officer: Officer, path: str, *, gzipped: bool) -> tuple[int, bytes]:
    """A signed GET; the answer's bytes as they crossed the wire, inflated here if gzipped."""
    headers = signed_headers(officer, "GET", path) | {"Accept-Encoding": "gzip" if gzipped else "identity"}
    with requests.get(live + path, headers=headers, timeout=(5, 30), stream=True) as response:
        wire = response.raw.read(decode_content=False)
        encoding = response.headers.get("Content-Encoding")
    if len(wire) > 1024:  # the hub compresses JSON over 1 KiB for a client that asks
        assert encoding == ("gzip" if gzipped else None), (path, encoding)
    return response.status_code, gzip.decompress(wire) if encoding == "gzip" else wire


def test_what_no_agreement_shares_appears_nowhere_in_what_the_partner_receives(hub: Hub, live: str) -> None:
    lee, kim, ray = partners(hub, live, withhold=["notes"])
    car = lee.create(values={**RESOURCE, "notes": SECRET_NOTE})
    contact = lee.create("contacts", {"name": "Lt. Diaz", "role": "liaison", "phone": SECRET_PHONE})
    edit = lee.change("resources", {"notes": SECRET_NOTE + " (changed)"}, record_id=car["record_id"])
    fillers = [lee.create(values={**RESOURCE, "name": f"Unit {i}"}) for i in range(12)]  # so answers exceed 1 KiB
    assert accepted(push(live, lee, car, contact, edit, *fillers))
    purpose = "surveillance of 14 Elm St (confidential)"  # CSO's booking of SPD's car: SPD and CSO see it, FBI not
    booking = kim.create(
        "reservations",
        {
            "resource_id": car["record_id"],
            "starts_at": "2030-01-01T08:00:00Z",
            "ends_at": "2030-01-01T10:00:00Z",
            "purpose": purpose,
            "state": "requested",
        },
    )
    assert accepted(push(live, kim, booking))
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
    assert all(leaks(own, s) for s in [*secrets, purpose])
    assert leaks(json.dumps({"n": SECRET_NOTE}).encode(), SECRET_NOTE)  # and in JSON's \\u-escaped form
    for before_it in (b"", b"x", b"xx"):  # and in base64 inside a longer text, at each alignment
        assert leaks(base64.urlsafe_b64encode(before_it + SECRET_PHONE.encode() + b"tail"), SECRET_PHONE)
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
        (ray, booking["record_id"], "not shared with FBI"),
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
        if where.startswith("FBI"):
            assert not leaks(body, purpose), where
    # CSO does get the shared fields, and the withheld one as a digest it can still verify
    assert [c.id for c in kim.pull()] == [car["id"], edit["id"]] + [f["id"] for f in fillers] + [booking["id"]]
    assert kim.state.view()[car["record_id"]]["name"] == "Unit 12"
    assert set(kim.state.records[car["record_id"]].withheld()) == {"notes"}
    # nothing was written; each refused bundle is audited with its reader and the real reason
    unchanged_but_audit(before, witness(hub.app))
    entries = [e for e in new_audit(hub.app, before) if e.action == "provenance.read"]
    assert [(e.actor, e.agency, e.object, e.outcome, e.details["reason"]) for e in entries] == [
        (f"device:{r.device_id}", r.agency, record_id, "refused", reason) for r, record_id, reason in refusals
    ]
    assert_chain_intact(hub.app)
