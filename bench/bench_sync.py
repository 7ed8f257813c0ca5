"""Laptop benchmark: back online after a shift, and delta sync against a small and a huge hub.

Run: ``make bench-sync`` (or ``.venv/bin/python bench/bench_sync.py [--remote N] [--local N]
[--rounds R] [--database sqlite|postgresql] [--large N] [--skip-shift] [--skip-delta]
[--memory-security on|off]``).

**Shift** (rounds interleaved as in bench_core.py: floor, sync, floor, sync, ...).
Set-up, not timed: a hub made with the real ``fieldsync-hub`` commands, seeded
in this process through the hub's own push path (``backend.push.push``, every
change verified, checked and merged as over HTTP) with ``--remote`` changes
signed by 10 devices of two agencies that share their resources with the
laptop's agency (one withholding ``notes``); then gunicorn -w 2 on loopback.
Per round a fresh laptop (its own agency, so that every round pulls the same
changes) is enrolled over the API and makes ``--local`` edits offline through
field_client.edits (one in five creates a resource, the rest update one).
Timed: one ``field_client.agent.sync`` — push the outbox, pull until ``more``
is false, verifying every pulled change against the pinned registry and
merging it into the SQLCipher replica. Its own changes come back in the pull
and are verified too, so a round moves remote + 2 x local changes.

The floor, measured in the same round on the same changes (remote + local):
raw Ed25519 verification of each change's signed bytes (on one core, and on
two threads: PyNaCl releases the GIL) plus an upsert of each change into a
SQLCipher table (one executemany in one transaction, JSON text prepared
beforehand), with the replica's own page size and page MAC
(``field_client.replica.CIPHER``).

**Delta sync**: two hubs whose log holds ``--small`` and ``--large`` entries;
a laptop that has synced everything it may see; per round another device
pushes ``--new`` changes and the laptop syncs (timed), hubs interleaved. The
bulk of each log is written straight into the hub's ``log`` table (the one
pull reads) with one executemany: copies of 1,000 real signed changes of an
agency the laptop cannot see, each row with its own change id, sequence
number and hash chain, and the log head set to the real chain head. Pull must
cost O(new changes), not O(log).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nacl.signing
import sqlcipher3
from hubproc import HubInstance, load_average, sign_feeds

from crypto import SigningKey, b64d, change_hash
from crypto.changes import _signed_bytes
from field_client import agent, edits, state
from field_client.device import Device, enroll_into
from field_client.replica import CIPHER, Replica
from field_client.transport import HubClient

PASSPHRASE = "bench laptop passphrase"
SEEDERS = {"SPD": "Springfield Police Department", "CSO": "County Sheriff's Office"}


# -- the hub side ------------------------------------------------------------------------------
def seed_by_push(hub: HubInstance, devices: int, total: int) -> list[dict[str, Any]]:
    """Enroll ``devices`` seeding devices in-process and push ``total`` signed changes through
    backend.push.push in 500-change batches; returns every wire pushed."""
    from backend import enroll, push
    from backend.db import db
    from backend.models import Device as DeviceRow

    agencies = [list(SEEDERS)[i % len(SEEDERS)] for i in range(devices)]
    tokens = [hub.token(agency, f"seed officer {i}") for i, agency in enumerate(agencies)]
    app = hub.app()
    seeders = []
    with app.app_context():
        for agency, token in zip(agencies, tokens, strict=True):
            key = SigningKey.generate()
            answer = enroll.enroll(token, key.verify_key.to_text())
            db.session.remove()
            seeders.append((bytes(key), answer["device_id"], agency, answer["certificate"]))
        per = [total // devices + (1 if i < total % devices else 0) for i in range(devices)]
        feeds = sign_feeds([(s[0], s[1], s[2], n, 100 + i) for i, (s, n) in enumerate(zip(seeders, per, strict=True))])
        wires: list[dict[str, Any]] = []
        for (_, device_id, _, _), feed in zip(seeders, feeds, strict=True):
            for start in range(0, len(feed), 500):
                dev = db.session.get(DeviceRow, device_id)
                results = push.push(dev, feed[start : start + 500])
                bad = [r for r in results if r["status"] != "accepted"]
                if bad:
                    raise RuntimeError(f"seeding refused: {bad[0]}")
                db.session.remove()
            wires += feed
    return wires


def new_laptop(hub: HubInstance, folder: Path, agency: str, officer: str) -> Device:
    home = folder / f"home-{uuid.uuid4().hex[:8]}"
    key = SigningKey.generate()
    replica = Replica.create(home, PASSPHRASE)
    answer = HubClient(hub.base_url).enroll(hub.token(agency, officer), key.verify_key.to_text())
    enroll_into(replica, hub_url=hub.base_url, key=key, answer=answer)
    return Device(replica)


def offline_edits(device: Device, count: int, rng: random.Random) -> None:
    """An officer's shift: one edit in five creates a resource, the others update one."""
    mine: list[str] = []
    for i in range(count):
        if not mine or rng.random() < 0.2:
            record = edits.create(device, "resources", {"kind": "vehicle", "name": f"Car {i}", "quantity": 1})
            mine.append(record["id"])
        else:
            field = rng.choice(["status", "notes", "quantity"])
            value = {
                "status": rng.choice(["available", "deployed", "maintenance"]),
                "notes": f"shift note {rng.random():.6f}",
                "quantity": rng.randint(0, 9),
            }[field]
            edits.update(device, rng.choice(mine[-50:]), {field: value})


