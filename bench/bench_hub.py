"""Hub benchmark: N devices pushing and pulling at once against gunicorn, on PostgreSQL and SQLite.

Run: ``make bench-hub`` (or ``.venv/bin/python bench/bench_hub.py [--devices N] [--rounds R]
[--batches B] [--databases postgresql,sqlite] [--workers W]``).

Set-up (not timed): for each database, a temporary hub made with the real
``fieldsync-hub init`` / ``agency create`` / ``agreement add`` / ``device token``
(PostgreSQL: a fresh database on 127.0.0.1:5432, dropped at the end), served
by ``gunicorn -w W "backend:create_app()"`` on a free loopback port; N devices
of two agencies enrolled over the API; every change of every round signed
beforehand (two processes), and every request body serialized and gzipped
beforehand, so that the load generator costs little: per request it only signs
the request headers (one Ed25519 signature) and parses the answer.

Rounds are interleaved as in bench_core.py: per round, (A) the floor — raw
Ed25519 verifications/s on one core, times W worker cores — then for each
database (B, C) a push phase (every device pushes B batches of 500 changes, all
devices at once) and a pull phase (every device pulls B pages of 500 after
the round's starting cursor). Ratios are taken per round, figures are medians.

The load generator runs on the same machine as the hub: its CPU time and the
hub's are both measured and printed, so the share the client took from the
hub is visible. So does PostgreSQL: its server processes' CPU during the push
phases is printed per accepted change, in raw verifications, which bounds
what any hub storing the changes there can reach on these cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nacl.signing

from bench.devices import AGENCIES as ALL_AGENCIES
from bench.devices import SimDevice, set_up
from bench.hubproc import HubInstance, load_average, percentile, postgres_cpu_seconds, sign_feeds
from crypto import b64d
from crypto.changes import _signed_bytes

AGENCIES = {code: ALL_AGENCIES[code] for code in ("SPD", "CSO")}  # the two that share resources both ways


class Fleet:
    """The enrolled devices of one hub and their pre-built request bodies."""

    def __init__(self, hub: HubInstance, devices: int, batch: int, batches_per_round: int, rounds: int) -> None:
        self.hub, self.batch, self.per_round = hub, batch, batches_per_round
        self.devices = [
            SimDevice.enroll(hub, list(AGENCIES)[i % len(AGENCIES)], f"officer {i}", [hub.port]) for i in range(devices)
        ]
        self.count = batch * batches_per_round * rounds
        self.cursor = 0  # the log size so far
        self.round_start = 0  # the log size before the current round's pushes

    def sign(self, offset: int) -> None:
        jobs = [(d.seed, d.device_id, d.agency, self.count, offset + i) for i, d in enumerate(self.devices)]
        for dev, wires in zip(self.devices, sign_feeds(jobs), strict=True):
            dev.load_feed(wires, self.batch)

    def run(self, phase: str, round_no: int) -> dict[str, Any]:
        """All devices at once; returns changes, wall time, per-request latencies, CPU times."""
        latencies: list[float] = []
        counted = [0]
        errors_before = [len(d.errors) for d in self.devices]
        lock = threading.Lock()
        start = threading.Barrier(len(self.devices) + 1)
        if phase == "push":
            self.round_start = self.cursor
        cursor = self.round_start

        def device_loop(dev: SimDevice) -> None:
            start.wait()
            for b in range(self.per_round):
                t0 = time.perf_counter()
                if phase == "push":
                    n = dev.push(round_no * self.per_round + b)
                else:
                    n = len(dev.pull(cursor + b * self.batch, self.batch).get("changes", ()))
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    counted[0] += n

        threads = [threading.Thread(target=device_loop, args=(d,)) for d in self.devices]
        for t in threads:
            t.start()
        hub_cpu0, client_cpu0, pg_cpu0 = self.hub.cpu_seconds(), time.process_time(), postgres_cpu_seconds()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        result = {
            "changes": counted[0],
            "wall": wall,
            "latencies": latencies,
            "hub_cpu": self.hub.cpu_seconds() - hub_cpu0,
            "client_cpu": time.process_time() - client_cpu0,
            "pg_cpu": postgres_cpu_seconds() - pg_cpu0,
            "errors": [e for d, n in zip(self.devices, errors_before, strict=True) for e in d.errors[n:]],
        }
        if phase == "push":
            self.cursor += counted[0]
        return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--batch", type=int, default=500, help="changes per push (the hub's MAX_BATCH is 500)")
    ap.add_argument("--batches", type=int, default=1, help="batches each device pushes (and pages it pulls) per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    ap.add_argument("--databases", default="postgresql,sqlite")
    ap.add_argument("--floor-sample", type=int, default=4000, help="signatures verified per floor measurement")
    args = ap.parse_args()
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]

    print(f"load average at start: {load_average()}", flush=True)
    hubs: dict[str, HubInstance] = {}
    fleets: dict[str, Fleet] = {}
    try:
        for i, name in enumerate(databases):
            hub = hubs[name] = HubInstance(name)
            set_up(hub, AGENCIES)
            hub.start(args.workers)
            fleet = fleets[name] = Fleet(hub, args.devices, args.batch, args.batches, args.rounds)
            t0 = time.perf_counter()
            fleet.sign(offset=1000 * i)
            print(
                f"{name}: hub on {hub.base_url} (gunicorn -w {args.workers}), {args.devices} devices enrolled, "
                f"{args.devices * fleet.count:,} changes pre-signed in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )

        sample_dev = next(iter(fleets.values())).devices[0]
        vk = nacl.signing.VerifyKey(b64d(sample_dev.answer["certificate"]["device_key"]))
        raw = [(vk, _signed_bytes(w), b64d(w["signature"])) for w in sample_dev.wires[: args.floor_sample]]
        while len(raw) < args.floor_sample:
            raw += raw[: args.floor_sample - len(raw)]

        floor_per_s: list[float] = []
        floor_cpu: list[float] = []  # CPU seconds per verification (robust to a busy machine)
        results: dict[str, dict[str, list[dict[str, Any]]]] = {n: {"push": [], "pull": []} for n in databases}
        for r in range(args.rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            for key, message, signature in raw:
                key.verify(message, signature)
            floor_per_s.append(len(raw) / (time.perf_counter() - t0) * args.workers)
            floor_cpu.append((time.process_time() - c0) / len(raw))
            for name in databases:
                for phase in ("push", "pull"):
                    out = fleets[name].run(phase, r)
                    results[name][phase].append(out)
                    if out["errors"]:
                        print(f"  {name} {phase} round {r + 1}: {len(out['errors'])} errors, first: {out['errors'][0]}")
            line = ", ".join(
                f"{n} push {results[n]['push'][-1]['changes'] / results[n]['push'][-1]['wall']:,.0f}/s"
                for n in databases
            )
            print(f"round {r + 1}/{args.rounds}: floor {floor_per_s[-1]:,.0f}/s; {line}", flush=True)

        report(args, databases, floor_per_s, floor_cpu, results)
    finally:
        for hub in hubs.values():
            hub.destroy()


def report(
    args: Any, databases: list[str], floor: list[float], floor_cpu: list[float], results: dict[str, Any]
) -> None:
    print()
    print(
        f"{args.devices} devices, {args.batch}-change batches, {args.batches} per device per round, "
        f"gunicorn -w {args.workers}; medians of {args.rounds} interleaved rounds; load average {load_average()}"
    )
    print(f"floor: raw Ed25519 verify on one core x {args.workers} workers = {statistics.median(floor):,.0f} /s")
    print()
    print(
        "| database | accepted changes/s | floor / accepted | push p50 / p99 | pulled changes/s | pull p50 / p99 "
        "| hub CPU / client CPU (push) | CPU per accepted change / per raw verify |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in databases:
        push, pull = results[name]["push"], results[name]["pull"]
        rates = [p["changes"] / p["wall"] for p in push]
        ratio = statistics.median(f / rate for f, rate in zip(floor, rates, strict=True))
        lat = [x for p in push for x in p["latencies"]]
        plat = [x for p in pull for x in p["latencies"]]
        pulled = statistics.median(p["changes"] / p["wall"] for p in pull)
        hub_cpu = sum(p["hub_cpu"] for p in push)
        client_cpu = sum(p["client_cpu"] for p in push)
        cpu_ratio = statistics.median(
            p["hub_cpu"] / p["changes"] / f for p, f in zip(push, floor_cpu, strict=True) if p["changes"]
        )
        print(
            f"| {name} | {statistics.median(rates):,.0f} | {ratio:.2f}x | "
            f"{percentile(lat, 50) * 1000:,.0f} / {percentile(lat, 99) * 1000:,.0f} ms | {pulled:,.0f} | "
            f"{percentile(plat, 50) * 1000:,.0f} / {percentile(plat, 99) * 1000:,.0f} ms | "
            f"{hub_cpu:.1f} s / {client_cpu:.1f} s | {cpu_ratio:.2f}x |"
        )
    print()
    for name in databases:
        push = results[name]["push"]
        pushes = sum(len(p["latencies"]) for p in push)
        per_push = sum(p["hub_cpu"] for p in push) / pushes
        print(
            f"{name}: hub CPU per {args.batch}-change push {per_push * 1000:,.0f} ms; with {args.devices} devices "
            f"pushing at once on {args.workers} workers the last waits about "
            f"{args.devices / args.workers * per_push * 1000:,.0f} ms (devices / workers x CPU per push)"
        )
    if "postgresql" in databases:
        push = results["postgresql"]["push"]
        pg = statistics.median(
            p["pg_cpu"] / p["changes"] / f for p, f in zip(push, floor_cpu, strict=True) if p["changes"]
        )
        print(
            f"postgresql: the PostgreSQL server's own CPU per accepted change = {pg:.2f}x a raw verify; it shares "
            f"the cores the floor counts, so floor / accepted >= 1 + {pg:.2f} = {1 + pg:.2f}x "
            "before the hub's own work (HTTP, checks, merge, the driver)"
        )
    print()
    print("targets: floor / accepted <= 1.5x; p99 of a 500-change push with 20 devices < 500 ms")
    print(f"(p99 over {len(results[databases[0]]['push']) * args.devices * args.batches} pushes per database)")


if __name__ == "__main__":
    main()
