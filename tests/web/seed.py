"""A believable overnight multi-agency operation, written through the real sync path.

Officers enroll over HTTP with one-time tokens, sign their changes on their
"laptops" (tests.backend.helpers.Officer) and push them; the hub verifies and
merges them exactly as in the field. The result has agencies, devices with
last syncs, resources, contacts, reservations, a field conflict (two SPD
laptops set Unit 12's status offline), a double booking, and one record whose
name is HTML/script (it must show as text).

Used by tests/web (fixtures) and to take the screenshots in docs/img.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask

from backend import users
from backend.db import db
from tests.backend.helpers import Hub, Officer

ADMIN = ("admin.kim", "admin-password-123", "admin")
STAFF = ("cmdr.lee", "staff-password-123", "staff")
HOSTILE_NAME = '<script>alert("pwned")</script><img src=x onerror=alert(1)>Trailer 7'


@dataclass
class Seeded:
    officers: dict[str, Officer] = field(default_factory=dict)
    records: dict[str, str] = field(default_factory=dict)  # label -> record id


def add_users(app: Flask) -> None:
    with app.app_context():
        for name, password, role in (ADMIN, STAFF):
            users.add_user(name, role, password, actor="test")
        db.session.commit()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def seed(app: Flask, base_url: str, *, extra_resources: int = 0) -> Seeded:
    hub = Hub(app)
    out = Seeded()
    hub.agency("SPD", "Springfield Police Department")
    hub.agency("CSO", "County Sheriff's Office")
    hub.agency("SHP", "State Highway Patrol")
    hub.agreement("SPD", "CSO", ["resources", "contacts", "reservations"], withhold=["notes"], write=["status"])
    hub.agreement("CSO", "SPD", ["resources", "contacts", "reservations"])
    hub.agreement("SHP", "SPD", ["resources", "contacts"])
    o = out.officers
    o["lee"] = Officer(base_url, hub.token("SPD", "Sgt. Dana Lee"))
    o["ramirez"] = Officer(base_url, hub.token("SPD", "Ofc. Luis Ramirez"))
    o["chen"] = Officer(base_url, hub.token("CSO", "Dep. Mei Chen"))
    o["okafor"] = Officer(base_url, hub.token("SHP", "Tpr. Ada Okafor"))
    lee, ramirez, chen, okafor = o["lee"], o["ramirez"], o["chen"], o["okafor"]

    def create(officer: Officer, label: str, collection: str, values: dict[str, Any]) -> dict[str, Any]:
        wire = officer.create(collection, values)
        out.records[label] = wire["record_id"]
        return wire

    unit12 = create(lee, "unit12", "resources", {
        "kind": "vehicle", "name": "Unit 12", "status": "available", "quantity": 1,
        "location": {"text": "Station 3, bay 2"}, "notes": "Fuel card in glovebox",
    })  # fmt: skip
    k9 = create(lee, "k9", "resources", {"kind": "vehicle", "name": "K9 Unit 3", "status": "deployed", "quantity": 1})
    drone = create(lee, "drone", "resources", {
        "kind": "equipment", "name": "Thermal drone DJI-2", "status": "maintenance", "quantity": 1,
        "location": {"text": "Evidence garage"},
    })  # fmt: skip
    liaison = create(lee, "liaison", "contacts", {
        "name": "Lt. Maria Alvarez", "role": "liaison", "agency_unit": "Patrol Division",
        "phone": "+1 555 0142", "radio": "TAC-2 / SPD-L1", "jurisdiction": "City of Springfield",
    })  # fmt: skip
    lee.push(unit12, k9, drone, liaison)

    post = create(chen, "command_post", "resources", {
        "kind": "facility", "name": "Mobile command post", "status": "deployed", "quantity": 1,
        "location": {"text": "Fairgrounds north gate", "lat": 39.78, "lon": -89.65},
    })  # fmt: skip
    boat = create(chen, "boat", "resources", {"kind": "vehicle", "name": "Marine unit 2", "status": "out_of_service"})
    hostile = create(chen, "hostile", "resources", {"kind": "equipment", "name": HOSTILE_NAME, "status": "available"})
    commander = create(chen, "commander", "contacts", {
        "name": "Capt. Joe Brandt", "role": "commander", "phone": "+1 555 0199", "radio": "CSO-CMD",
    })  # fmt: skip
    chen.push(post, boat, hostile, commander)

    trooper = create(okafor, "interceptor", "resources", {
        "kind": "vehicle", "name": "Interceptor 41", "status": "available", "location": {"text": "I-55 mile 92"},
    })  # fmt: skip
    okafor.push(trooper)

    # both SPD laptops learn of Unit 12, then set its status offline: a field conflict
    ramirez.pull()
    edit_a = lee.change("resources", {"status": "deployed"}, record_id=unit12["record_id"])
    ramirez.clock.observe(edit_a["hlc"])  # his clock runs later (his replica has not seen Lee's edit)
    edit_b = ramirez.change("resources", {"status": "maintenance"}, record_id=unit12["record_id"])
    lee.push(edit_a)
    ramirez.push(edit_b)

    # both SPD laptops book the drone's sister resource, Unit 12, for overlapping shifts: a double booking
    start = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    book_a = create(lee, "booking_a", "reservations", {
        "resource_id": k9["record_id"], "starts_at": _iso(start), "ends_at": _iso(start + timedelta(hours=6)),
        "purpose": "Night shift perimeter, fairgrounds", "state": "approved",
    })  # fmt: skip
    ramirez.pull()
    book_b = create(ramirez, "booking_b", "reservations", {
        "resource_id": k9["record_id"], "starts_at": _iso(start + timedelta(hours=4)),
        "ends_at": _iso(start + timedelta(hours=10)), "purpose": "Search warrant support", "state": "approved",
    })  # fmt: skip
    lee.push(book_a)
    ramirez.push(book_b)
    chen_book = create(chen, "booking_c", "reservations", {
        "resource_id": unit12["record_id"], "starts_at": _iso(start), "ends_at": _iso(start + timedelta(hours=3)),
        "purpose": "Transport, county jail", "state": "requested",
    })  # fmt: skip
    chen.push(chen_book)

    for i in range(extra_resources):
        wire = lee.create("resources", {"kind": "equipment", "name": f"Barricade set {i:03d}", "status": "available"})
        lee.push(wire)
    for officer in o.values():
        officer.pull()
    return out


def new_id() -> str:
    return str(uuid.uuid4())
