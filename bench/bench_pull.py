"""Hub CPU per change served by ``GET /api/v1/sync/pull``.

Run: ``.venv/bin/python bench/bench_pull.py [--changes N] [--database sqlite|postgresql] [--rounds R]
[--profile]``.

Set-up, not timed: a hub seeded as bench_sync.py's shift seeds it (``--changes`` signed changes
of 10 devices of SPD and CSO pushed through backend.push.push; agreements SPD -> LAP resources
and CSO -> LAP resources withholding ``notes``, so half the changes a LAP laptop pulls are
withheld ones).

Timed, per round:

- **in process**: every page of 500 the LAP laptop would pull, built as the API builds it
  (``backend.pull.page`` and its JSON body) and gzipped with zlib at levels 1 and 3 and with
  ISA-L (the isal package) at levels 0, 1 and 2 (the middleware uses ISA-L level 2), inside a
  request context; CPU time of this process per change.
- **gunicorn -w 2** on loopback: a LAP device enrolled over the API pulls every page through
  field_client.transport.HubClient; the hub workers' CPU time (``HubInstance.cpu_seconds``) per
  change served.

``--profile`` prints a cProfile of one in-process pass (top 30 by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sync import SEEDERS, seed_by_push
from hubproc import HubInstance, load_average
from isal import igzip

from backend.compression import LEVEL
from crypto import SigningKey
from field_client.transport import HubClient

PAGE = 1000  # the hub's default page (FIELDSYNC_PULL_LIMIT)
HUB = " (the hub's)"
COMPRESSORS = {
    **{f"zlib level {n}": (lambda body, n=n: gzip.compress(body, compresslevel=n)) for n in (1, 3)},
    **{f"ISA-L level {n}": (lambda body, n=n: igzip.compress(body, compresslevel=n)) for n in (0, 1, 2)},
}


def in_process(app, compress) -> tuple[int, float, int, int]:  # type: ignore[no-untyped-def]
    """(changes, CPU seconds, JSON bytes, gzip bytes) for one pass over every page."""
    from backend import pull
    from backend.db import db

    cursor, changes, raw, packed = 0, 0, 0, 0
    t0 = time.process_time()
    with app.test_request_context():
        while True:
            answer = pull.page("LAP", cursor, PAGE)
            body = answer.body()
            raw += len(body)
            packed += len(compress(body))
            changes += len(answer.changes)
            db.session.rollback()
            cursor = answer.next_cursor
            if not answer.more:
                break
    return changes, time.process_time() - t0, raw, packed


def over_http(hub: HubInstance, client: HubClient) -> tuple[int, float, float]:
    cursor, changes = 0, 0
    cpu0, t0 = hub.cpu_seconds(), time.perf_counter()
    while True:
        answer = client.pull(cursor, PAGE)
        changes += len(answer["changes"])
        cursor = answer["next_cursor"]
        if not answer["more"]:
            break
    return changes, hub.cpu_seconds() - cpu0, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=20_000)
    ap.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--skip-http", action="store_true")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fieldsync-bench-pull-"))
    hub = HubInstance(args.database, folder / "hub")
    try:
        hub.init({**SEEDERS, "LAP": "Laptop agency"})
        hub.cli("agreement", "add", "--from", "SPD", "--to", "LAP", "--collections", "resources")
        hub.cli("agreement", "add", "--from", "CSO", "--to", "LAP", "--collections", "resources",
                "--withhold", "notes")  # fmt: skip
        t0 = time.perf_counter()
        seed_by_push(hub, 10, args.changes)
        print(f"hub ({args.database}) seeded with {args.changes:,} changes in {time.perf_counter() - t0:.0f} s")
        print(f"load average {load_average()}")
        app = hub.app()
        for name, compress in COMPRESSORS.items():
            rows = [in_process(app, compress) for _ in range(args.rounds)]
            n, _, raw, packed = rows[0]
            cpu = statistics.median(r[1] for r in rows)
            t0 = time.process_time()
            body = b""
            with app.test_request_context():
                from backend import pull

                body = pull.page("LAP", 0, PAGE).body()
            gz = [time.perf_counter()]
            for _ in range(20):
                compress(body)
            gz.append(time.perf_counter())
            label = name + (HUB if name == f"ISA-L level {LEVEL}" else "")
            print(
                f"in process, {label}: {n:,} changes, {cpu / n * 1e6:.1f} us CPU per change "
                f"(build + gzip); JSON {raw / n:.0f} B/change, gzipped {packed / n:.0f} B/change "
                f"({packed / raw:.1%}); gzip of one page ({len(body):,} B) alone "
                f"{(gz[1] - gz[0]) / 20 * 1e3:.2f} ms = {(gz[1] - gz[0]) / 20 / PAGE * 1e6:.1f} us/change"
            )
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            in_process(app, COMPRESSORS[f"ISA-L level {LEVEL}"])
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        if not args.skip_http:
            hub.start(2)
            key = SigningKey.generate()
            answer = HubClient(hub.base_url).enroll(hub.token("LAP", "bench officer"), key.verify_key.to_text())
            client = HubClient(hub.base_url, device_id=answer["device_id"], key=key)
            over_http(hub, client)  # warm the workers
            rows = [over_http(hub, client) for _ in range(args.rounds)]
            n = rows[0][0]
            per = [r[1] / r[0] * 1e6 for r in rows]
            print(
                f"gunicorn -w 2: {n:,} changes per pass, hub workers {statistics.median(per):.1f} us CPU per change "
                f"(rounds: {', '.join(f'{p:.1f}' for p in per)}); wall {statistics.median(r[2] for r in rows):.2f} s"
            )
    finally:
        hub.destroy()


if __name__ == "__main__":
    main()
