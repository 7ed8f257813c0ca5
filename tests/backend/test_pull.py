"""GET /api/v1/sync/pull (backend/pull.py, backend/log.py) over real HTTP, on both databases."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from backend import keystore
from backend.db import db
from backend.models import LogEntry, LogHead, RegistryEntry
from crypto import KeyRegistry, VerificationError, verify_checkpoint
from crypto.clock import as_utc
from sync import ProvenanceError, Verifier

from .helpers import RESOURCE, Hub, Officer, error_body, raw, rows

SECRET = "combination 4-8-15-16-23-42"


def pull_path(cursor: int, limit: int | None = None) -> str:
    return f"/api/v1/sync/pull?cursor={cursor}" + (f"&limit={limit}" if limit else "")


def record_pulls(officer: Officer) -> list[dict[str, Any]]:
    """Keep every answer the officer's client gets from pull."""
    answers: list[dict[str, Any]] = []
    inner = officer.client.pull

    def pull(cursor: int, limit: int | None = None) -> dict[str, Any]:
        answer = inner(cursor, limit)
        answers.append(answer)
        return answer

    officer.client.pull = pull  # type: ignore[method-assign]
    return answers


def next_second() -> None:
    """Sleep into the next whole second of the hub's clock (signed objects carry whole seconds)."""
    time.sleep(1.02 - datetime.now(UTC).microsecond / 1e6)


def test_an_agency_sees_its_own_records_and_what_agreements_share(hub: Hub, live: str) -> None:
    for code in ("SPD", "CSO", "FBI"):
        hub.agency(code)
    hub.agreement("SPD", "CSO", ["resources"], withhold=["notes"])
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    pat = Officer(live, hub.token("SPD", "Ofc. Pat"))
    kim = Officer(live, hub.token("CSO", "Dep. Kim"))
    ray = Officer(live, hub.token("FBI", "Agent Ray"))
    car = lee.create(values={**RESOURCE, "notes": SECRET})
    liaison = lee.create("contacts", {"name": "Lt. Diaz", "role": "liaison", "phone": "555-0100"})
    kims = kim.create("contacts", {"name": "Sgt. Ortiz", "role": "commander"})
    assert [r["status"] for r in lee.push(car, liaison) + kim.push(kims)] == ["accepted"] * 3
    # CSO: its own contact and SPD's resource (verified by Officer.pull), not SPD's contact
    assert [c.id for c in kim.pull()] == [car["id"], kims["id"]]
    view = kim.state.view()
    assert set(view) == {car["record_id"], kims["record_id"]}
    assert view[car["record_id"]]["name"] == "Unit 12" and "notes" not in view[car["record_id"]]
    assert set(kim.state.records[car["record_id"]].withheld()) == {"notes"}
    # SPD sees only its own; FBI sees nothing, and its cursor still moves to the end of the log
    assert [c.id for c in lee.pull()] == [car["id"], liaison["id"]]
    assert ray.pull() == [] and ray.cursor == 3 and ray.last["more"] is False
    # the withheld value is nowhere in what CSO receives, nor its salt; SPD's own officer gets it
    answer = raw(live, "GET", pull_path(0), officer=kim)
    assert answer.status_code == 200
    salt = car["fields"]["notes"]["salt"]
    assert "Unit 12" in answer.text
    assert SECRET not in answer.text and salt not in answer.text
    (pulled,) = [c["change"] for c in answer.json()["changes"] if c["change"]["id"] == car["id"]]
    assert set(pulled["fields"]["notes"]) == {"digest"}
    assert pulled["fields"]["name"] == car["fields"]["name"] and pulled["signature"] == car["signature"]
    answer = raw(live, "GET", pull_path(0), officer=pat)
    assert SECRET in answer.text and salt in answer.text
    assert "Lt. Diaz" in answer.text and "Lt. Diaz" not in raw(live, "GET", pull_path(0), officer=kim).text


