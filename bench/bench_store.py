"""What storing one accepted change costs at the least, in raw Ed25519 verifications.

Run: ``.venv/bin/python bench/bench_store.py [--changes N] [--rounds R]``.

The hub benchmark's floor (bench_hub.py) counts only Ed25519 verification on
every core; the hub must also store each change it accepts. This measures a
lower bound of that storage, far below what the hub writes: only the change's
log row (the columns and indexes of ``backend.models.LogEntry``, the signed
change as JSON text), inserted with one ``executemany`` of 500 rows and one
commit per batch, through the drivers the hub uses (psycopg for PostgreSQL on
127.0.0.1:5432, the sqlite3 module on a WAL file), no ORM, no feed links, no
records, no HTTP. Per round, interleaved: (A) raw Ed25519 verify CPU per
change (PyNaCl, one core), and ``crypto.verify_change`` (the signature with the
field digests and change hash every change needs), (B) PostgreSQL: the server processes' CPU and this
process's (the driver) per row, (C) SQLite: this process's CPU per row (the
engine runs in it). Medians of the rounds, as ratios to (A).

Reading: on a machine whose cores the floor counts for verification, a hub
accepting a change spends at least 1 + (B or C) raw verifications of CPU on
it, before verifying anything but the signature, checking its schema,
authorizing or merging it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nacl.signing
import psycopg

from bench.hubproc import POSTGRES_ADMIN, load_average, postgres_cpu_seconds, sign_feeds
from crypto import SigningKey, VerifyKey, b64d, verify_change
from crypto.changes import _signed_bytes

COLUMNS = """seq bigint primary key, change_id varchar(64) unique, hash varchar(64), chain varchar(64),
    device varchar(64), device_seq bigint, record_id varchar(64), collection varchar(32), agency varchar(32),
    resource_agency varchar(32), hlc varchar(100), wire text, accepted_at varchar(32)"""
INDEXES = ("agency, seq", "resource_agency, seq", "device", "record_id")  # as backend.models.LogEntry
BATCH = 500


def rows_of(wires: list[dict], first_seq: int) -> list[tuple]:
    out = []
    for i, wire in enumerate(wires):
        text = json.dumps(wire, separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).hexdigest()
        out.append((first_seq + i, wire["id"], digest, digest, wire["device"], wire["seq"], wire["record_id"],
                    wire["collection"], wire["agency"], None, wire["hlc"], text, "2026-12-01T00:00:00Z"))  # fmt: skip
    return out


def create(execute, placeholder: str) -> str:  # type: ignore[no-untyped-def]
    execute(f"CREATE TABLE log ({COLUMNS})")
    for i, columns in enumerate(INDEXES):
        execute(f"CREATE INDEX ix_log_{i} ON log ({columns})")
    return f"INSERT INTO log VALUES ({', '.join([placeholder] * 13)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=5_000, help="rows inserted per round and database")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"load average at start: {load_average()}", flush=True)
    key = SigningKey.generate()
    total = args.changes * (args.rounds + 1)
    wires = sign_feeds([(bytes(key), "bench-device", "SPD", total, 1)], 1)[0]
    vk = nacl.signing.VerifyKey(b64d(key.verify_key.to_text()))
    raw = [(_signed_bytes(w), b64d(w["signature"])) for w in wires[: args.changes]]
    device_key = VerifyKey.from_text(key.verify_key.to_text())

    admin = POSTGRES_ADMIN.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"fieldsync_bench_store_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    folder = Path(tempfile.mkdtemp(prefix="fieldsync-bench-store-"))
    try:
        pg = psycopg.connect(admin.rsplit("/", 1)[0] + f"/{name}")
        pg_insert = create(pg.execute, "%s")
        pg.commit()
        lite = sqlite3.connect(folder / "log.db")
        lite.execute("PRAGMA journal_mode=WAL")
        lite_insert = create(lite.execute, "?")
        lite.commit()

        def pg_put(rows: list[tuple]) -> None:
            for start in range(0, len(rows), BATCH):
                with pg.cursor() as cur:
                    cur.executemany(pg_insert, rows[start : start + BATCH])
                pg.commit()

        def lite_put(rows: list[tuple]) -> None:
            for start in range(0, len(rows), BATCH):
                lite.executemany(lite_insert, rows[start : start + BATCH])
                lite.commit()

        warm = rows_of(wires[: args.changes], 1)
        pg_put(warm)
        lite_put(warm)
        verify, whole, server, driver, sqlite_cpu = [], [], [], [], []
        for r in range(args.rounds):
            rows = rows_of(wires[(r + 1) * args.changes : (r + 2) * args.changes], (r + 1) * args.changes + 1)
            c0 = time.process_time()
            for message, signature in raw:
                vk.verify(message, signature)
            verify.append((time.process_time() - c0) / len(raw))
            c0 = time.process_time()
            for wire in wires[: args.changes]:
                verify_change(wire, device_key)
            whole.append((time.process_time() - c0) / args.changes)
            s0, c0 = postgres_cpu_seconds(), time.process_time()
            pg_put(rows)
            driver.append((time.process_time() - c0) / len(rows))
            server.append((postgres_cpu_seconds() - s0) / len(rows))
            c0 = time.process_time()
            lite_put(rows)
            sqlite_cpu.append((time.process_time() - c0) / len(rows))
            print(f"round {r + 1}/{args.rounds}: verify {verify[-1] * 1e6:.1f} us; PostgreSQL server "
                  f"{server[-1] * 1e6:.1f} + driver {driver[-1] * 1e6:.1f} us/row; "
                  f"SQLite {sqlite_cpu[-1] * 1e6:.1f} us/row", flush=True)  # fmt: skip
        pg.close()
        lite.close()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')

    def ratio(values: list[float]) -> float:
        return statistics.median(v / f for v, f in zip(values, verify, strict=True))

    print()
    print(f"{args.changes:,} log rows per round and database, batches of {BATCH}; medians of {args.rounds} "
          f"interleaved rounds; load average {load_average()}")  # fmt: skip
    print()
    print("| step | CPU per change | in raw verifies |")
    print("| --- | ---: | ---: |")
    print(f"| raw Ed25519 verify (PyNaCl, one core) | {statistics.median(verify) * 1e6:.1f} us | 1.00 |")
    print(f"| `verify_change`: signature + field digests + change hash | {statistics.median(whole) * 1e6:.1f} us "
          f"| {ratio(whole):.2f} |")  # fmt: skip
    print(f"| PostgreSQL server, one log row | {statistics.median(server) * 1e6:.1f} us | {ratio(server):.2f} |")
    print(f"| psycopg driver, one log row | {statistics.median(driver) * 1e6:.1f} us | {ratio(driver):.2f} |")
    both = [s + d for s, d in zip(server, driver, strict=True)]
    print(f"| PostgreSQL, server + driver | {statistics.median(both) * 1e6:.1f} us | {ratio(both):.2f} |")
    lite_us = statistics.median(sqlite_cpu) * 1e6
    print(f"| SQLite (in process), one log row | {lite_us:.1f} us | {ratio(sqlite_cpu):.2f} |")
    print()
    print(f"a hub storing each accepted change's log row, and doing nothing else, costs at least "
          f"{1 + ratio(both):.2f}x (PostgreSQL) / {1 + ratio(sqlite_cpu):.2f}x (SQLite) the floor's CPU per change; "
          f"with the change's own check (verify_change) {ratio(whole) + ratio(both):.2f}x / "
          f"{ratio(whole) + ratio(sqlite_cpu):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
