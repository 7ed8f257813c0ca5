"""Attacks with requests: replayed, signed for another path or body, oversize, from a revoked laptop,
with attacker-chosen text of any length. Each: refusal, nothing written, audited, chain intact
(see test_attacks.py)."""

# ruff: noqa: F811 - the hub fixtures of tests/backend/conftest.py are imported, then named as arguments
from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

from flask import Flask

from tests.backend.conftest import app, database_url, hub, live  # noqa: F401 - fixtures
from tests.backend.helpers import RESOURCE, Hub, error_body, raw, sign_as, signed_headers

from .adversary import (
    PUSH,
    accepted,
    assert_chain_intact,
    new_audit,
    partners,
    push,
    refused_requests,
    unchanged_but_audit,
    witness,
)

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


# -- oversize requests ----------------------------------------------------------------------------


def test_an_oversize_or_malformed_push_is_refused_and_audited(app: Flask, hub: Hub, live: str) -> None:
    lee, _, _ = partners(hub, live)
    app.config["MAX_CONTENT_LENGTH"] = 4000
    app.config["MAX_BATCH"] = 3
    before = witness(hub.app)
    big = json.dumps({"changes": [lee.create(values={**RESOURCE, "notes": "n" * 5000})]}).encode()
    answer = error_body(raw(live, "POST", PUSH, data=big, headers=signed_headers(lee, "POST", PUSH, big)), 413)
    assert (answer["error"], answer["message"]) == ("payload_too_large", "the request body is over 4000 bytes")
    many = [sign_as(lee, seq=i) for i in range(1, 5)]
    answer = error_body(raw(live, "POST", PUSH, {"changes": many}, officer=lee), 413)
    assert answer["message"] == "a push carries at most 3 changes"
    broken = b'{"changes": [{"id": '
    answer = error_body(raw(live, "POST", PUSH, data=broken, headers=signed_headers(lee, "POST", PUSH, broken)), 400)
    assert answer["message"] == "the request body is not valid JSON"
    answer = error_body(raw(live, "POST", PUSH, {"changes": "all of them", "agency": "SPD"}, officer=lee), 422)
    assert set(answer["details"]) == {"changes", "agency"}
    unchanged_but_audit(before, witness(hub.app))
    entries = refused_requests(hub.app, before, lee, [f"POST {PUSH}"] * 4)
    assert [e.details["reason"] for e in entries] == [
        "the request body is over 4000 bytes",
        "a push carries at most 3 changes",
        "the request body is not valid JSON",
        "the request does not match its schema",
    ]
    assert_chain_intact(hub.app)


def test_a_gzip_bomb_or_broken_gzip_is_refused_before_the_hub_reads_it_and_audited(hub: Hub, live: str) -> None:
    lee, _, _ = partners(hub, live)
    before = witness(hub.app)
    inflated = b"0" * (int(hub.app.config["MAX_CONTENT_LENGTH"]) + 1)
    bomb = gzip.compress(inflated)  # a few KiB on the wire, over the limit once inflated
    headers = signed_headers(lee, "POST", PUSH, inflated) | {"Content-Encoding": "gzip"}
    answer = error_body(raw(live, "POST", PUSH, data=bomb, headers=headers), 413)
    assert answer["message"] == "body too large once inflated"
    headers = signed_headers(lee, "POST", PUSH, b"{}") | {"Content-Encoding": "gzip"}
    answer = error_body(raw(live, "POST", PUSH, data=b"\x1f\x8b not gzip at all", headers=headers), 400)
    assert answer["message"] == "body is not valid gzip"
    unchanged_but_audit(before, witness(hub.app))
    entries = refused_requests(hub.app, before, lee, [f"POST {PUSH}"] * 2)
    assert [e.details["reason"] for e in entries] == ["body too large once inflated", "body is not valid gzip"]
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