def test_pull_pages_in_log_order_and_the_cursor_skips_what_is_invisible(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    hub.agency("CSO")
    hub.agreement("SPD", "CSO", ["resources"])
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("CSO", "Dep. Kim"))
    contact = {"name": "Lt. Diaz", "role": "liaison"}
    wires = [
        lee.create(),
        lee.create("contacts", contact),  # not shared with CSO
        lee.create(),
        lee.create("contacts", contact),
        lee.create(),
        lee.create(),
        lee.create(),
        lee.create("contacts", contact),  # an invisible tail
    ]
    assert [r["status"] for r in lee.push(*wires)] == ["accepted"] * 8
    visible = [w["id"] for w in wires if w["collection"] == "resources"]
    assert len(visible) == 5
    answers = record_pulls(kim)
    got = kim.pull(limit=2)
    assert [c.id for c in got] == visible  # all five, in log order, once each
    assert [[c["seq"] for c in a["changes"]] for a in answers] == [[1, 3], [5, 6], [7]]
    assert [(a["next_cursor"], a["more"]) for a in answers] == [(3, True), (6, True), (8, False)]
    assert kim.cursor == 8
    # SPD's own officer pages through all eight
    answers = record_pulls(lee)
    assert [c.id for c in lee.pull(limit=3)] == [w["id"] for w in wires]
    assert [a["next_cursor"] for a in answers] == [3, 6, 8] and answers[-1]["more"] is False
    # nothing new: an empty page at the end, not an error
    empty = kim.client.pull(8, 2)
    assert (empty["changes"], empty["next_cursor"], empty["more"]) == ([], 8, False)


