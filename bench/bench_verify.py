"""Verifying pulled pages: the laptop's verification workers alone (issue 4, point 6).

Run: ``.venv/bin/python bench/bench_verify.py [--changes N] [--page N] [--rounds R]``; to
measure an older checkout with the same pages, put it first on the path:
``PYTHONPATH=/tmp/old .venv/bin/python bench/bench_verify.py`` (its workers get that path too).

bench_sync.py times a whole sync, in which the hub, the merge and verification share two
cores: a change in one of them moves its figures less than the machine's moods do. This
measures the verification stage by itself. The changes are bench_core.py's workload (8
devices of one agency, 1 in 5 creates a record, the rest edit one or two fields), in pages
of ``--page`` as the hub answers a pull (``{changes: [{seq, change}], certificates, ...}``,
JSON bytes). Per round, back to back:

- raw Ed25519 verification of each change's signed bytes, one core (the floor's part);
- ``field_client.verifier.verify_page`` on every page in this process (on one thread; an
  older tree may split each page between its ``THREADS``): the whole chain a
  worker runs per change (decoding, certificate, registry, field digests, canonical
  header, Ed25519);
- ``field_client.verifier.PageVerifier`` as a long pull uses it, its workers started and
  ready beforehand: every page submitted at once, timed until the last outcome is back;
  the CPU its worker processes spent, read from /proc.

Reported: medians per change. Every outcome is checked (all verify, each with its change's
hash), so a faster figure cannot come from skipped work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nacl.signing
import orjson

# fieldsync's own packages first, from PYTHONPATH when it names an older tree (else from this
# one): bench_core puts this tree first on the path, and the workers inherit the path
from crypto import change_hash
from crypto.changes import _signed_bytes
from crypto.encoding import b64d
from field_client import verifier as page_verifier

_ROOT = str(Path(__file__).resolve().parent.parent)
from bench_core import workload  # noqa: E402

while _ROOT in sys.path:
    sys.path.remove(_ROOT)
sys.path.append(_ROOT)


def pages(wires: list, size: int) -> list[bytes]:
    """The changes as the hub's pull answers, ``size`` to a page."""
    out = []
    for start in range(0, len(wires), size):
        chunk = wires[start : start + size]
        answer = {
            "changes": [{"seq": start + i + 1, "change": w} for i, (w, _, _) in enumerate(chunk)],
            "certificates": {cert["device_id"]: cert for _, cert, _ in chunk},
            "next_cursor": start + len(chunk),
            "more": start + size < len(wires),
            "registry_size": 2,
            "checkpoint": {},
        }
        out.append(orjson.dumps(answer))
    return out


def _workers_cpu(remote: page_verifier.PageVerifier) -> float:
    """CPU seconds the pool's processes have spent so far (Linux)."""
    assert remote.pids, "the verification workers did not start"
    total = 0.0
    for pid in remote.pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=20_000)
    ap.add_argument("--page", type=int, default=1_000, help="changes per page (the hub's default)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    wires, verifier = workload(args.changes)
    expected = [change_hash(w) for w, _, _ in wires]
    raw = [(nacl.signing.VerifyKey(bytes(vk)), _signed_bytes(w), b64d(w["signature"])) for w, _, vk in wires]
    bodies = pages(wires, args.page)
    registry = verifier.registry
    key = (registry.head.size, registry.head.head)
    n = len(wires)

    remote = page_verifier.PageVerifier()
    remote.start()
    # every worker up, imports done and its verifier built, before any timing: as many pages
    # at once as there are workers (a worker takes the next page only when it is free)
    warm = [remote.submit(registry, body) for body in bodies[: getattr(page_verifier, "WORKERS", 1)]]
    for future in warm:
        assert future is not None
        future.result()

    def check(outcomes: list[list[tuple[bool, str]]]) -> None:
        got = [text if ok else f"refused: {text}" for page in outcomes for ok, text in page]
        if got != expected:
            raise RuntimeError("the verification outcomes are not the changes' hashes")

    rows: list[dict[str, float]] = []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        for vk, message, signature in raw:
            vk.verify(message, signature)
        raw_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        here = [page_verifier.verify_page(key, registry.entries, body) for body in bodies]
        here_s = time.perf_counter() - t0
        check(here)

        cpu0, t0 = _workers_cpu(remote), time.perf_counter()
        futures = [remote.submit(registry, body) for body in bodies]
        outcomes = [f.result() for f in futures if f is not None]
        workers_s, workers_cpu = time.perf_counter() - t0, _workers_cpu(remote) - cpu0
        if len(outcomes) != len(bodies):
            raise RuntimeError("the verification workers refused a page")
        check(outcomes)
        rows.append(
            {
                "raw": raw_s / n * 1e6,
                "here": here_s / n * 1e6,
                "workers": workers_s / n * 1e6,
                "workers_cpu": workers_cpu / n * 1e6,
            }
        )
        row = rows[-1]
        print(
            f"round {r + 1}/{args.rounds}: raw Ed25519 {row['raw']:.1f} us, verify_page {row['here']:.1f} us, "
            f"workers {row['workers']:.1f} us wall / {row['workers_cpu']:.1f} us CPU (per change)",
            flush=True,
        )
    remote.close()

    med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
    workers = getattr(page_verifier, "WORKERS", 1)
    threads = getattr(page_verifier, "THREADS", 1)
    print(
        f"\n{n:,} changes in pages of {args.page:,}; {workers} worker process(es), {threads} thread(s) each; "
        f"medians of {args.rounds} rounds; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
    )
    print("| step | per change | changes/s | / raw Ed25519 |")
    print("| --- | ---: | ---: | ---: |")
    for name, label in (
        ("raw", "raw Ed25519 verify, one core"),
        ("here", "`verify_page` in this process"),
        ("workers", "`PageVerifier` workers, wall"),
        ("workers_cpu", "`PageVerifier` workers, CPU"),
    ):
        rate = f"{1e6 / med[name]:,.0f}" if name != "workers_cpu" else "-"
        print(f"| {label} | {med[name]:.1f} us | {rate} | {med[name] / med['raw']:.2f}x |")


if __name__ == "__main__":
    main()