# -- the floor -----------------------------------------------------------------------------------
class Floor:
    """Ed25519 verification and a SQLCipher upsert of the same changes, nothing else."""

    def __init__(self, wires: list[dict[str, Any]], keys: dict[str, bytes], folder: Path) -> None:
        cache: dict[str, nacl.signing.VerifyKey] = {}
        self.items = []
        for w in wires:
            vk = cache.setdefault(w["device"], nacl.signing.VerifyKey(keys[w["device"]]))
            self.items.append((vk, _signed_bytes(w), b64d(w["signature"])))
        self.rows = [(w["id"], w["record_id"], json.dumps(w)) for w in wires]
        self.folder = folder
        self.n = len(wires)

    @staticmethod
    def _verify(items: list[Any]) -> None:
        for vk, message, signature in items:
            vk.verify(message, signature)

    def verify_one_core(self) -> float:
        t0 = time.perf_counter()
        self._verify(self.items)
        return time.perf_counter() - t0

    def verify_two_threads(self) -> float:
        half = len(self.items) // 2
        with ThreadPoolExecutor(2) as pool:
            t0 = time.perf_counter()
            list(pool.map(self._verify, [self.items[:half], self.items[half:]]))
            return time.perf_counter() - t0

    def upsert(self) -> float:
        path = self.folder / f"floor-{uuid.uuid4().hex[:8]}.db"
        conn = sqlcipher3.connect(str(path), isolation_level=None)
        conn.execute(f"PRAGMA key = \"x'{os.urandom(32).hex()}'\"")
        conn.execute(f"PRAGMA cipher_page_size = {CIPHER.page_size}")  # the replica's own page settings
        conn.execute(f"PRAGMA cipher_hmac_algorithm = {CIPHER.hmac}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE changes (change_id TEXT PRIMARY KEY, record_id TEXT NOT NULL, wire TEXT NOT NULL)")
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO changes(change_id, record_id, wire) VALUES (?, ?, ?)"
            " ON CONFLICT(change_id) DO UPDATE SET wire = excluded.wire",
            self.rows,
        )
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return elapsed