def test_cursor_past_the_log_checkpoint_and_bad_parameters(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    assert [r["status"] for r in lee.push(lee.create(), lee.create(), lee.create())] == ["accepted"] * 3
    # a cursor beyond the log: this hub is older than what the laptop has seen
    body = error_body(raw(live, "GET", pull_path(4), officer=lee), 409)
    assert body["error"] == "conflict" and "beyond" in body["message"] and body["details"] == {"size": 3}
    # the checkpoint: the log head signed by the hub key the registry names
    answer = lee.client.pull(0)
    registry = KeyRegistry.verify(lee.client.registry())
    checkpoint = verify_checkpoint(answer["checkpoint"], registry.hub_key)
    (head,) = rows(hub.app, LogHead)
    assert checkpoint.size == head.size == len(rows(hub.app, LogEntry)) == 3
    assert checkpoint.head == head.head == rows(hub.app, LogEntry, order_by=LogEntry.seq)[-1].chain
    with pytest.raises(VerificationError):
        verify_checkpoint({**answer["checkpoint"], "size": 2}, registry.hub_key)
    with pytest.raises(VerificationError):  # no agency key can pass for the hub's
        verify_checkpoint(answer["checkpoint"], registry.current_key("SPD"))
    # a page's checkpoint is the whole log's, not the page's
    assert lee.client.pull(0, 1)["checkpoint"]["size"] == 3
    # bad parameters: 422 naming them
    for path, field in [
        ("/api/v1/sync/pull?cursor=-1", "cursor"),
        ("/api/v1/sync/pull?cursor=abc", "cursor"),
        ("/api/v1/sync/pull?cursor=0&limit=0", "limit"),
        ("/api/v1/sync/pull?cursor=0&limit=10001", "limit"),
        ("/api/v1/sync/pull?cursor=0&since=5", "since"),
    ]:
        body = error_body(raw(live, "GET", path, officer=lee), 422)
        assert body["error"] == "unprocessable" and set(body["details"]) == {field}, (path, body)


def test_a_grown_registry_is_fetched_again_after_a_new_agency_or_a_rotation(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    hub.agency("CSO")
    hub.agreement("SPD", "CSO", ["resources"])
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("CSO", "Dep. Kim"))
    old = lee.create()
    assert [r["status"] for r in lee.push(old)] == ["accepted"]
    pinned = len(kim.registry.entries)
    hub.agency("FBI")
    assert [c.id for c in kim.pull()] == [old["id"]]
    assert kim.last["registry_size"] == len(kim.registry.entries) == pinned + 1 == len(rows(hub.app, RegistryEntry))
    assert "FBI" in kim.registry.agencies
    # SPD rotates its key; a laptop enrolled after it has a certificate by the new key
    stale = kim.registry
    next_second()  # see test_a_rotation_in_the_same_second_as_an_enrollment_keeps_the_certificate_valid
    hub.rotate("SPD")
    tom = Officer(live, hub.token("SPD", "Ofc. Tom"))
    new = tom.create()
    assert [r["status"] for r in tom.push(new)] == ["accepted"]
    with pytest.raises(ProvenanceError):  # the registry kim had cannot verify it...
        Verifier(stale).verify(new, tom.certificate)
    assert [c.id for c in kim.pull()] == [new["id"]]  # ...so kim fetched the grown one, and verified
    assert len(kim.registry.agencies["SPD"]) == 2
    assert kim.last["registry_size"] == len(kim.registry.entries) == pinned + 2
    # what the old key certified still verifies, for a laptop enrolled after the rotation
    fresh = Officer(live, hub.token("CSO", "Dep. Fox"))
    assert [c.id for c in fresh.pull()] == [old["id"], new["id"]]


def test_a_rotation_in_the_same_second_as_an_enrollment_keeps_the_certificate_valid(
    hub: Hub, live: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr(keystore, "now", lambda: second)  # agency, certificate and rotation in one second
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    hub.rotate("SPD")
    results = lee.push(lee.create())
    assert [r["status"] for r in results] == ["accepted"], results


def test_the_owner_of_a_resource_sees_the_reservations_it_must_approve(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    hub.agency("CSO")
    hub.agreement("SPD", "CSO", ["resources"])
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("CSO", "Dep. Kim"))
    car = lee.create()
    assert [r["status"] for r in lee.push(car)] == ["accepted"]
    ask = kim.create(
        "reservations",
        {
            "resource_id": car["record_id"],
            "starts_at": "2030-01-03T08:00:00Z",
            "ends_at": "2030-01-03T10:00:00Z",
            "state": "requested",
        },
    )
    assert [r["status"] for r in kim.push(ask)] == ["accepted"]
    assert ask["id"] in [c.id for c in lee.pull()]


def reference_pull(agency: str, cursor: int, limit: int) -> dict[str, Any]:
    """The answer as pull built it before it spliced stored text: every visible entry read by one
    OR, every change parsed from the log's JSON column, withheld, the answer a dict."""
    from sqlalchemy import and_, or_, select

    from backend import agreements, log
    from backend.models import Device
    from crypto import withhold

    head = log.read_head()
    shares = agreements.shares_to(agency)
    visible = [
        LogEntry.agency == agency,
        and_(LogEntry.collection == "reservations", LogEntry.resource_agency == agency),
    ] + [and_(LogEntry.agency == o, LogEntry.collection.in_(sorted(s.collections))) for o, s in shares.items()]
    entries = list(
        db.session.scalars(
            select(LogEntry)
            .where(LogEntry.seq > cursor, LogEntry.seq <= head.size, or_(*visible))
            .order_by(LogEntry.seq)
            .limit(limit)
        )
    )
    changes = []
    for e in entries:
        share = shares.get(e.agency)
        own = e.agency == agency or e.resource_agency == agency
        wire = withhold(e.wire, share.withhold) if not own and share is not None and share.withhold else e.wire
        changes.append({"seq": e.seq, "change": wire})
    next_cursor = entries[-1].seq if len(entries) == limit else head.size
    devices = {e.device for e in entries}
    return {
        "changes": changes,
        "certificates": {d.id: d.certificate for d in db.session.scalars(select(Device).where(Device.id.in_(devices)))},
        "next_cursor": next_cursor,
        "more": next_cursor < head.size,
        "registry_size": db.session.query(RegistryEntry).count(),
        "checkpoint": log.checkpoint(head.size, head.head),
    }


def test_the_spliced_answer_is_the_reference_answer_and_withholds_the_same(
    hub: Hub, live: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend import log, pull

    for code in ("SPD", "CSO", "FBI", "DEA"):
        hub.agency(code)
    hub.agreement("SPD", "CSO", ["resources", "reservations"], withhold=["notes", "status"])
    hub.agreement("FBI", "CSO", ["resources"])
    hub.agreement("CSO", "SPD", ["resources"])  # so that SPD may book CSO's resource
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("CSO", "Dep. Kim"))
    ray = Officer(live, hub.token("FBI", "Agent Ray"))
    dee = Officer(live, hub.token("DEA", "Agent Dee"))
    tricky = 'a "quoted" \\ back\\slash, caf\u00e9 \u2603 and "notes": 1'
    car = lee.create(values={**RESOURCE, "notes": SECRET})
    van = lee.create(values={**RESOURCE, "name": tricky, "notes": tricky})  # escapes: parsed, withheld
    bare = lee.create(values={"kind": "vehicle", "name": "no withheld field named", "quantity": 2})
    mine = kim.create(values={**RESOURCE, "notes": "CSO's own note"})
    assert [r["status"] for r in lee.push(car, van, bare) + kim.push(mine)] == ["accepted"] * 4
    edits = [lee.change("resources", {"notes": f"{SECRET} edit {i}"}, record_id=car["record_id"]) for i in range(3)]
    edits.append(lee.change("resources", {"quantity": 7}, record_id=bare["record_id"]))
    book = {"starts_at": "2030-01-03T08:00:00Z", "ends_at": "2030-01-03T10:00:00Z", "state": "requested"}
    own_booking = kim.create("reservations", {**book, "resource_id": mine["record_id"]})  # visible two ways
    spd_booking = lee.create("reservations", {**book, "resource_id": mine["record_id"]})
    results = lee.push(*edits) + kim.push(own_booking) + lee.push(spd_booking)
    assert [r["status"] for r in results] == ["accepted"] * 6, results
    fbi = ray.create(values={**RESOURCE, "notes": "FBI shares its notes"})
    hidden = dee.create(values={**RESOURCE, "name": "DEA only", "notes": "DEA secret"})
    contact = lee.create("contacts", {"name": "Lt. Diaz", "role": "liaison"})  # not shared
    assert [r["status"] for r in ray.push(fbi) + dee.push(hidden) + lee.push(contact)] == ["accepted"] * 3
    second = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr(log, "now", lambda: second)  # one checkpoint time: Ed25519 signs deterministically
    with hub.app.app_context():
        size = log.read_head().size
        for agency in ("SPD", "CSO", "FBI", "DEA"):
            for cursor in range(size + 1):
                for limit in (1, 2, 3, 500):
                    expected = reference_pull(agency, cursor, limit)
                    page = pull.page(agency, cursor, limit)
                    body = page.body()
                    assert json.loads(body) == page.answer() == expected, (agency, cursor, limit)
    # what leaves the hub for CSO: no SPD note or status value nor its salt, in any form; nothing of
    # DEA's nor SPD's contact; FBI's shared notes, SPD's booking of CSO's resource whole (CSO decides it)
    answer = raw(live, "GET", pull_path(0), officer=kim)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    text = answer.text
    for wire in (car, *edits[:3]):
        (notes,) = [v for k, v in wire["fields"].items() if k == "notes"]
        assert notes["value"] not in text and notes["salt"] not in text
    # the van's name, not its notes, in either form (its change was parsed and written again)
    assert sum(text.count(form) for form in {json.dumps(tricky), orjson.dumps(tricky).decode()}) == 1
    assert van["fields"]["notes"]["salt"] not in text and car["fields"]["status"]["salt"] not in text
    # DEA's code quoted (a bare "DEA" can turn up inside a random base64 salt or signature)
    assert '"DEA"' not in text and "DEA only" not in text and "DEA secret" not in text
    assert "Lt. Diaz" not in text and "FBI shares its notes" in text
    pulled = {c["change"]["id"]: c["change"] for c in answer.json()["changes"]}
    assert set(pulled) == {w["id"] for w in (car, van, bare, mine, *edits, own_booking, spd_booking, fbi)}
    assert pulled[van["id"]]["fields"]["name"] == van["fields"]["name"]
    assert set(pulled[van["id"]]["fields"]["notes"]) == {"digest"}
    assert pulled[spd_booking["id"]] == spd_booking and pulled[mine["id"]] == mine and pulled[fbi["id"]] == fbi
    assert [c.id for c in kim.pull(limit=4)] == [w["id"] for w in (car, van, bare, mine, *edits, own_booking,
                                                                   spd_booking, fbi)]  # fmt: skip


def test_last_pull_at_is_written_at_a_pulls_last_page_and_while_it_is_old_not_at_every_page(
    hub: Hub, live: str
) -> None:
    from backend.api import PULL_SEEN_EVERY
    from backend.models import Device

    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    assert [r["status"] for r in lee.push(*[lee.create() for _ in range(3)])] == ["accepted"] * 3

    def seen() -> datetime | None:
        (device,) = rows(hub.app, Device, Device.id == lee.device_id)
        return as_utc(device.last_pull_at) if device.last_pull_at else None

    def set_seen(moment: datetime) -> None:
        with hub.app.app_context():
            db.session.get(Device, lee.device_id).last_pull_at = moment
            db.session.commit()

    assert seen() is None
    assert lee.client.pull(0, 1)["more"]  # a first page, never pulled before: written
    first = seen()
    assert first is not None and abs((datetime.now(UTC) - first).total_seconds()) < 5
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=PULL_SEEN_EVERY - 10)
    set_seen(recent)
    assert lee.client.pull(1, 1)["more"]  # a middle page, the last one recent: not written again
    assert seen() == recent
    old = recent - timedelta(seconds=20)
    set_seen(old)
    assert lee.client.pull(1, 1)["more"]  # ... but once it is PULL_SEEN_EVERY s old, it is
    assert seen() != old and seen() > recent
    set_seen(recent)
    assert not lee.client.pull(2, 1)["more"]  # the last page: always written
    assert seen() > recent
