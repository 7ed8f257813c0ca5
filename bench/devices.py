"""Simulated devices for the hub benchmarks and the load test, and the check that nothing was lost.

Rules this module owns:

- A :class:`SimDevice` is a real device: its own Ed25519 key, enrolled over
  ``POST /api/v1/enroll`` with a one-time token, so the hub holds and serves its
  certificate. Its feed is pre-signed (:func:`bench.hubproc.sign_feed`) and its
  push bodies built beforehand, so that what is timed is the hub.
- A device may talk to several hub processes sharing one database: its k-th
  request goes to ``ports[(first + k) % len(ports)]``, so its feed and its pull
  cursor move between processes as they would behind a load balancer.
- Every answer must be 2xx and every pushed change ``accepted``. A 503 (the
  hub's database briefly unreachable; the field client's agent retries 5xx) is
  retried after a short pause and counted in ``retries``; anything else — a
  4xx, a 500, a dropped connection, a push result that is not ``accepted``, a
  pull that steps back or repeats a log entry — is recorded in ``errors``.
- A device keeps what the hub accepted and every change it pulled, by log seq.
  :func:`check_load` compares them with what was sent, with what the sharing
  agreements let each agency see, and with the hub's log itself.
"""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench.hubproc import HubInstance, enroll_device, sign_feed, signed_request
from crypto import SigningKey, withhold

RETRY_PAUSE = 0.2  # seconds before a 503 is retried
MAX_RETRIES = 25


@dataclass(frozen=True)
class Agreement:
    """``source``'s records of ``collections`` may be seen by ``target`` (``fieldsync-hub agreement add``)."""

    source: str
    target: str
    collections: tuple[str, ...] = ("resources",)
    withhold: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()

    def cli_args(self) -> list[str]:
        args = ["agreement", "add", "--from", self.source, "--to", self.target]
        args += ["--collections", ",".join(self.collections)]
        for name in sorted(self.withhold):
            args += ["--withhold", name]
        for name in sorted(self.write):
            args += ["--write", name]
        return args


# SPD and CSO share resources (CSO sees SPD's without notes); HSP shares nothing and sees only its own.
AGENCIES = {"SPD": "Springfield Police Department", "CSO": "County Sheriff's Office", "HSP": "Highway State Patrol"}
AGREEMENTS = (
    Agreement("SPD", "CSO", withhold=frozenset({"notes"}), write=frozenset({"status"})),
    Agreement("CSO", "SPD"),
)


def set_up(hub: HubInstance, agencies: dict[str, str], agreements: tuple[Agreement, ...] = AGREEMENTS) -> None:
    """``fieldsync-hub init``, the agencies and the agreements, with the real command."""
    hub.init(agencies)
    for agreement in agreements:
        hub.cli(*agreement.cli_args())


def as_seen_by(wire: dict[str, Any], reader: str, agreements: tuple[Agreement, ...]) -> dict[str, Any] | None:
    """The change as the hub must deliver it to ``reader``'s devices, or None if it may not see it."""
    if wire["agency"] == reader:
        return wire
    for a in agreements:
        if a.source == wire["agency"] and a.target == reader and wire["collection"] in a.collections:
            return withhold(wire, a.withhold) if a.withhold else wire
    return None


