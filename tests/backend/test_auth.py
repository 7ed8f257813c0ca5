"""Device authentication of API requests (backend/api/auth.py), over real HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from backend.api import auth as api_auth
from backend.models import LogEntry, Nonce
from crypto import SigningKey

from .helpers import Hub, Officer, audit_entries, error_body, raw, rows, sign_as, signed_headers

PUSH = "/api/v1/sync/push"


def _refused(hub: Hub) -> list[object]:
    return audit_entries(hub.app, "request.refused")


def test_unsigned_forged_and_stale_requests_are_refused_with_401(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    body = {"changes": [sign_as(lee)]}
    got = error_body(raw(live, "POST", PUSH, body), 401)
    assert got["error"] == "unauthorized" and "not signed" in got["message"]
    got = error_body(raw(live, "GET", "/api/v1/sync/pull?cursor=0"), 401)
    assert "not signed" in got["message"]
    # signed, but by a device the hub never enrolled
    stranger = Officer.__new__(Officer)
    stranger.key, stranger.device_id = SigningKey.generate(), "8b0d7f7e-0000-4000-8000-000000000000"
    got = error_body(raw(live, "POST", PUSH, body, officer=stranger), 401)
    assert "unknown device" in got["message"]
    refused = _refused(hub)
    assert [r.actor for r in refused] == ["device:unknown", "device:unknown", f"device:{stranger.device_id}"]
    assert [r.object for r in refused] == [f"POST {PUSH}", "GET /api/v1/sync/pull", f"POST {PUSH}"]
    assert all(r.outcome == "refused" for r in refused)
    assert rows(hub.app, LogEntry) == []
    kim = Officer(live, hub.token("SPD", "Dep. Kim"))
    data = json.dumps({"changes": [lee.create()]}).encode()
    good = signed_headers(lee, "POST", PUSH, data)
    sig = good["X-Fieldsync-Signature"]
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    hour = timedelta(hours=1)
    cases = [
        ("tampered signature", {**good, "X-Fieldsync-Signature": flipped}, data, "signature"),
        ("garbage signature", {**good, "X-Fieldsync-Signature": "not base64 at all"}, data, "signature"),
        ("another body", good, data.replace(b'"Unit 12"', b'"Unit 13"'), "signature"),
        (
            "another device's key",
            signed_headers(kim, "POST", PUSH, data) | {"X-Fieldsync-Device": lee.device_id},
            data,
            "signature",
        ),
        ("an hour old", signed_headers(lee, "POST", PUSH, data, at=datetime.now(UTC) - hour), data, "stale"),
        ("an hour ahead", signed_headers(lee, "POST", PUSH, data, at=datetime.now(UTC) + hour), data, "stale"),
        ("short nonce", signed_headers(lee, "POST", PUSH, data, nonce="abc"), data, "nonce"),
    ]
    for why, headers, sent, words in cases:
        before = len(_refused(hub))
        got = error_body(raw(live, "POST", PUSH, data=sent, headers=headers), 401)
        assert got["error"] == "unauthorized", why
        assert words in got["message"], (why, got["message"])
        after = _refused(hub)
        assert len(after) == before + 1, why
        assert after[-1].actor == f"device:{lee.device_id}" and after[-1].agency == "SPD", why
        assert words in after[-1].details["reason"], why
    # the query string is signed too: a pull signed for cursor=0 cannot be replayed as cursor=1
    headers = signed_headers(lee, "GET", "/api/v1/sync/pull?cursor=0")
    error_body(raw(live, "GET", "/api/v1/sync/pull?cursor=1", headers=headers), 401)
    assert rows(hub.app, LogEntry) == []
    # the genuine request still goes through
    response = raw(live, "POST", PUSH, data=data, headers=good)
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["accepted"]


def test_replayed_requests_get_401_and_a_revoked_device_403(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    data = json.dumps({"changes": [lee.create()]}).encode()
    headers = signed_headers(lee, "POST", PUSH, data)
    first = raw(live, "POST", PUSH, data=data, headers=headers)
    assert first.status_code == 200 and first.json()["results"][0]["status"] == "accepted"
    got = error_body(raw(live, "POST", PUSH, data=data, headers=headers), 401)
    assert "replay" in got["message"]
    (refusal,) = _refused(hub)
    assert refusal.actor == f"device:{lee.device_id}" and "replay" in refusal.details["reason"]
    assert len(rows(hub.app, LogEntry)) == 1
    # a pull replayed, too
    path = "/api/v1/sync/pull?cursor=0"
    headers = signed_headers(lee, "GET", path)
    assert raw(live, "GET", path, headers=headers).status_code == 200
    assert "replay" in error_body(raw(live, "GET", path, headers=headers), 401)["message"]
    # revoked: 403 at once, for every request
    kim = Officer(live, hub.token("SPD", "Dep. Kim"))
    second = lee.create()
    assert [r["status"] for r in lee.push(second)] == ["accepted"]
    hub.revoke(lee.device_id)
    pending = lee.create()
    got = error_body(raw(live, "POST", PUSH, {"changes": [pending]}, officer=lee), 403)
    assert got["error"] == "forbidden" and "revoked" in got["message"]
    got = error_body(raw(live, "GET", "/api/v1/sync/pull?cursor=0", officer=lee), 403)
    assert "revoked" in got["message"]
    path = f"/api/v1/records/{second['record_id']}/provenance"
    assert "revoked" in error_body(raw(live, "GET", path, officer=lee), 403)["message"]
    refused = _refused(hub)
    assert len(refused) == 5
    assert all(r.actor == f"device:{lee.device_id}" and "revoked" in r.details["reason"] for r in refused[2:])
    assert [e.object for e in audit_entries(hub.app, "device.revoke")] == [lee.device_id]
    # what it wrote before stays, and still verifies against the registry with the revocation
    assert len(kim.pull()) == 2
    revocation = kim.registry.revocation(lee.device_id)
    assert revocation is not None and revocation.after_seq == 2
    assert len(rows(hub.app, LogEntry)) == 2


def test_a_nonce_is_kept_for_twice_the_window_then_purged(hub: Hub, live: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The nonce store's retention at its boundary, by a controlled hub clock. A request signed at T is
    fresh while the hub's clock is within REQUEST_MAX_SKEW (S) of T; its nonce, seen as early as T - S,
    must be kept until T + S = seen + 2 S, and may go after that (a replay is stale by then)."""
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    skew = timedelta(seconds=int(hub.app.config["REQUEST_MAX_SKEW"]))
    seen = datetime.now(UTC).replace(microsecond=0)
    clock = [seen]
    monkeypatch.setattr(api_auth, "now", lambda: clock[0])
    path = "/api/v1/sync/pull?cursor=0"

    def fresh() -> None:  # another request at the hub's time: it purges what has expired
        assert raw(live, "GET", path, headers=signed_headers(lee, "GET", path, at=clock[0])).status_code == 200

    def kept() -> set[str]:
        return {n.nonce for n in rows(hub.app, Nonce, Nonce.device == lee.device_id)}

    early = signed_headers(lee, "GET", path, at=seen + skew)  # the laptop's clock S ahead: still fresh
    assert raw(live, "GET", path, headers=early).status_code == 200
    nonce = early["X-Fieldsync-Nonce"]
    assert nonce in kept()
    clock[0] = seen + 2 * skew  # the last moment of its retention: the request is still fresh, so still kept
    fresh()
    assert nonce in kept()
    got = error_body(raw(live, "GET", path, headers=early), 401)
    assert got["message"] == "replayed request: this nonce was already used"
    clock[0] = seen + 2 * skew + timedelta(seconds=1)  # one second past it: purged, and a replay is stale
    fresh()
    assert nonce not in kept()
    got = error_body(raw(live, "GET", path, headers=early), 401)
    assert got["details"]["reason"] == "clock_skew" and "stale request" in got["message"]