# -- part 1: the shift ---------------------------------------------------------------------------
def shift(args: Any, folder: Path) -> None:
    laptops = [f"LAP{r + 1}" for r in range(args.rounds)]
    hub = HubInstance(args.database, folder / "shift-hub")
    try:
        hub.init({**SEEDERS, **{code: f"Laptop agency {code}" for code in laptops}})
        for code in laptops:
            hub.cli("agreement", "add", "--from", "SPD", "--to", code, "--collections", "resources")
            hub.cli("agreement", "add", "--from", "CSO", "--to", code, "--collections", "resources",
                    "--withhold", "notes")  # fmt: skip
        t0 = time.perf_counter()
        remote = seed_by_push(hub, 10, args.remote)
        print(f"hub seeded with {len(remote):,} changes through the push path in {time.perf_counter() - t0:.0f} s")
        hub.start(2)
        keys = _device_keys(hub)
        rng = random.Random(5)
        rows: list[dict[str, float]] = []
        for r, code in enumerate(laptops):
            device = new_laptop(hub, folder, code, f"officer of {code}")
            t0 = time.perf_counter()
            offline_edits(device, args.local, rng)
            edit_s = time.perf_counter() - t0
            local = [json.loads(row["wire"]) for row in device.replica.rows("SELECT wire FROM outbox ORDER BY seq")]
            keys[device.device_id] = b64d(device.certificate["device_key"])
            floor = Floor(remote + local, keys, folder)
            one, two, upsert = floor.verify_one_core(), floor.verify_two_threads(), floor.upsert()
            hub_cpu0, cpu0 = hub.cpu_seconds(), time.process_time()
            t0 = time.perf_counter()
            report = agent.sync(device, agent.client_for(device))
            wall = time.perf_counter() - t0
            hub_cpu, cpu = hub.cpu_seconds() - hub_cpu0, time.process_time() - cpu0
            moved = report.pushed + report.pulled
            if report.accepted != args.local or report.refused or report.pulled != len(remote) + args.local:
                raise RuntimeError(f"unexpected sync report: {report.to_json()}")
            rows.append(
                {
                    "wall": wall,
                    "moved": moved,
                    "pushed": report.pushed,
                    "pulled": report.pulled,
                    "e2e": moved / wall,
                    "floor1": floor.n / (one + upsert),
                    "floor2": floor.n / (two + upsert),
                    "verify1": floor.n / one,
                    "upsert": floor.n / upsert,
                    "edits": args.local / edit_s,
                    "hub_cpu": hub_cpu,
                    "cpu": cpu,
                    "floor_s": one + upsert,
                    "cpu_ratio": (cpu + hub_cpu) / (one + upsert),
                    "laptop_cpu_ratio": cpu / (one + upsert),
                }
            )
            print(
                f"round {r + 1}/{args.rounds}: sync {wall:.1f} s ({moved / wall:,.0f} changes/s); "
                f"floor {rows[-1]['floor1']:,.0f}/s one core, {rows[-1]['floor2']:,.0f}/s two threads",
                flush=True,
            )
            device.replica.close()
        med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
        r1 = statistics.median(row["floor1"] / row["e2e"] for row in rows)
        r2 = statistics.median(row["floor2"] / row["e2e"] for row in rows)
        print()
        print(
            f"shift: {args.local:,} local changes pushed, {int(med['pulled']):,} pulled and verified "
            f"({len(remote):,} from 10 devices of 2 agencies + the laptop's own); hub on {args.database}, "
            f"gunicorn -w 2; medians of {args.rounds} interleaved rounds; load average {load_average()}"
        )
        print()
        print("| step | changes/s | wall | floor / step |")
        print("| --- | ---: | ---: | ---: |")
        print(f"| `fieldsync sync` end to end (push + pull) | {med['e2e']:,.0f} | {med['wall']:.1f} s | - |")
        print(f"| floor, verify on one core + SQLCipher upsert | {med['floor1']:,.0f} | "
              f"{floor.n / med['floor1']:.1f} s | {r1:.2f}x |")  # fmt: skip
        print(f"| floor, verify on two threads + SQLCipher upsert | {med['floor2']:,.0f} | "
              f"{floor.n / med['floor2']:.1f} s | {r2:.2f}x |")  # fmt: skip
        print(f"| (raw Ed25519 verify, one core) | {med['verify1']:,.0f} | | |")
        print(f"| (SQLCipher upsert alone) | {med['upsert']:,.0f} | | |")
        print(f"| (offline edits: validate, sign, merge, queue) | {med['edits']:,.0f} | | |")
        print()
        print(
            f"CPU time of one sync (median): laptop process {med['cpu']:.1f} s + hub workers {med['hub_cpu']:.1f} s, "
            f"{med['cpu_ratio']:.2f}x the floor's {med['floor_s']:.1f} s "
            f"(laptop alone {med['laptop_cpu_ratio']:.2f}x); all share the same 2 cores"
        )
        print("target: end to end within 1.5x of the floor")
    finally:
        hub.destroy()


def _device_keys(hub: HubInstance) -> dict[str, bytes]:
    from backend.db import db
    from backend.models import Device as DeviceRow

    app = hub.app()
    with app.app_context():
        return {d.id: b64d(d.public_key) for d in db.session.query(DeviceRow)}


# -- part 2: delta sync --------------------------------------------------------------------------
def bulk_log(hub: HubInstance, entries: int) -> None:
    """Write ``entries`` log rows of agency FAR (invisible to the laptop) straight into the log."""
    from backend import enroll, log
    from backend.db import db

    token = hub.token("FAR", "far officer")
    app = hub.app()
    with app.app_context():
        key = SigningKey.generate()
        answer = enroll.enroll(token, key.verify_key.to_text())
        db.session.remove()
        (templates,) = sign_feeds([(bytes(key), answer["device_id"], "FAR", 1000, 9)], processes=1)
        texts = [json.dumps(w, separators=(",", ":")) for w in templates]
        hashes = [change_hash(w) for w in templates]
        head = log.read_head()
        size, chain = head.size, head.head
        db.session.remove()  # SQLite: every transaction is BEGIN IMMEDIATE, so end this one first
        sqlite = db.engine.dialect.name == "sqlite"
        stamp: Any = time.strftime("%Y-%m-%d %H:%M:%S.000000") if sqlite else datetime.now(UTC)
        mark = "?" if sqlite else "%s"
        sql = (
            "INSERT INTO log (seq, change_id, hash, chain, device, device_seq, record_id, collection, agency,"
            f" resource_agency, hlc, wire, accepted_at) VALUES ({', '.join([mark] * 13)})"
        )
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            if sqlite:
                cur.execute("BEGIN")  # the hub's SQLite connections run in autocommit mode otherwise
            batch: list[tuple[Any, ...]] = []
            for i in range(entries):
                w = templates[i % len(templates)]
                h = hashes[i % len(hashes)]
                size += 1
                chain = log.chain_hash(chain, h)
                batch.append((size, str(uuid.uuid4()), h, chain, w["device"], i + 1, w["record_id"], "resources",
                              "FAR", None, w["hlc"], texts[i % len(texts)], stamp))  # fmt: skip
                if len(batch) == 20000:
                    cur.executemany(sql, batch)
                    batch = []
            if batch:
                cur.executemany(sql, batch)
            cur.execute(f"UPDATE log_head SET size = {mark}, head = {mark} WHERE id = 1", (size, chain))
            raw.commit()
        finally:
            raw.close()


