"""Core benchmark: raw PyNaCl verify/s, fieldsync verify-a-change/s, merge applies/s.

Run: ``make bench`` (or ``.venv/bin/python bench/bench_core.py [--changes N] [--rounds R]``).

All three figures come from one run on one machine, each the median of R
rounds, and the rounds are interleaved (raw, verify, chain, merge, raw, ...) with the
ratios taken per round, so they hold even on a noisy shared machine. The workload is
a realistic mix: officers on 8 devices create 1 in 5 records and otherwise
edit one or two fields of an existing record (status, notes, quantity),
about a third of the edits concurrent with another device's.

Targets (issue 2): verify-a-change costs at most 1.5x a raw Ed25519 verify,
and the merge engine applies at least 5x more changes per second than a
change can be verified, so signatures stay the floor.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nacl.signing

from crypto import (
    KeyRegistry,
    SigningKey,
    agency_entry,
    hub_entry,
    issue_certificate,
    verify_change,
)
from crypto.changes import _signed_bytes
from crypto.encoding import b64d
from sync import Clock, MergeState, Verifier, make_change
from sync.changes import Change


def workload(n: int, seed: int = 7):
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    hub, agency = SigningKey.generate(), SigningKey.generate()
    entries: list = []
    entries.append(hub_entry(entries, hub, at=start))
    entries.append(agency_entry(entries, agency, agency="SPD", name="Springfield PD", at=start))
    registry = KeyRegistry.verify(entries)
    now = [int(start.timestamp() * 1000) + 3_600_000]
    devices = []
    for i in range(8):
        key, did = SigningKey.generate(), str(uuid.uuid4())
        cert = issue_certificate(
            agency,
            device_id=did,
            device_key=key.verify_key,
            agency="SPD",
            officer=f"officer {i}",
            not_before=start,
            not_after=start + timedelta(days=365),
        )
        devices.append(
            {"key": key, "id": did, "cert": cert, "clock": Clock(did, now_ms=lambda: now[0]), "seq": 0, "prev": None}
        )
    state = MergeState()
    verifier = Verifier(registry)
    wires = []
    records: list[str] = []
    for _ in range(n):
        now[0] += rng.randint(1, 50)
        dev = rng.choice(devices)
        if not records or rng.random() < 0.2:
            rid, seen = str(uuid.uuid4()), {}
            values = {"kind": "vehicle", "name": f"Unit {len(records)}", "status": "available", "quantity": 1}
            records.append(rid)
        else:
            rid = rng.choice(records)
            rec = state.records[rid]
            seen = rec.seen()
            if rng.random() < 0.3:  # concurrent: the author had not seen the newest value
                seen = {k: None for k in seen}
            field = rng.choice(["status", "notes", "quantity"])
            values = {
                field: {
                    "status": rng.choice(["available", "deployed", "maintenance"]),
                    "notes": f"shift note {rng.random():.6f}",
                    "quantity": rng.randint(0, 9),
                }[field]
            }
            if rng.random() < 0.3:
                values["status"] = rng.choice(["available", "deployed"])
        dev["seq"] += 1
        wire = make_change(
            dev["key"],
            collection="resources",
            record_id=rid,
            agency="SPD",
            device=dev["id"],
            seq=dev["seq"],
            prev=dev["prev"],
            hlc=str(dev["clock"].now()),
            values=values,
            seen=seen,
        )
        change = verifier.verify(wire, dev["cert"])
        dev["prev"] = change.hash
        state.apply(change)
        wires.append((wire, dev["cert"], dev["key"].verify_key))
    return wires, verifier


def interleaved(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Per round, time every step back to back, so that each round's ratios
    compare runs made under the same machine conditions."""
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (fn, items) in fns.items():
            t0 = time.perf_counter()
            fn(items)
            seconds[name].append(time.perf_counter() - t0)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    wires, verifier = workload(args.changes)
    raw = [(nacl.signing.VerifyKey(bytes(vk)), _signed_bytes(w), b64d(w["signature"])) for w, _, vk in wires]
    changes = [Change.from_verified(verify_change(w, vk)) for w, _, vk in wires]

    def raw_verify(items):
        for vk, message, signature in items:
            vk.verify(message, signature)

    def change_verify(items):
        for wire, _, vk in items:
            verify_change(wire, vk)

    def chain_verify(items):
        for wire, cert, _ in items:
            verifier.verify(wire, cert)

    def merge(items):
        state = MergeState()
        for change in items:
            state.apply(change)

    steps = {
        "raw": (raw_verify, raw),
        "verify": (change_verify, wires),
        "chain": (chain_verify, wires),
        "merge": (merge, changes),
    }
    secs = interleaved(steps, args.rounds)
    n = len(wires)
    per_s = {name: n / statistics.median(times) for name, times in secs.items()}
    ratio = {
        name: statistics.median(t / r for t, r in zip(secs[name], secs["raw"], strict=True))
        for name in ("verify", "chain")
    }
    merge_x = statistics.median(c / m for c, m in zip(secs["chain"], secs["merge"], strict=True))
    fields = statistics.mean(len(w["fields"]) for w, _, _ in wires)
    print(f"workload: {n} changes, {fields:.2f} fields per change; medians of {args.rounds} interleaved rounds")
    print(f"raw PyNaCl Ed25519 verify      {per_s['raw']:10,.0f} /s")
    print(
        f"verify_change (sig + digests)  {per_s['verify']:10,.0f} /s   "
        f"cost {ratio['verify']:.2f}x raw   (target <= 1.5x)"
    )
    print(f"Verifier.verify (full chain)   {per_s['chain']:10,.0f} /s   cost {ratio['chain']:.2f}x raw")
    print(
        f"merge engine apply             {per_s['merge']:10,.0f} /s   {merge_x:.1f}x full-chain verify   (target >= 5x)"
    )


if __name__ == "__main__":
    main()
