"""``fieldsync`` (field_client/cli.py) against a real hub on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from crypto import INTERACTIVE
from field_client import agent
from field_client.cli import main
from field_client.device import Device
from field_client.replica import Replica
from tests.backend.helpers import Hub

from .helpers import PASSPHRASE, Laptop

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class Officer:
    """Runs ``fieldsync`` commands for one laptop home."""

    def __init__(self, home: Path, passphrase: str = PASSPHRASE) -> None:
        self.home, self.passphrase = home, passphrase

    def run(self, *args: str, passphrase: str | None = None) -> Result:
        env = {"FIELDSYNC_HOME": str(self.home), "FIELDSYNC_PASSPHRASE": passphrase or self.passphrase}
        return CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.exit_code == 0, (args, result.output)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def fails(self, *args: str, passphrase: str | None = None) -> str:
        """Run a command that must fail; return its one error line."""
        result = self.run(*args, passphrase=passphrase)
        assert result.exit_code != 0, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("Error: "), lines
        return lines[0]

    def footprint(self) -> dict[str, Any]:
        with Replica.open(self.home, self.passphrase) as rep:
            return {t: rep.rows(f"SELECT * FROM {t}") for t in ("records", "changes", "outbox")} | {
                "seq": rep.get("seq")
            }


def enrolled(hub: Hub, live: str, home: Path, agency: str = "SPD", officer: str = "Sgt. Lee") -> Officer:
    hub.agency(agency)
    cli = Officer(home)
    out = cli.ok("enroll", "--hub", live, "--token", hub.token(agency, officer)).stdout
    assert out.startswith(f"enrolled as {officer} of {agency}; device ")
    return cli


def quick(hub: Hub, live: str, home: Path, agency: str = "SPD", officer: str = "Sgt. Lee") -> Officer:
    """A laptop enrolled through the library with a cheap passphrase cost (each command opens fast)."""
    hub.agency(agency)
    Laptop(home, hub.token(agency, officer), hub_url=live).close()
    return Officer(home)


@sqlite_only
def test_officer_workflow(hub: Hub, live: str, tmp_path: Path) -> None:
    cli = quick(hub, live, tmp_path / "laptop")

    unit = cli.json("resource", "add", "--kind", "vehicle", "--name", "Unit 12", "--set", "quantity=2")
    assert unit["id"] and (unit["name"], unit["quantity"], unit["status"]) == ("Unit 12", 2, "available")
    radio = cli.json("resource", "add", "--kind", "equipment", "--name", "Radio", "--status", "maintenance")
    listed = cli.json("resource", "list")
    assert isinstance(listed, list)
    assert {r["id"] for r in listed} == {unit["id"], radio["id"]}
    assert all(r["collection"] == "resources" and r["agency"] == "SPD" for r in listed)

    park = cli.json("contact", "add", "--name", "Lt. Park", "--role", "liaison", "--phone", "+1 555 0100")
    assert (park["name"], park["role"], park["phone"]) == ("Lt. Park", "liaison", "+1 555 0100")
    assert [c["id"] for c in cli.json("contact", "list")] == [park["id"]]

    booking = cli.json(
        "reservation",
        "add",
        "--resource",
        unit["id"],
        "--starts",
        "2030-11-23T08:00:00Z",
        "--ends",
        "2030-11-23T12:00:00Z",
        "--purpose",
        "parade",
    )
    assert (booking["resource_id"], booking["state"]) == (unit["id"], "approved")
    assert [b["id"] for b in cli.json("reservation", "list")] == [booking["id"]]

    changed = cli.json(
        "resource", "update", unit["id"], "--status", "deployed", "--set", "notes=keys at desk", "--clear", "quantity"
    )
    assert (changed["id"], changed["status"], changed["notes"], changed["quantity"]) == (
        unit["id"],
        "deployed",
        "keys at desk",
        None,
    )
    located = cli.json(
        "resource", "update", radio["id"], "--set", 'location={"text": "HQ", "lat": 39.78, "lon": -89.6}'
    )
    assert located["location"] == {"text": "HQ", "lat": 39.78, "lon": -89.6}

    assert cli.ok("delete", radio["id"]).stdout.strip() == f"deleted {radio['id']}"
    assert [r["id"] for r in cli.json("resource", "list")] == [unit["id"]]
    assert {r["id"] for r in cli.json("resource", "list", "--deleted")} == {unit["id"], radio["id"]}

    text = cli.ok("resource", "list").stdout
    assert "Unit 12" in text and "Radio" not in text

    status = cli.json("status")
    with Replica.open(cli.home, PASSPHRASE) as rep:
        device_id = Device(rep).device_id
    assert status["device_id"] == device_id
    assert (status["agency"], status["officer"], status["pending"], status["last_sync_at"]) == (
        "SPD",
        "Sgt. Lee",
        7,
        None,
    )

    synced = cli.ok("sync").stdout
    assert "pushed 7 (7 accepted, 0 refused by the hub)" in synced
    status = cli.json("status")
    assert status["pending"] == 0 and status["last_sync_at"]
    plain = cli.ok("status").stdout
    assert device_id in plain and "pending changes: 0" in plain

    # a second laptop of the agency gets it all
    Laptop(tmp_path / "second", hub.token("SPD", "Ofc. Ray"), hub_url=live).close()
    other = Officer(tmp_path / "second")
    report = other.json("sync")
    assert report["pulled"] == 7 and report["refused"] == []
    assert [r["id"] for r in other.json("resource", "list")] == [unit["id"]]
    assert other.json("resource", "list")[0]["status"] == "deployed"


@sqlite_only
def test_enrolling_twice_is_one_error_line(hub: Hub, live: str, tmp_path: Path) -> None:
    cli = enrolled(hub, live, tmp_path / "laptop")
    header = json.loads((tmp_path / "laptop" / "replica.json").read_text())
    assert (header["opslimit"], header["memlimit"]) == (INTERACTIVE.opslimit, INTERACTIVE.memlimit)
    status = cli.json("status")
    assert (status["agency"], status["officer"], status["pending"]) == ("SPD", "Sgt. Lee", 0)
    before = cli.footprint()
    line = cli.fails("enroll", "--hub", live, "--token", hub.token("SPD", "Sgt. Lee"))
    assert "already enrolled" in line
    assert cli.footprint() == before


@sqlite_only
def test_enrolling_with_a_bad_token_leaves_no_replica(hub: Hub, live: str, tmp_path: Path) -> None:
    hub.agency("SPD")
    cli = Officer(tmp_path / "laptop")
    line = cli.fails("enroll", "--hub", live, "--token", "not-a-token")
    assert "hub refused" in line
    assert not (tmp_path / "laptop" / "replica.db").exists()
    unreachable = cli.fails("enroll", "--hub", "http://127.0.0.1:9", "--token", "x")
    assert "unreachable" in unreachable


@sqlite_only
def test_bad_values_are_one_error_line_and_write_nothing(hub: Hub, live: str, tmp_path: Path) -> None:
    cli = quick(hub, live, tmp_path / "laptop")
    unit = cli.json("resource", "add", "--kind", "vehicle", "--name", "Unit 12")
    before = cli.footprint()
    cases = {
        ("resource", "add", "--kind", "vehicle", "--name", "U", "--set", "quantity=x"): "quantity",
        ("resource", "add", "--kind", "car", "--name", "Unit 13"): "kind",
        ("resource", "add", "--kind", "vehicle", "--name", "U", "--set", "colour=red"): "colour",
        ("resource", "add", "--kind", "vehicle", "--name", "U", "--set", "noequals"): "FIELD=VALUE",
        ("resource", "add", "--kind", "vehicle", "--name", "U", "--set", "location={not json"): "location",
        ("resource", "update", unit["id"], "--set", "quantity=x"): "quantity",
        ("resource", "update", unit["id"], "--status", "lost"): "status",
        ("resource", "update", "00000000-0000-4000-8000-000000000000", "--status", "deployed"): "no record",
        ("contact", "add", "--name", "Lt. Park", "--role", "mayor"): "role",
        ("reservation", "add", "--resource", "00000000-0000-4000-8000-000000000000"): "resource",
        ("delete", "00000000-0000-4000-8000-000000000000"): "no record",
    }
    for args, mention in cases.items():
        line = cli.fails(*args)
        assert mention in line, (args, line)
    assert cli.footprint() == before


@sqlite_only
def test_wrong_passphrase_is_one_error_line(hub: Hub, live: str, tmp_path: Path) -> None:
    cli = quick(hub, live, tmp_path / "laptop")
    files = {p.name: p.read_bytes() for p in cli.home.iterdir() if not p.name.endswith("-shm")}
    for args in (("status",), ("resource", "list"), ("resource", "add", "--kind", "vehicle", "--name", "U")):
        line = cli.fails(*args, passphrase="not my passphrase")
        assert "wrong passphrase" in line
    assert {p.name: p.read_bytes() for p in cli.home.iterdir() if not p.name.endswith("-shm")} == files
    missing = Officer(tmp_path / "nowhere").fails("status")
    assert "enroll" in missing


@sqlite_only
def test_verify_a_provenance_bundle(hub: Hub, live: str, tmp_path: Path) -> None:
    cli = quick(hub, live, tmp_path / "laptop")
    unit = cli.json("resource", "add", "--kind", "vehicle", "--name", "Unit 12")
    cli.json("resource", "update", unit["id"], "--status", "deployed")
    cli.ok("sync")
    with Replica.open(cli.home, PASSPHRASE) as rep:
        bundle = agent.client_for(Device(rep)).provenance(unit["id"])
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))

    verified = cli.ok("verify", str(path)).stdout
    assert "bundle verifies" in verified
    assert "Sgt. Lee (SPD)" in verified
    assert "'deployed'" in verified
    report = cli.json("verify", str(path))
    assert report["ok"] is True and report["changes"] == 2
    assert {f["field"]: f["written_by"] for f in report["fields"]}["status"] == "Sgt. Lee (SPD)"

    def tampered(edit: Any) -> Path:
        copy = json.loads(json.dumps(bundle))
        edit(copy)
        out = tmp_path / "tampered.json"
        out.write_text(json.dumps(copy))
        return out

    for edit in (
        lambda b: b["record"]["values"].__setitem__("status", "available"),
        lambda b: b["changes"][1]["fields"]["status"].__setitem__("value", "maintenance"),
        lambda b: b["changes"][0].__setitem__("agency", "CSO"),
        lambda b: b["registry"][-1].__setitem__("name", "Someone else"),
    ):
        result = cli.run("verify", str(tampered(edit)))
        assert result.exit_code != 0
        assert "does NOT verify" in result.stderr
        assert "FAILED:" in result.stderr

    garbage = tmp_path / "garbage.json"
    garbage.write_text("{nope")
    assert "cannot read" in cli.fails("verify", str(garbage))
    garbage.write_text("{}")
    assert "not a provenance bundle" in cli.fails("verify", str(garbage))


@sqlite_only
def test_the_laptop_reads_its_clock_drift_bound_from_the_environment(
    hub: Hub, live: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from sync import ClockDriftError
    from sync.hlc import Hlc

    cli = quick(hub, live, tmp_path / "laptop")
    ahead = Hlc(int(time.time() * 1000) + 2 * 3600 * 1000, 0, "00000000-0000-4000-8000-000000000001")
    with Replica.open(cli.home, PASSPHRASE) as rep:
        assert Device(rep).clock().observe(ahead).wall_ms == ahead.wall_ms  # the default 24 h admits 2 h
        monkeypatch.setenv("FIELDSYNC_MAX_CLOCK_DRIFT", "3600")
        with pytest.raises(ClockDriftError):
            Device(rep).clock().observe(ahead)
    for bad in ("soon", "0", "-5"):
        monkeypatch.setenv("FIELDSYNC_MAX_CLOCK_DRIFT", bad)
        assert "FIELDSYNC_MAX_CLOCK_DRIFT" in cli.fails("status")