def delta(args: Any, folder: Path) -> None:
    sizes = {"small": args.small, "large": args.large}
    hubs: dict[str, HubInstance] = {}
    try:
        laptops: dict[str, Device] = {}
        writers: dict[str, Any] = {}
        first: dict[str, float] = {}
        for name, size in sizes.items():
            hub = hubs[name] = HubInstance(args.database, folder / f"delta-{name}")
            hub.init({"LAP": "Laptop agency", "FAR": "An agency the laptop cannot see"})
            t0 = time.perf_counter()
            bulk_log(hub, size)
            print(f"delta {name}: {size:,} log entries written in {time.perf_counter() - t0:.0f} s", flush=True)
            hub.start(2)
            laptops[name] = new_laptop(hub, folder, "LAP", "laptop officer")
            writer = new_laptop(hub, folder, "LAP", "writer officer")
            edits.create(writer, "resources", {"kind": "vehicle", "name": "Pool car", "quantity": 1})
            agent.sync(writer, agent.client_for(writer))
            writers[name] = writer
            t0 = time.perf_counter()
            agent.sync(laptops[name], agent.client_for(laptops[name]))
            first[name] = time.perf_counter() - t0
        rng = random.Random(11)
        times: dict[str, list[float]] = {name: [] for name in sizes}
        for _ in range(args.rounds):
            for name in sizes:
                writer = writers[name]
                pool = [r["id"] for r in state.list_records(writer.replica, "resources")]
                for _ in range(args.new):
                    edits.update(writer, rng.choice(pool), {"quantity": rng.randint(0, 9)})
                agent.sync(writer, agent.client_for(writer))
                t0 = time.perf_counter()
                report = agent.sync(laptops[name], agent.client_for(laptops[name]))
                times[name].append(time.perf_counter() - t0)
                if report.pulled != args.new:
                    raise RuntimeError(f"expected {args.new} new changes, pulled {report.pulled}")
        ratio = statistics.median(b / a for a, b in zip(times["small"], times["large"], strict=True))
        print()
        print(
            f"delta sync: a laptop pulls {args.new} new changes; hub on {args.database}, gunicorn -w 2; "
            f"medians of {args.rounds} interleaved rounds; load average {load_average()}"
        )
        print()
        print("| hub log holds | `fieldsync sync` pulling the new changes | first sync of a fresh laptop |")
        print("| ---: | ---: | ---: |")
        for name, size in sizes.items():
            print(f"| {size:,} | {statistics.median(times[name]) * 1000:,.0f} ms | {first[name] * 1000:,.0f} ms |")
        print()
        print(f"large / small: {ratio:.2f}x (target: about 1x)")
        for laptop in (*laptops.values(), *writers.values()):
            laptop.replica.close()
    finally:
        for hub in hubs.values():
            hub.destroy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--remote", type=int, default=50_000, help="changes from others the laptop pulls")
    ap.add_argument("--local", type=int, default=1_000, help="offline edits the laptop pushes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    ap.add_argument("--small", type=int, default=10_000, help="log entries of the small hub (delta sync)")
    ap.add_argument("--large", type=int, default=1_000_000, help="log entries of the large hub (delta sync)")
    ap.add_argument("--new", type=int, default=10, help="new changes pulled in the delta-sync test")
    ap.add_argument("--skip-shift", action="store_true")
    ap.add_argument("--skip-delta", action="store_true")
    ap.add_argument(
        "--memory-security",
        choices=["on", "off"],
        default="off",
        help="the laptop's FIELDSYNC_REPLICA_MEMORY_SECURITY (once on, SQLCipher keeps it on for this process, "
        "the floor's connection included)",
    )
    args = ap.parse_args()
    os.environ["FIELDSYNC_REPLICA_MEMORY_SECURITY"] = args.memory_security
    print(f"load average at start: {load_average()}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="fieldsync-bench-sync-"))
    try:
        if not args.skip_shift:
            shift(args, folder)
        if not args.skip_delta:
            print()
            delta(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
