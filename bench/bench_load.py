"""Load benchmark: many devices pushing and pulling at once on two hub processes sharing one database.

Run: ``make bench-load`` (or ``.venv/bin/python bench/bench_load.py [--devices N] [--batches B]
[--batch C] [--workers 3,2] [--runs R] [--database postgresql]``).

The same shape as tests/resilience/test_load.py, larger: per run, a fresh hub
(real ``fieldsync-hub init``, three agencies, the agreements of
bench/devices.py) on a fresh PostgreSQL database on 127.0.0.1:5432 (dropped
afterwards), served by one gunicorn process per ``--workers`` entry (two
machines behind a load balancer); N devices enrolled over the API, each with
its own key and certificate, their feeds pre-signed (not timed). Then all at
once, each device pushes B batches of C changes and after each push pulls what
is new (pages of ``--pull-limit``), its requests alternating between the hub
processes; once every device has pushed, each pulls once more. Timed from the
first request to the last answer.

Afterwards :func:`bench.devices.check_load` compares the hub's log and every
device's pulls with what was sent: ``errors`` counts requests that were not
2xx (a 503 is retried and counted under ``retries``), ``lost`` counts accepted
changes missing from the log, doubled there, or never delivered to a device
that may see them. Figures are medians over the runs; the load generator runs
on the same machine, and its CPU time is printed beside the hub's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.devices import AGENCIES, AGREEMENTS, SimDevice, check_load, run_mixed, set_up
from bench.hubproc import HubInstance, load_average, percentile, sign_feeds


def one_run(args: Any, workers: list[int], run_no: int) -> dict[str, Any]:
    hub = HubInstance(args.database)
    try:
        set_up(hub, AGENCIES)
        servers = hub.serve_all(workers)
        ports = [s.port for s in servers]
        codes = list(AGENCIES)
        devices = [
            SimDevice.enroll(hub, codes[i % len(codes)], f"officer {i}", ports, first=i) for i in range(args.devices)
        ]
        count = args.batches * args.batch
        t0 = time.perf_counter()
        jobs = [(d.seed, d.device_id, d.agency, count, 1000 * run_no + i) for i, d in enumerate(devices)]
        for dev, wires in zip(devices, sign_feeds(jobs), strict=True):
            dev.load_feed(wires, args.batch)
        print(
            f"run {run_no + 1}: {args.devices} devices on {len(servers)} hub processes "
            f"(gunicorn -w {' and -w '.join(map(str, workers))}, {args.database}); "
            f"{args.devices * count:,} changes pre-signed in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        hub_cpu0, client_cpu0 = hub.cpu_seconds(), time.process_time()
        wall = run_mixed(devices, args.pull_limit)
        hub_cpu, client_cpu = hub.cpu_seconds() - hub_cpu0, time.process_time() - client_cpu0
        check = check_load(hub, devices, AGREEMENTS)
    finally:
        hub.destroy()
    push = [x for d in devices for x in d.latencies["push"]]
    pull = [x for d in devices for x in d.latencies["pull"]]
    out = {
        "wall": wall,
        "accepted": check.accepted,
        "changes_s": check.accepted / wall,
        "pulls_s": len(pull) / wall,
        "pulled_s": sum(len(d.pulled) for d in devices) / wall,
        "push_p50": percentile(push, 50),
        "push_p99": percentile(push, 99),
        "pull_p50": percentile(pull, 50),
        "pull_p99": percentile(pull, 99),
        "errors": len(check.errors),
        "retries": sum(d.retries for d in devices),
        "lost": len(check.lost) + len(check.doubled) + len(check.missing),
        "other": len(check.log) + len(check.extra) + len(check.altered),
        "hub_cpu": hub_cpu,
        "client_cpu": client_cpu,
        "pushes": len(push),
        "pulls": len(pull),
    }
    print(
        f"  {out['accepted']:,} changes in {wall:.1f} s: {out['changes_s']:,.0f} changes/s, "
        f"{out['pulls_s']:,.0f} pulls/s; errors {out['errors']}, retries {out['retries']}, lost {out['lost']}, "
        f"other problems {out['other']}",
        flush=True,
    )
    for name, found in check.problems().items():
        print(f"  {name}: {len(found)}, first: {found[0]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=40)
    ap.add_argument("--batches", type=int, default=5, help="pushes per device, each followed by pulls")
    ap.add_argument("--batch", type=int, default=100, help="changes per push")
    ap.add_argument("--pull-limit", type=int, default=500, help="changes per pull page")
    ap.add_argument("--workers", default="3,2", help="gunicorn workers of each hub process, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--database", default="postgresql", choices=["postgresql", "sqlite"])
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",") if w.strip()]

    print(f"load average at start: {load_average()}", flush=True)
    runs = [one_run(args, workers, r) for r in range(args.runs)]

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print()
    print(
        f"{args.devices} devices, {args.batches} pushes of {args.batch} changes each, pulls of up to "
        f"{args.pull_limit} after every push; {len(workers)} hub processes (gunicorn -w "
        f"{' and -w '.join(map(str, workers))}) on one {args.database}; medians of {args.runs} runs; "
        f"load average {load_average()}"
    )
    print()
    print(
        "| devices | changes/s | pull requests/s | pulled changes/s | push p50 / p99 | pull p50 / p99 "
        "| errors | retries | lost | hub CPU / client CPU |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {args.devices} | {med('changes_s'):,.0f} | {med('pulls_s'):,.0f} | {med('pulled_s'):,.0f} | "
        f"{med('push_p50') * 1000:,.0f} / {med('push_p99') * 1000:,.0f} ms | "
        f"{med('pull_p50') * 1000:,.0f} / {med('pull_p99') * 1000:,.0f} ms | "
        f"{sum(r['errors'] for r in runs)} | {sum(r['retries'] for r in runs)} | {sum(r['lost'] for r in runs)} | "
        f"{med('hub_cpu'):.1f} s / {med('client_cpu'):.1f} s |"
    )
    print()
    print(
        f"per run: {runs[0]['pushes']} pushes and about {round(med('pulls'))} pulls; errors, retries and lost are "
        f"totals over the {args.runs} runs (lost: accepted changes missing from the log, doubled in it, or never "
        "delivered to a device that may see them)"
    )
    if any(r["errors"] or r["lost"] or r["other"] for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