@dataclass
class SimDevice:
    """One enrolled device, driven by one thread at a time."""

    agency: str
    device_id: str
    key: SigningKey
    answer: dict[str, Any]
    ports: list[int]
    first: int = 0
    wires: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[tuple[bytes, bytes]] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    pulled: dict[int, dict[str, Any]] = field(default_factory=dict)
    cursor: int = 0
    checkpoint_size: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    requests: int = 0

    @classmethod
    def enroll(cls, hub: HubInstance, agency: str, officer: str, ports: list[int], first: int = 0) -> SimDevice:
        dev = enroll_device(f"http://127.0.0.1:{ports[first % len(ports)]}", hub.token(agency, officer))
        return cls(dev["agency"], dev["device_id"], SigningKey(dev["seed"]), dev["answer"], ports, first)

    @property
    def seed(self) -> bytes:
        return bytes(self.key)

    def sign(self, count: int, rng_seed: int, batch: int) -> None:
        self.load_feed(sign_feed((self.seed, self.device_id, self.agency, count, rng_seed)), batch)

    def load_feed(self, wires: list[dict[str, Any]], batch: int) -> None:
        self.wires, self.bodies = wires, []
        for start in range(0, len(wires), batch):
            body = json.dumps({"changes": wires[start : start + batch]}, separators=(",", ":")).encode()
            self.bodies.append((body, gzip.compress(body, compresslevel=5)))

    # -- requests ----------------------------------------------------------------------------
    def request(
        self, kind: str, method: str, path: str, body: bytes = b"", gz: bytes | None = None, port: int | None = None
    ) -> tuple[int, Any]:
        """One signed request (503 retried and counted); its latency is kept under ``kind``."""
        if port is None:
            port = self.ports[(self.first + self.requests) % len(self.ports)]
        self.requests += 1
        t0 = time.perf_counter()
        for _attempt in range(MAX_RETRIES + 1):
            try:
                status, answer = signed_request(port, self.key, self.device_id, method, path, body, gz)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                status, answer = 0, {"error": f"{type(exc).__name__}: {exc}"}
                break
            if status != 503:
                break
            self.retries += 1
            time.sleep(RETRY_PAUSE)
        self.latencies[kind].append(time.perf_counter() - t0)
        if not 200 <= status < 300:
            self.errors.append(f"{kind} {method} {path} on :{port}: {status} {str(answer)[:300]}")
        return status, answer

    def push(self, index: int) -> int:
        """Push pre-built body ``index``; answer how many changes the hub accepted."""
        body, gz = self.bodies[index]
        status, answer = self.request("push", "POST", "/api/v1/sync/push", body, gz)
        results = answer.get("results", []) if status == 200 else []
        for result in results:
            if result["status"] == "accepted":
                self.accepted.append(result["id"])
            else:
                self.errors.append(f"push result {result}")
        return sum(1 for r in results if r["status"] == "accepted")

    def pull(self, cursor: int, limit: int, port: int | None = None) -> dict[str, Any]:
        status, answer = self.request("pull", "GET", f"/api/v1/sync/pull?cursor={cursor}&limit={limit}", port=port)
        return answer if status == 200 else {}

    def pull_new(self, limit: int) -> int:
        """Pull from this device's cursor until the hub has no more; answer how many changes came."""
        count = 0
        while True:
            answer = self.pull(self.cursor, limit)
            if not answer:
                return count
            for item in answer["changes"]:
                if item["seq"] <= self.cursor or item["seq"] in self.pulled:
                    self.errors.append(f"pull after {self.cursor} returned log entry {item['seq']} again")
                self.pulled[item["seq"]] = item["change"]
            count += len(answer["changes"])
            size = answer["checkpoint"]["size"]
            if size < self.checkpoint_size or answer["next_cursor"] < self.cursor:
                self.errors.append(f"pull stepped back: size {size} < {self.checkpoint_size} or cursor")
            self.checkpoint_size = max(self.checkpoint_size, size)
            self.cursor = answer["next_cursor"]
            if not answer["more"]:
                return count

    def pull_everything(self, port: int, limit: int) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, Any]]:
        """The whole log this device may see, from one hub process: (seq, change) pairs and the last checkpoint."""
        cursor, changes, checkpoint = 0, [], {}
        while True:
            answer = self.pull(cursor, limit, port=port)
            if not answer:
                return changes, checkpoint
            changes += [(item["seq"], item["change"]) for item in answer["changes"]]
            cursor, checkpoint = answer["next_cursor"], answer["checkpoint"]
            if not answer["more"]:
                return changes, checkpoint


