"""A field day: two agencies under an agreement, officers editing offline, syncing in any order.

Every step goes through the two command lines; the hub runs as its own process on
loopback and is stopped while the officers work, to prove the edits need no hub.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .conftest import Hub, Officer, hub_view, replica_view

# The test's own reading of the agreement it records: CSO sees SPD's resources and
# reservations, without the value of `notes`, and may write `status`.
SHARES = {("SPD", "CSO"): ({"resources", "reservations"}, {"notes"})}
NOUNS = {"resources": "resource", "contacts": "contact", "reservations": "reservation"}
NOTES = "spare key taped under the driver seat"


def sync_round(people: list[Officer], rng: random.Random) -> tuple[list[str], dict[str, Any]]:
    order = list(people)
    rng.shuffle(order)
    return [o.name for o in order], {o.name: o.sync() for o in order}


LOOKED_AT = ("resources", "contacts")  # (no reservations in this story)


def look(person: Officer) -> tuple[dict[str, str], dict[str, Any]]:
    """``list --json --deleted`` of each collection looked at, and ``status --json``."""
    lists = {c: person.run(NOUNS[c], "list", "--json", "--deleted").stdout for c in LOOKED_AT}
    return lists, person.status()


def visible_ids(hub: Hub, agency: str) -> set[str]:
    return {rid for collection in NOUNS for rid in hub_view(hub, agency, collection, SHARES)}


def expected_conflicts(hub: Hub, agency: str) -> set[str]:
    """The hub's conflicts on records the agency sees, less those on fields withheld from it
    (docs/protocol.md: a replica cannot compare a withheld value, the hub reports it)."""
    seen = visible_ids(hub, agency)
    withheld = {field for (owner, to), (_, fields) in SHARES.items() if to == agency for field in fields}
    return {
        c["id"]
        for c in hub.conflicts()
        if c["record_id"] in seen and (c["agency"] == agency or c["field"] not in withheld)
    }


def test_two_agencies_offline_edits_converge_to_the_hub(hub_process: Hub, officer: Any) -> None:
    hub = hub_process
    out = hub.admin(
        "agreement",
        "add",
        "--from",
        "SPD",
        "--to",
        "CSO",
        "--collections",
        "resources,reservations",
        "--withhold",
        "notes",
        "--write",
        "status",
    ).stdout
    assert "CSO sees SPD's resources, reservations" in out
    a, b, c = officer("SPD", "adams"), officer("SPD", "baker"), officer("CSO", "cruz")

    # Online: Adams creates SPD's records; everyone syncs.
    unit12 = a.add("resource", kind="vehicle", name="Unit 12", notes=NOTES)
    comes_back = a.add("resource", kind="equipment", name="Generator 3")  # deleted, then edited
    stays_gone = a.add("resource", kind="equipment", name="Light tower 7")  # edited, then deleted
    liaison = a.add("contact", name="Sgt. Okafor", role="liaison", phone="555-0100")
    for person in (a, b, c):
        person.sync()
    boat = c.add("resource", kind="vehicle", name="Marine 1")  # CSO's own: no agreement shares it

    # Offline: the hub is down; every edit below is made with no hub at all.
    hub.stop()
    assert not hub.healthy()
    a.update("resource", unit12, status="deployed")
    b.update("resource", unit12, status="maintenance")  # concurrent with Adams, same field
    b.update("resource", unit12, description="brakes squeal")  # another field: no conflict
    a.run("delete", comes_back)
    b.update("resource", comes_back, name="Generator 3 (spare)")  # concurrent with the delete, later
    b.update("resource", stays_gone, name="Light tower 7B")
    a.run("delete", stays_gone)  # concurrent with Baker's edit, later
    c.update("resource", unit12, status="out_of_service")  # granted by the agreement
    local = c.update("resource", unit12, name="CSO Unit 12")  # not granted
    assert local["name"] == "CSO Unit 12" and local["status"] == "out_of_service"  # the laptop takes it for now

    failed = a.sync(check=False)
    assert failed.returncode != 0
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert "unreachable" in failed.stderr, failed.stderr
    offline = a.status()
    assert offline["pending"] == 3 and "unreachable" in (offline["last_sync_error"] or ""), offline

    # Back online: sync in a shuffled order, then everyone again, twice.
    hub.start()
    seed = int(os.environ.get("E2E_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    orders = []
    order, first = sync_round([a, b, c], rng)
    orders.append(order)
    for _ in range(2):
        orders.append(sync_round([a, b, c], rng)[0])
    where = f"(sync orders {orders}, E2E_SEED={seed})"

    # Cruz's write of `name` was refused, with the reason, and the laptop agrees with the hub again.
    pushed = first[c.name]
    assert "pushed 3 (2 accepted, 1 refused by the hub)" in pushed.stdout, (pushed.stdout, where)
    refusal = [line for line in pushed.stderr.splitlines() if "REFUSED" in line]
    assert len(refusal) == 1, (pushed.stderr, where)
    assert unit12 in refusal[0] and re.search(r"\bname\b", refusal[0]), refusal

    # The hub's merge follows the rules: per field the latest (hlc, device) wins.
    records = {r["record_id"]: r for r in hub.records()}
    u12 = records[unit12]["values"]
    assert u12 == {
        "kind": "vehicle",
        "name": "Unit 12",
        "notes": NOTES,
        "status": "out_of_service",  # Cruz's granted write was the last of three concurrent ones
        "description": "brakes squeal",
    }, where
    assert records[comes_back]["deleted"] is False and records[comes_back]["values"]["name"] == "Generator 3 (spare)"
    assert records[stays_gone]["deleted"] is True
    assert records[boat]["agency"] == "CSO" and records[liaison]["collection"] == "contacts"

    conflicts = hub.conflicts()
    assert Counter((x["record_id"], x["field"]) for x in conflicts) == {
        (unit12, "status"): 3,
        (comes_back, "_deleted"): 1,
        (stays_gone, "_deleted"): 1,
    }, conflicts
    devices = {a.device_id: "a", b.device_id: "b", c.device_id: "c"}
    assert sorted(
        devices[x["loser"]["device"]] + devices[x["winner"]["device"]] for x in conflicts if x["field"] == "status"
    ) == ["ab", "ac", "bc"]

    # Every laptop holds exactly the hub's merged state for what its agency may see.
    # (The laptops are independent now: ask them side by side.)
    with ThreadPoolExecutor(3) as pool:
        answers = dict(zip((a.name, b.name, c.name), pool.map(look, (a, b, c)), strict=True))
    raw = {f"{name}/{coll}": lists[coll] for name, (lists, _) in answers.items() for coll in LOOKED_AT}
    statuses = {name: info for name, (_, info) in answers.items()}
    for person in (a, b, c):
        for collection in LOOKED_AT:
            got = replica_view(json.loads(raw[f"{person.name}/{collection}"]))
            want = hub_view(hub, person.agency, collection, SHARES)
            assert got == want, f"{person} {collection} differs from the hub {where}"
        info = statuses[person.name]
        assert info["pending"] == 0 and info["last_sync_error"] is None, info
        # ... and the same conflicts.
        want_conflicts = expected_conflicts(hub, person.agency)
        listed = json.loads(person.run("conflicts", "--json").stdout)
        got_conflicts = {row["id"] for row in listed["conflicts"]}
        assert got_conflicts == {row["id"] for row in person.replica_rows("SELECT id FROM conflicts")}
        assert got_conflicts == want_conflicts, f"{person} conflicts {where}"
        assert info["conflicts"] == len(want_conflicts), info

    # The other agency sees only what the agreement shares.
    assert len(expected_conflicts(hub, "CSO")) == 5  # all on status and deletion: none withheld
    assert NOTES not in raw["cruz/resources"]
    assert liaison not in raw["cruz/contacts"] and raw["cruz/contacts"].strip() == "[]"
    for person in (a, b):
        assert boat not in raw[f"{person.name}/resources"]
        assert liaison in raw[f"{person.name}/contacts"]
    cruz_unit12 = next(r for r in json.loads(raw["cruz/resources"]) if r["id"] == unit12)
    assert cruz_unit12["name"] == "Unit 12" and cruz_unit12["status"] == "out_of_service"
    assert cruz_unit12["withheld"] == ["notes"] and "notes" not in cruz_unit12
    cruz_changes = c.replica_rows("SELECT record_id, wire FROM changes")
    assert liaison not in {row["record_id"] for row in cruz_changes}  # never even received
    assert not any(NOTES in row["wire"] for row in cruz_changes)  # only its digest crossed

    # Cruz's refused write is reported to the officer, with the reason.
    rejected = statuses["cruz"]["rejected"]
    assert len(rejected) == 1 and rejected[0]["record_id"] == unit12, rejected
    assert re.search(r"\bname\b", rejected[0]["reason"]), rejected
    assert list(rejected[0]["details"]) == ["name"], rejected  # field -> messages, as `sync --json` gives
    audited = hub.query(
        "SELECT details FROM audit_log WHERE action = 'change.rejected' AND actor = ?", (f"device:{c.device_id}",)
    )
    assert len(audited) == 1 and re.search(r"\bname\b", audited[0]["details"]), audited


def test_double_booking_by_two_offline_officers(hub_process: Hub, officer: Any) -> None:
    hub = hub_process
    a, b = officer("SPD", "adams"), officer("SPD", "baker")
    van = a.add("resource", kind="vehicle", name="Prisoner van 2")
    a.sync()
    b.sync()

    hub.stop()
    first = a.add_record(
        "reservation", resource_id=van, starts_at="2026-12-01T08:00:00Z", ends_at="2026-12-01T12:00:00Z"
    )
    second = b.add_record(
        "reservation", resource_id=van, starts_at="2026-12-01T10:00:00Z", ends_at="2026-12-01T14:00:00Z"
    )
    touching = a.add_record(  # starts when Baker's ends: touching is not overlapping
        "reservation", resource_id=van, starts_at="2026-12-01T14:00:00Z", ends_at="2026-12-01T16:00:00Z"
    )
    assert first["state"] == second["state"] == touching["state"] == "approved"  # own agency's resource

    hub.start()
    a.sync()
    b.sync()
    a.sync()

    pair = sorted([first["id"], second["id"]])
    rows = hub.query("SELECT resource_id, first, second, overlap_start, overlap_end FROM double_bookings")
    assert rows == [
        {
            "resource_id": van,
            "first": pair[0],
            "second": pair[1],
            "overlap_start": "2026-12-01T10:00:00Z",
            "overlap_end": "2026-12-01T12:00:00Z",
        }
    ]
    states = {r["record_id"]: r["values"]["state"] for r in hub.records() if r["collection"] == "reservations"}
    assert states == {first["id"]: "approved", second["id"]: "approved", touching["id"]: "approved"}
    for person in (a, b):
        assert person.status()["double_bookings"] == 1
        kept = person.replica_rows("SELECT resource_id, first, second FROM double_bookings")
        assert kept == [{"resource_id": van, "first": pair[0], "second": pair[1]}], person
