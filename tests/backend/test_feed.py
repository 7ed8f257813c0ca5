"""GET /api/v1/sync/feed: a device's own feed as the hub holds it, and the log's head at a size.

Real hub over HTTP on loopback, SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from crypto import change_hash, verify_checkpoint

from .helpers import Hub, Officer, error_body, raw, sign_as


def feed(officer: Officer, after: int = 0, since: int = 0) -> dict[str, Any]:
    return officer.client.feed(after=after, since=since)


def test_a_device_sees_its_own_feed_only(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee, ray = Officer(live, hub.token("SPD", "Lee")), Officer(live, hub.token("SPD", "Ray"))
    mine = [lee.create(), lee.create(), lee.create()]
    lee.push(*mine)
    ray.push(ray.create())
    answer = feed(lee)
    assert (answer["device"], answer["seq"], answer["hash"]) == (lee.device_id, 3, change_hash(mine[-1]))
    assert answer["links"] == [
        {"seq": i + 1, "hash": change_hash(wire), "status": "accepted"} for i, wire in enumerate(mine)
    ]
    assert [link["seq"] for link in feed(lee, after=2)["links"]] == [3]
    other = feed(ray)
    assert other["device"] == ray.device_id and [link["seq"] for link in other["links"]] == [1]
    assert {link["hash"] for link in other["links"]}.isdisjoint({change_hash(w) for w in mine})
    assert raw(live, "GET", f"/api/v1/sync/feed?device={lee.device_id}", officer=ray).status_code == 422  # no such knob


def test_the_answer_carries_a_checkpoint_and_the_log_head_at_a_size(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Lee"))
    lee.push(lee.create())
    lee.pull()
    at_one = lee.last["checkpoint"]["head"]
    lee.push(lee.create(), lee.create())
    answer = feed(lee, since=1)
    cp = verify_checkpoint(answer["checkpoint"], lee.registry.hub_key)
    assert cp.size == 3 and answer["chain_at"] == at_one != cp.head
    assert feed(lee, since=3)["chain_at"] == cp.head
    assert feed(lee, since=0)["chain_at"] is None and feed(lee, since=9)["chain_at"] is None  # beyond: a rollback


def test_unsigned_and_quarantined_devices_are_refused(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Lee"))
    assert error_body(raw(live, "GET", "/api/v1/sync/feed"), 401)["error"]
    first = lee.create()
    lee.push(first)
    lee.push(sign_as(lee, seq=1, prev=None))  # another change at seq 1: equivocation
    body = error_body(raw(live, "GET", "/api/v1/sync/feed", officer=lee), 403)
    assert "quarantined" in body["message"]
    assert error_body(raw(live, "GET", "/api/v1/sync/feed?after=-1", officer=lee), 403)  # refused before parsing


def test_the_spec_documents_the_feed(hub: Hub, live: str) -> None:
    spec = raw(live, "GET", "/api/v1/openapi.json").json()
    operation = spec["paths"]["/api/v1/sync/feed"]["get"]
    assert operation["security"] == [{"deviceSignature": []}]
    assert {p["name"] for p in operation["parameters"]} == {"after", "since"}
    schema = spec["components"]["schemas"]["FeedResponse"]
    assert set(schema["required"]) == {"device", "seq", "hash", "links", "more", "chain_at", "checkpoint"}
