"""A/B of a laptop's sync after a shift, between source trees, against one hub (issue 4, point 6).

Run: ``.venv/bin/python bench/bench_sync_ab.py --tree OLD --tree NEW [--rounds R] [--remote N] [--hubs]``,
each tree a checkout of fieldsync (``git worktree add /tmp/old <commit>``); ``--env KEY=VALUE``
sets a variable for every laptop of the tree before it (``--tree T --env FIELDSYNC_PULL_COMMIT=1``).

bench_sync.py measures one tree against the floor; on a shared, noisy 2-core machine its
rounds move by 10-30% from one minute to the next, more than most changes to the code. This
script compares trees under the same conditions instead. Set-up, not timed: a hub made and
seeded as bench_sync.py's shift (this tree's hub code, ``--remote`` changes through the push
path, two agencies sharing their resources with each laptop's agency, one withholding
``notes``), served by gunicorn -w 2 on loopback. Then per round, each tree in turn (in the
opposite order every other round): a fresh
laptop (an agency of its own, so that every laptop pulls the same changes) in a process of its
own started in that tree, so that it imports the tree's field_client (and its verification
worker too); it enrolls, makes ``--local`` edits offline and syncs. Timed: the sync. Reported
per tree: medians of the wall time, of the CPU of the laptop's process, of its verification
worker and of the hub's workers, and how many rounds the last tree won against the first.

``--hubs``: the hub's code is compared too. Each tree then serves the one seeded instance
(the same SQLite database) with a gunicorn -w 2 of its own started in that tree, and each
tree's laptops sync with that one; the hub CPU reported is that server's. (The seeding and
the schema are this tree's: the trees compared must share the hub's schema.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PASSPHRASE = "bench laptop passphrase"


def laptop(base_url: str, token: str, home: str, local: int) -> dict[str, float]:
    """In the tree's own process: enroll, edit offline, sync (timed)."""
    import resource

    from crypto import SigningKey
    from field_client import agent, edits
    from field_client.device import Device, enroll_into
    from field_client.replica import Replica
    from field_client.transport import HubClient

    key = SigningKey.generate()
    replica = Replica.create(Path(home), PASSPHRASE)
    enroll_into(replica, hub_url=base_url, key=key, answer=HubClient(base_url).enroll(token, key.verify_key.to_text()))
    device = Device(replica)
    rng, mine = random.Random(5), []
    for i in range(local):  # bench_sync.py's shift: one edit in five creates a resource
        if not mine or rng.random() < 0.2:
            mine.append(edits.create(device, "resources", {"kind": "vehicle", "name": f"Car {i}", "quantity": 1})["id"])
        else:
            field = rng.choice(["status", "notes", "quantity"])
            value = {"status": rng.choice(["available", "deployed"]), "notes": f"note {rng.random():.6f}",
                     "quantity": rng.randint(0, 9)}[field]  # fmt: skip
            edits.update(device, rng.choice(mine[-50:]), {field: value})
    cpu0, t0 = time.process_time(), time.perf_counter()
    report = agent.sync(device, agent.client_for(device))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    time.sleep(1.0)  # the verification worker exits and is reaped: its CPU is then the children's
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    replica.close()
    return {
        "wall": wall,
        "cpu": cpu,
        "worker": children.ru_utime + children.ru_stime,
        "pulled": report.pulled,
        "accepted": report.accepted,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", required=True, help="a fieldsync checkout (twice or more)")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the laptops of the tree before it")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--remote", type=int, default=50_000)
    ap.add_argument("--local", type=int, default=1_000)
    ap.add_argument(
        "--hubs",
        action="store_true",
        help="each tree's laptops sync with a hub running that tree's code (same instance and database)",
    )
    ap.add_argument("--laptop", nargs=2, metavar=("URL", "HOME"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.laptop:  # the child: the tree's code comes first on the path (see _run)
        url, home = args.laptop  # the enrollment token comes in the environment (see _run)
        print(json.dumps(laptop(url, os.environ.pop("FIELDSYNC_BENCH_TOKEN"), home, args.local)))
        return
    trees, envs = _trees(sys.argv[1:])
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_sync import SEEDERS, seed_by_push
    from hubproc import HubInstance, load_average

    folder = Path(tempfile.mkdtemp(prefix="fieldsync-bench-ab-"))
    hub = HubInstance("sqlite", folder / "hub")
    try:
        codes = [f"LAP{i + 1}" for i in range(args.rounds * len(trees))]
        hub.init({**SEEDERS, **{code: f"Laptop agency {code}" for code in codes}})
        for code in codes:
            hub.cli("agreement", "add", "--from", "SPD", "--to", code, "--collections", "resources")
            hub.cli("agreement", "add", "--from", "CSO", "--to", code, "--collections", "resources",
                    "--withhold", "notes")  # fmt: skip
        seed_by_push(hub, 10, args.remote)
        tokens = [hub.token(code, f"officer of {code}") for code in codes]
        # --hubs: each tree's own hub code, gunicorn -w 2 each, on the one instance and database
        servers = [hub.serve(2, root=Path(tree)) for tree in trees] if args.hubs else [hub.serve(2)] * len(trees)
        print(f"hub seeded with {args.remote:,} changes; load average {load_average()}", flush=True)
        rows: dict[int, list[dict[str, float]]] = {i: [] for i in range(len(trees))}
        for r in range(args.rounds):
            # the trees' order is reversed every other round: the hub's log grows by a laptop's
            # edits each time, and the machine drifts, so neither favours one tree
            for i in range(len(trees)) if r % 2 == 0 else reversed(range(len(trees))):
                tree = trees[i]
                server = servers[i]
                hub_cpu0 = server.cpu_seconds()
                row = _run(tree, envs[i], server.base_url, tokens.pop(0), folder / f"home-{r}-{i}", args.local)
                row["hub"] = server.cpu_seconds() - hub_cpu0
                if row["pulled"] != args.remote + args.local or row["accepted"] != args.local:
                    raise RuntimeError(f"unexpected sync from {tree}: {row}")
                rows[i].append(row)
                print(f"round {r + 1}/{args.rounds} {tree}: " + ", ".join(f"{k} {row[k]:.2f} s"
                      for k in ("wall", "cpu", "worker", "hub")), flush=True)  # fmt: skip
        print(f"\nmedians of {args.rounds} interleaved rounds; load average {load_average()}\n")
        print("| tree | sync wall | laptop process CPU | verification worker CPU | hub workers CPU |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for i, tree in enumerate(trees):
            med = {k: statistics.median(row[k] for row in rows[i]) for k in ("wall", "cpu", "worker", "hub")}
            label = tree + "".join(f" {e}" for e in envs[i])
            cells = " | ".join(f"{med[k]:.2f} s" for k in ("wall", "cpu", "worker", "hub"))
            print(f"| {label} | {cells} |")
        won = sum(b["wall"] < a["wall"] for a, b in zip(rows[0], rows[len(trees) - 1], strict=True))
        ratio = statistics.median(b["wall"] / a["wall"] for a, b in zip(rows[0], rows[len(trees) - 1], strict=True))
        print(f"\nlast tree / first, per round (median): {ratio:.2f}x; faster in {won} of {args.rounds} rounds")
    finally:
        hub.destroy()


def _trees(argv: list[str]) -> tuple[list[str], list[list[str]]]:
    """The trees in order, each with the --env settings that follow it."""
    trees: list[str] = []
    envs: list[list[str]] = []
    argv = [part for arg in argv for part in (arg.split("=", 1) if arg.startswith(("--tree=", "--env=")) else [arg])]
    for flag, value in itertools.pairwise(argv):
        if flag == "--tree":
            trees.append(str(Path(value).resolve()))
            envs.append([])
        elif flag == "--env" and envs:
            envs[-1].append(value)
    return trees, envs


def _run(tree: str, env: list[str], base_url: str, token: str, home: Path, local: int) -> dict[str, Any]:
    """One laptop in a process of its own that imports the tree's code (the workers it starts too:
    they are given its sys.path)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
    environ.update(kv.split("=", 1) for kv in env)
    environ["PYTHONPATH"] = tree
    environ["FIELDSYNC_BENCH_TOKEN"] = token  # not an argument: a token may start with "-" (and ps shows arguments)
    code = [sys.executable, str(Path(__file__).resolve()), "--local", str(local), "--tree", tree]
    done = subprocess.run([*code, "--laptop", base_url, str(home)], cwd=tree, env=environ,
                          capture_output=True, text=True)  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"the laptop from {tree} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
