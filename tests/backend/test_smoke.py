"""End-to-end smoke test of the sync API over real HTTP (both databases)."""

from __future__ import annotations

from .helpers import Hub, Officer


def test_two_agencies_push_and_pull(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    hub.agency("CSO")
    hub.agreement("SPD", "CSO", ["resources"], withhold=["notes"], write=["status"])
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    kim = Officer(live, hub.token("CSO", "Dep. Kim"))
    wire = lee.create(values={"kind": "vehicle", "name": "Unit 12", "status": "available", "notes": "keys at desk"})
    assert [r["status"] for r in lee.push(wire)] == ["accepted"]
    got = kim.pull()
    assert [c.id for c in got] == [wire["id"]]
    view = kim.state.view()[wire["record_id"]]
    assert view["name"] == "Unit 12" and "notes" not in view
    assert got[0].withheld.keys() == {"notes"}
    # CSO may write status, not name
    ok = kim.change("resources", {"status": "deployed"}, record_id=wire["record_id"])
    bad = kim.change("resources", {"name": "Mine now"}, record_id=wire["record_id"])
    results = kim.push(ok, bad)
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert "name" in results[1]["reason"]
    lee.pull()
    assert lee.state.view()[wire["record_id"]]["status"] == "deployed"
