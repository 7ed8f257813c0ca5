"""GET /api/v1/records/<id>/provenance (backend/provenance.py) over real HTTP, on both databases."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from backend.models import LogEntry
from crypto import KeyRegistry, verify_checkpoint
from field_client.bundle import verify_bundle
from sync import ProvenanceError, Verifier

from .helpers import RESOURCE, Hub, Officer, error_body, raw, rows

SECRET = "spare key under the left mirror"


def provenance_path(record_id: str) -> str:
    return f"/api/v1/records/{record_id}/provenance"


def verified(bundle: dict[str, Any]) -> list[str]:
    """Verify every change of a bundle against its own registry and certificates; their ids."""
    verifier = Verifier(KeyRegistry.verify(bundle["registry"]))
    return [verifier.verify(wire, bundle["certificates"].get(wire["device"])).id for wire in bundle["changes"]]


def test_the_bundle_of_a_visible_record_verifies_offline(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    hub.agency("CSO")
    hub.agreement("SPD", "CSO", ["resources"], withhold=["notes"], write=["status"])
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("CSO", "Dep. Kim"))
    car = lee.create(values={**RESOURCE, "notes": SECRET})
    other = lee.create()
    rid = car["record_id"]
    rename = lee.change("resources", {"name": "Unit 12B"}, record_id=rid)
    assert [r["status"] for r in lee.push(car, other, rename)] == ["accepted"] * 3
    kim.pull()
    deploy = kim.change("resources", {"status": "deployed"}, record_id=rid)
    assert [r["status"] for r in kim.push(deploy)] == ["accepted"]
    # SPD, the owner: every change of this record (and only of it), in log order, with every value
    own = lee.client.provenance(rid)
    assert verified(own) == [car["id"], rename["id"], deploy["id"]]
    assert set(own["certificates"]) == {lee.device_id, kim.device_id}
    assert own["changes"][0] == car
    expected = {**RESOURCE, "notes": SECRET, "name": "Unit 12B", "status": "deployed"}
    assert own["record"] == {"record_id": rid, "collection": "resources", "agency": "SPD", "deleted": False,
                             "values": expected}  # fmt: skip
    checkpoint = verify_checkpoint(own["checkpoint"], KeyRegistry.verify(own["registry"]).hub_key)
    assert checkpoint.size == len(rows(hub.app, LogEntry)) == 4
    report = verify_bundle(own)
    assert report.ok and report.changes == 3, report.problems
    # CSO: the same changes, still verifying, with the withheld field reduced to its digest
    response = raw(live, "GET", provenance_path(rid), officer=kim)
    assert response.status_code == 200
    assert SECRET not in response.text and car["fields"]["notes"]["salt"] not in response.text
    shared = response.json()
    assert verified(shared) == [car["id"], rename["id"], deploy["id"]]
    assert set(shared["changes"][0]["fields"]["notes"]) == {"digest"}
    assert shared["changes"][0]["signature"] == car["signature"]
    assert shared["record"]["values"] == {k: v for k, v in expected.items() if k != "notes"}
    report = verify_bundle(shared)
    assert report.ok, report.problems
    assert {f["field"]: f["withheld"] for f in report.fields}["notes"] is True
    # a bundle whose change was altered does not verify: the check above can fail
    forged = copy.deepcopy(shared)
    forged["changes"][1]["fields"]["name"]["value"] = "Unit 99"
    with pytest.raises(ProvenanceError):
        verified(forged)
    assert not verify_bundle(forged).ok


def test_a_record_the_reader_may_not_see_is_404(hub: Hub, live: str) -> None:
    for code in ("SPD", "CSO", "FBI"):
        hub.agency(code)
    hub.agreement("SPD", "CSO", ["resources"])
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("CSO", "Dep. Kim"))
    ray = Officer(live, hub.token("FBI", "Agent Ray"))
    car = lee.create()
    contact = lee.create("contacts", {"name": "Lt. Diaz", "role": "liaison"})
    assert [r["status"] for r in lee.push(car, contact)] == ["accepted", "accepted"]
    assert raw(live, "GET", provenance_path(car["record_id"]), officer=kim).status_code == 200
    cases = [
        (ray, car["record_id"]),  # no agreement at all
        (kim, contact["record_id"]),  # an agreement, not for contacts
        (lee, str(uuid.uuid4())),  # no such record
    ]
    for reader, record_id in cases:
        response = raw(live, "GET", provenance_path(record_id), officer=reader)
        body = error_body(response, 404)
        assert body["error"] == "not_found" and record_id in body["message"]
        assert "Lt. Diaz" not in response.text and "Unit 12" not in response.text
    # the same 404 for a record that exists and one that does not: nothing leaks either way
    assert error_body(raw(live, "GET", provenance_path(contact["record_id"]), officer=ray), 404)["message"] == (
        f"no record {contact['record_id']}"
    )
    error_body(raw(live, "GET", provenance_path(car["record_id"])), 401)  # and it is for enrolled devices only
