"""Replica opening cost: why the laptop derives its SQLCipher key with Argon2id INTERACTIVE.

Run: ``.venv/bin/python bench/bench_replica.py [--rounds R]``

Times, as medians of R interleaved rounds on this machine, opening an
enrolled-size replica (a few hundred records) with:

- Argon2id INTERACTIVE (64 MiB, 2 passes) -> raw SQLCipher key (what fieldsync uses),
- Argon2id MODERATE (256 MiB, 3 passes) -> raw key,
- SQLCipher 4's own default, PBKDF2-HMAC-SHA512 with 256,000 iterations.

Argon2id is memory-hard (a stolen laptop's passphrase costs an attacker
64 MiB per guess, which GPUs do badly), PBKDF2 is not; INTERACTIVE keeps
opening well under half a second, MODERATE would not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlcipher3

from crypto import INTERACTIVE, MODERATE
from crypto.sealed import derive_key
from field_client.replica import Replica

PASSPHRASE = "correct horse battery staple"


def make(folder: Path, cost) -> Path:  # type: ignore[no-untyped-def]
    home = folder / cost.__class__.__name__ / str(cost.opslimit)
    with Replica.create(home, PASSPHRASE, cost=cost) as rep, rep.transaction():
        for i in range(300):
            rep.conn.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (f"k{i}", '"' + "x" * 200 + '"'))
    return home


def open_argon(home: Path) -> None:
    Replica.open(home, PASSPHRASE).close()


def open_pbkdf2(path: Path) -> None:
    conn = sqlcipher3.connect(str(path))
    conn.execute(f"PRAGMA key = '{PASSPHRASE}'")
    conn.execute("SELECT count(*) FROM t").fetchone()
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        interactive, moderate = make(folder, INTERACTIVE), make(folder / "m", MODERATE)
        pbkdf2 = folder / "pbkdf2.db"
        conn = sqlcipher3.connect(str(pbkdf2))
        conn.execute(f"PRAGMA key = '{PASSPHRASE}'")
        conn.execute("CREATE TABLE t(x)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 200,)] * 300)
        conn.commit()
        conn.close()
        steps = {
            "argon2id INTERACTIVE (fieldsync)": lambda: open_argon(interactive),
            "argon2id MODERATE": lambda: open_argon(moderate),
            "SQLCipher default PBKDF2 256k": lambda: open_pbkdf2(pbkdf2),
        }
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
        derive = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            derive_key(PASSPHRASE, b"s" * 16, INTERACTIVE)
            derive.append(time.perf_counter() - t0)
    print(f"opening a replica, median of {args.rounds} interleaved rounds")
    for name, values in times.items():
        print(f"  {name:<34} {statistics.median(values) * 1000:7.0f} ms")
    print(f"  (of which Argon2id INTERACTIVE key derivation alone: {statistics.median(derive) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
