"""``make demo``: a day of multi-agency work, played through the real command lines.

It starts a hub on the embedded SQLite default (in ``.demo/`` at the project
root), creates three agencies with sharing agreements, enrolls four officers,
plays a day — offline edits, a vehicle double-booked by two officers who were
both offline, two agencies changing the same field, a write the agreement
refuses, a booking of a partner's vehicle approved by its owner — syncs,
prints a summary and leaves the hub running (Ctrl-C stops it).

Every step is the same ``fieldsync`` / ``fieldsync-hub`` command an officer
or administrator would type; nothing here touches the code underneath.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN_PASSWORD = "demo-admin-passphrase"
OFFICER_PASSPHRASE = "demo-officer-passphrase"


def free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


class Demo:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.env = {
            **os.environ,
            "FIELDSYNC_INSTANCE": str(folder / "hub"),
            "FIELDSYNC_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "FIELDSYNC_PASSPHRASE": OFFICER_PASSPHRASE,
        }
        self.server: subprocess.Popen[bytes] | None = None

    def hub(self, *args: str) -> str:
        done = subprocess.run([str(BIN / "fieldsync-hub"), *args], env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"fieldsync-hub {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def officer(self, home: str, *args: str, check: bool = True) -> str:
        cmd = [str(BIN / "fieldsync"), "--home", str(self.folder / home), *args]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        if check and done.returncode:
            raise SystemExit(f"fieldsync {' '.join(args)} failed: {done.stderr.strip()}")
        return (done.stdout + done.stderr).strip()

    def add(self, home: str, noun: str, *args: str) -> str:
        return str(json.loads(self.officer(home, noun, "add", *args, "--json"))["id"])

    def start(self) -> None:
        log = open(self.folder / "hub.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.server = subprocess.Popen(
            [str(BIN / "fieldsync-hub"), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"the hub did not start; see {self.folder / 'hub.log'}")

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=10)
            self.server = None


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def play(demo: Demo) -> dict[str, Any]:
    say("Setting up the hub: three agencies, their keys, and who shares what")
    demo.hub("init")
    demo.hub("agency", "create", "SPD", "--name", "Springfield Police Department")
    demo.hub("agency", "create", "SCSO", "--name", "Shelby County Sheriff's Office")
    demo.hub("agency", "create", "SP9", "--name", "State Patrol District 9")
    demo.hub(
        "agreement",
        "add",
        "--from",
        "SPD",
        "--to",
        "SCSO",
        "--collections",
        "resources,contacts,reservations",
        "--withhold",
        "notes",
        "--write",
        "status",
    )
    demo.hub("agreement", "add", "--from", "SCSO", "--to", "SPD", "--collections", "resources,contacts,reservations")
    demo.hub("agreement", "add", "--from", "SP9", "--to", "SPD", "--collections", "contacts")
    demo.hub("agreement", "add", "--from", "SP9", "--to", "SCSO", "--collections", "contacts")
    demo.start()
    print(f"hub listening on {demo.url}")

    say("Enrolling four officers' laptops with one-time tokens")
    roster = {
        "lee": ("SPD", "Sgt. Dana Lee"),
        "patel": ("SPD", "Ofc. Raj Patel"),
        "kim": ("SCSO", "Dep. Alex Kim"),
        "novak": ("SP9", "Tpr. Eva Novak"),
    }
    for home, (agency, name) in roster.items():
        token = demo.hub("device", "token", agency, "--officer", name)
        print(demo.officer(home, "enroll", "--hub", demo.url, "--token", token))

    say("07:00 - morning: each agency records what it can lend")
    unit12 = demo.add(
        "lee",
        "resource",
        "--kind",
        "vehicle",
        "--name",
        "Unit 12 (Tahoe K9)",
        "--set",
        "quantity=1",
        "--set",
        "notes=K9 cage; keys at the front desk",
        "--set",
        'location={"text": "SPD HQ motor pool", "lat": 39.7817, "lon": -89.6501}',
    )
    demo.add("lee", "resource", "--kind", "equipment", "--name", "Thermal imaging camera", "--set", "quantity=2")
    boat = demo.add("kim", "resource", "--kind", "vehicle", "--name", "Marine Unit 3 (rescue boat)")
    demo.add(
        "kim",
        "contact",
        "--name",
        "Lt. Maria Ortiz",
        "--role",
        "liaison",
        "--phone",
        "+1 217 555 0142",
        "--set",
        "radio=SCSO TAC-2",
        "--set",
        "jurisdiction=Shelby County",
    )
    demo.add(
        "novak",
        "contact",
        "--name",
        "Sgt. Tom Becker",
        "--role",
        "point_of_contact",
        "--phone",
        "+1 217 555 0199",
        "--set",
        "radio=ISP D9 Dispatch",
    )
    for home in roster:
        demo.officer(home, "sync")
    for home in roster:
        demo.officer(home, "sync")

    say("09:30 - the link drops (hub stopped); officers keep working offline")
    demo.stop()
    demo.add(
        "lee",
        "reservation",
        "--resource",
        unit12,
        "--starts",
        "2026-11-23T14:00:00Z",
        "--ends",
        "2026-11-23T18:00:00Z",
        "--purpose",
        "Warrant service, 400 block Elm",
    )
    demo.add(
        "patel",
        "reservation",
        "--resource",
        unit12,
        "--starts",
        "2026-11-23T16:00:00Z",
        "--ends",
        "2026-11-23T20:00:00Z",
        "--purpose",
        "School event security",
    )
    print("Sgt. Lee and Ofc. Patel both booked Unit 12 for the afternoon, neither online.")
    demo.officer("lee", "resource", "update", unit12, "--status", "deployed")
    demo.officer("kim", "resource", "update", unit12, "--status", "maintenance")
    print("Sgt. Lee marked Unit 12 deployed; Dep. Kim (SCSO, allowed to set status) marked it maintenance.")
    demo.officer("kim", "resource", "update", unit12, "--set", "name=Unit 12 (on loan to SCSO)")
    print("Dep. Kim also tried to rename SPD's vehicle, which the agreement does not allow.")
    demo.add(
        "patel",
        "reservation",
        "--resource",
        boat,
        "--starts",
        "2026-11-24T06:00:00Z",
        "--ends",
        "2026-11-24T12:00:00Z",
        "--purpose",
        "River search, Lake Shelbyville",
    )
    print("Ofc. Patel asked to borrow SCSO's rescue boat tomorrow (a request: SCSO decides).")

    say("11:00 - the link is back: everyone syncs")
    demo.start()
    outputs = {home: demo.officer(home, "sync", check=False) for home in ("patel", "kim", "lee", "novak")}
    for home, text in outputs.items():
        print(f"[{home}] {text}")
    reservations = json.loads(demo.officer("kim", "reservation", "list", "--json"))
    for booking in reservations:
        if booking.get("resource_id") == boat and booking.get("state") == "requested":
            demo.officer("kim", "reservation", "update", booking["id"], "--state", "approved")
            print("Dep. Kim approves the boat request for SCSO.")
    for home in roster:
        demo.officer(home, "sync")
    for home in roster:
        demo.officer(home, "sync")

    say("Summary")
    statuses = {home: json.loads(demo.officer(home, "status", "--json")) for home in roster}
    for home, info in statuses.items():
        resources = json.loads(demo.officer(home, "resource", "list", "--json"))
        contacts = json.loads(demo.officer(home, "contact", "list", "--json"))
        print(
            f"{info['officer']:<16} {info['agency']:<5} sees {len(resources)} resources, {len(contacts)} contacts; "
            f"pending {info['pending']}, conflicts {info['conflicts']}, double bookings {info['double_bookings']}, "
            f"refused by hub {len(info['rejected'])}"
        )
    for item in statuses["kim"]["rejected"]:
        print(f"refused write reported to Dep. Kim: {item['reason']}")
    unit = next(r for r in json.loads(demo.officer("lee", "resource", "list", "--json")) if r["id"] == unit12)
    print(
        f"Unit 12 is now '{unit['status']}' everywhere (the later of the two concurrent edits won; "
        "the conflict is queued for command staff)"
    )
    print(demo.hub("audit", "verify"))
    return statuses


MARKER = ".fieldsync-demo"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default=str(ROOT / ".demo"))
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--no-serve", action="store_true", help="stop the hub at the end instead of leaving it running")
    args = ap.parse_args()
    folder = Path(args.folder)
    if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).exists():
        raise SystemExit(f"{folder} is not empty and was not made by the demo: choose another --folder")
    shutil.rmtree(folder, ignore_errors=True)  # the previous demo's hub, keys and laptops
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by `make demo`; removed by the next one\n")
    demo = Demo(folder, free_port(args.port))
    try:
        play(demo)
        if args.no_serve:
            return
        say("The hub keeps running")
        print(f"API:            {demo.url}/api/v1/openapi.json   health: {demo.url}/healthz")
        print(f"Web view:       {demo.url}/   log in as admin / {ADMIN_PASSWORD} (after the system-use notice)")
        print("                conflicts, double bookings, records with provenance, audit log, admin pages")
        print(
            f"Try an officer: FIELDSYNC_PASSPHRASE={OFFICER_PASSPHRASE} "
            f"{BIN / 'fieldsync'} --home {folder / 'lee'} resource list"
        )
        print(
            f"Officer's page: FIELDSYNC_PASSPHRASE={OFFICER_PASSPHRASE} "
            f"{BIN / 'fieldsync'} --home {folder / 'lee'} ui   (opens the browser on this machine)"
        )
        print(f"Hub admin:      FIELDSYNC_INSTANCE={folder / 'hub'} {BIN / 'fieldsync-hub'} device list")
        print("Press Ctrl-C to stop the hub.", flush=True)
        assert demo.server is not None
        demo.server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        demo.stop()


if __name__ == "__main__":
    main()
