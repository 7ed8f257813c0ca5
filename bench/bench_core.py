"""Core benchmark: raw PyNaCl verify/s, fieldsync verify-a-change/s, merge applies/s.

Run: ``make bench`` (or ``.venv/bin/python bench/bench_core.py [--changes N] [--rounds R]``).

All three figures come from one run on one machine, each the median of R
rounds, so their ratios hold even on a noisy shared machine. The workload is
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
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nacl.signing  # noqa: E402

from crypto import (  # noqa: E402
    SigningKey,
    agency_entry,
    hub_entry,
    issue_certificate,
    KeyRegistry,
    verify_change,
)
from crypto.changes import _signed_bytes  # noqa: E402
from crypto.encoding import b64d  # noqa: E402
from sync import Clock, MergeState, Verifier, make_change  # noqa: E402
from sync.changes import Change  # noqa: E402


def workload(n: int, seed: int = 7):
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
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
            agency, device_id=did, device_key=key.verify_key, agency="SPD", officer=f"officer {i}",
            not_before=start, not_after=start + timedelta(days=365),
        )
        devices.append({"key": key, "id": did, "cert": cert, "clock": Clock(did, now_ms=lambda: now[0]), "seq": 0, "prev": None})
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
            values = {field: {"status": rng.choice(["available", "deployed", "maintenance"]),
                              "notes": f"shift note {rng.random():.6f}", "quantity": rng.randint(0, 9)}[field]}
            if rng.random() < 0.3:
                values["status"] = rng.choice(["available", "deployed"])
        dev["seq"] += 1
        wire = make_change(
            dev["key"], collection="resources", record_id=rid, agency="SPD", device=dev["id"], seq=dev["seq"],
            prev=dev["prev"], hlc=str(dev["clock"].now()), values=values, seen=seen,
        )
        change = verifier.verify(wire, dev["cert"])
        dev["prev"] = change.hash
        state.apply(change)
        wires.append((wire, dev["cert"], dev["key"].verify_key))
    return wires, verifier


def rate(fn, items, rounds: int) -> float:
    """Median items per second over rounds."""
    results = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(items)
        results.append(len(items) / (time.perf_counter() - t0))
    return statistics.median(results)


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

    raw_s = rate(raw_verify, raw, args.rounds)
    ver_s = rate(change_verify, wires, args.rounds)
    chain_s = rate(chain_verify, wires, args.rounds)
    merge_s = rate(merge, changes, args.rounds)
    fields = statistics.mean(len(w["fields"]) for w, _, _ in wires)
    print(f"workload: {len(wires)} changes, {fields:.2f} fields per change, median of {args.rounds} rounds")
    print(f"raw PyNaCl Ed25519 verify      {raw_s:10,.0f} /s")
    print(f"verify_change (sig + digests)  {ver_s:10,.0f} /s   cost {raw_s / ver_s:.2f}x raw   (target <= 1.5x)")
    print(f"Verifier.verify (full chain)   {chain_s:10,.0f} /s   cost {raw_s / chain_s:.2f}x raw")
    print(f"merge engine apply             {merge_s:10,.0f} /s   {merge_s / chain_s:.1f}x verify   (target >= 5x)")


if __name__ == "__main__":
    main()