def run_mixed(devices: list[SimDevice], limit: int, timeout: float = 600) -> float:
    """Every device at once: push each of its bodies, pulling what is new after each; then, once every device
    has pushed everything, one last pull each. Answers the wall time."""
    start = threading.Barrier(len(devices) + 1, timeout=timeout)
    pushed = threading.Barrier(len(devices), timeout=timeout)

    def loop(dev: SimDevice) -> None:
        try:
            start.wait()
            for index in range(len(dev.bodies)):
                dev.push(index)
                dev.pull_new(limit)
            pushed.wait()
            dev.pull_new(limit)
        except Exception as exc:  # a crash is an error of this run, never a hang of the others
            dev.errors.append(f"device thread: {type(exc).__name__}: {exc}")
            pushed.abort()

    threads = [threading.Thread(target=loop, args=(d,), name=f"device-{i}") for i, d in enumerate(devices)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


@dataclass
class LoadCheck:
    """What :func:`check_load` found; every list empty means nothing was lost, doubled or misdelivered."""

    sent: int = 0
    accepted: int = 0
    log_size: int = 0
    errors: list[str] = field(default_factory=list)  # requests that were not 2xx / changes not accepted
    lost: list[str] = field(default_factory=list)  # accepted, but not in the hub's log
    doubled: list[str] = field(default_factory=list)  # in the hub's log more than once
    log: list[str] = field(default_factory=list)  # gaps in the log's numbers or a device's feed
    missing: list[str] = field(default_factory=list)  # a device never pulled a change it may see
    extra: list[str] = field(default_factory=list)  # a device pulled a change it may not see
    altered: list[str] = field(default_factory=list)  # a pulled change differs from what was sent

    def problems(self) -> dict[str, list[str]]:
        names = ("errors", "lost", "doubled", "log", "missing", "extra", "altered")
        return {name: getattr(self, name) for name in names if getattr(self, name)}


def check_load(hub: HubInstance, devices: list[SimDevice], agreements: tuple[Agreement, ...]) -> LoadCheck:
    """Compare what the devices sent, what the hub's log holds and what each device pulled."""
    out = LoadCheck(sent=sum(len(d.wires) for d in devices), accepted=sum(len(d.accepted) for d in devices))
    out.errors = [f"{d.device_id[:8]}: {e}" for d in devices for e in d.errors]
    rows = hub.rows("SELECT seq, change_id, device, device_seq FROM log ORDER BY seq")
    out.log_size = len(rows)
    if [r[0] for r in rows] != list(range(1, len(rows) + 1)):
        out.log.append("the log's sequence numbers are not 1..N without a gap")
    head = hub.rows("SELECT size FROM log_head")
    if [h[0] for h in head] != [len(rows)]:
        out.log.append(f"log head says {head}, the log holds {len(rows)} entries")
    counts = Counter(r[1] for r in rows)
    out.doubled = sorted(cid for cid, n in counts.items() if n > 1)
    log_seq = {r[1]: r[0] for r in rows}
    sent = {w["id"]: w for d in devices for w in d.wires}
    accepted = {cid for d in devices for cid in d.accepted}
    out.lost = sorted(accepted - counts.keys())
    out.log += [f"log entry {cid} was never sent" for cid in sorted(counts.keys() - sent.keys())]
    feeds: dict[str, list[int]] = defaultdict(list)
    for _seq, _cid, device, device_seq in rows:
        feeds[device].append(device_seq)
    for d in devices:
        if feeds.get(d.device_id, []) != list(range(1, len(d.accepted) + 1)):
            out.log.append(f"feed of {d.device_id[:8]} in the log is not 1..{len(d.accepted)} in order")
    for d in devices:
        expected = {}
        for cid in accepted:
            seen = as_seen_by(sent[cid], d.agency, agreements)
            if seen is not None:
                expected[cid] = seen
        got = {change["id"]: (seq, change) for seq, change in d.pulled.items()}
        name = d.device_id[:8]
        out.missing += [f"{name} ({d.agency}) never got {cid}" for cid in sorted(expected.keys() - got.keys())]
        out.extra += [f"{name} ({d.agency}) got {cid}" for cid in sorted(got.keys() - expected.keys())]
        for cid in expected.keys() & got.keys():
            seq, change = got[cid]
            if change != expected[cid] or log_seq.get(cid) != seq:
                out.altered.append(f"{name} ({d.agency}) got {cid} at {seq} not as sent / logged")
    return out
