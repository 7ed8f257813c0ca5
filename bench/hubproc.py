"""Shared by the hub and sync benchmarks: a real hub instance on loopback, and signed workloads.

A :class:`HubInstance` is a temporary instance folder set up with the real
``fieldsync-hub`` command (``init``, ``agency create``, ``device token`` —
run in this process through click, the same code as the command line), on the
SQLite default or on a fresh PostgreSQL database created on 127.0.0.1:5432
and dropped afterwards, served by gunicorn (``backend:create_app()``) on a
free 127.0.0.1 port.

:func:`sign_feed` pre-signs a device's feed (realistic mix: one change in five
creates a resource, the others edit one or two of status/notes/quantity of
the device's own records), so that signing never counts against what is timed.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crypto import SigningKey, VerifiedChange, b64e, change_hash, sign_request  # noqa: E402
from sync import Clock, MergeState, make_change  # noqa: E402
from sync.changes import Change  # noqa: E402

BIN = Path(sys.executable).parent
POSTGRES_ADMIN = os.environ.get("FIELDSYNC_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ADMIN_PASSWORD = "bench-admin-password-1"


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def postgres_cpu_seconds() -> float:
    """CPU time (user+system) used so far by every PostgreSQL server process on this machine
    (backends, WAL writer, checkpointer...): what storing the hub's rows costs the server."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat.split("(", 1)[1].rsplit(")", 1)
        if name.startswith("postgres"):
            fields = rest.split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class HubInstance:
    """One hub: instance folder, database, and (once started) its gunicorn processes (:class:`HubServer`)."""

    def __init__(self, database: str = "sqlite", folder: Path | None = None, postgres: str | None = None) -> None:
        """``postgres``: the server's admin URL (a database on it is created, and dropped by :meth:`destroy`)."""
        self.kind = database
        self.postgres = (postgres or POSTGRES_ADMIN).replace("postgresql+psycopg://", "postgresql://", 1)
        self.folder = Path(folder or tempfile.mkdtemp(prefix=f"fieldsync-bench-{database}-"))
        self.instance = self.folder / "instance"
        self.pg_name: str | None = None
        if database == "postgresql":
            import psycopg

            self.pg_name = f"fieldsync_bench_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(self.postgres, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
            base = self.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
            self.url = f"{base}/{self.pg_name}"
        elif database == "sqlite":
            self.url = f"sqlite:///{self.instance / 'fieldsync.db'}"
        else:
            raise ValueError(f"unknown database {database!r}: sqlite or postgresql")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
        self.env.update(
            FIELDSYNC_INSTANCE=str(self.instance),
            FIELDSYNC_DATABASE_URL=self.url,
            FIELDSYNC_ADMIN_PASSWORD=ADMIN_PASSWORD,
        )
        self.servers: list[HubServer] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.base_url = ""

    # -- administration (the real fieldsync-hub command, run in-process) ----------
    def cli(self, *args: str) -> str:
        from click.testing import CliRunner

        from backend.cli import main

        result = CliRunner(env=self.env).invoke(main, list(args), catch_exceptions=False)
        if result.exit_code != 0:
            raise RuntimeError(f"fieldsync-hub {' '.join(args)} failed: {result.output}")
        return result.output

    def init(self, agencies: dict[str, str]) -> None:
        subprocess.run([str(BIN / "fieldsync-hub"), "init"], env=self.env, check=True, capture_output=True)
        for code, name in agencies.items():
            self.cli("agency", "create", code, "--name", name)

    def token(self, agency: str, officer: str) -> str:
        return self.cli("device", "token", agency, "--officer", officer).strip().splitlines()[-1]

    def app(self) -> Any:
        """The hub app in this process (for seeding through backend functions before serving)."""
        from backend import create_app

        return create_app({"DATABASE_URL": self.url, "INSTANCE_PATH": str(self.instance), "SECRET_KEY": "bench"})

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the hub's database directly (what the load checks compare the devices' view with)."""
        if self.kind == "postgresql":
            import psycopg

            with psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
                return list(conn.execute(sql).fetchall())
        import sqlite3

        with closing(sqlite3.connect(self.instance / "fieldsync.db")) as conn:
            return list(conn.execute(sql).fetchall())

    # -- serving -------------------------------------------------------------------------
    def start(self, workers: int = 2, env: dict[str, str] | None = None) -> str:
        """Serve this hub with gunicorn; its port and URL become the hub's own."""
        self.server = self.serve(workers, env)
        self.proc, self.port, self.base_url = self.server.proc, self.server.port, self.server.base_url
        return self.base_url

    def serve(self, workers: int = 2, env: dict[str, str] | None = None, root: Path | None = None) -> HubServer:
        """One more gunicorn process on this hub's instance folder and database (a second machine);
        ``root``: a fieldsync checkout whose hub code it runs (bench_sync_ab.py), this one's if None."""
        return self.serve_all([workers], env, root)[0]

    def serve_all(
        self, workers: list[int], env: dict[str, str] | None = None, root: Path | None = None
    ) -> list[HubServer]:
        """Several gunicorn processes at once (``workers[i]`` workers each), started side by side."""
        servers = [
            HubServer(self, n, env or {}, name=f"gunicorn-{len(self.servers) + i}", root=root)
            for i, n in enumerate(workers)
        ]
        self.servers += servers
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
        return servers

    def worker_pids(self) -> list[int]:
        return [pid for server in self.servers for pid in server.worker_pids()]

    def cpu_seconds(self) -> float:
        """CPU time (user+system) used so far by every gunicorn master and worker of this hub."""
        return sum(server.cpu_seconds() for server in self.servers)

    def stop(self) -> None:
        for server in self.servers:  # all asked at once: each waits for its workers to finish
            server.terminate()
        for server in self.servers:
            server.stop()
        self.servers.clear()
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        if self.pg_name:
            import psycopg

            with psycopg.connect(self.postgres, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            self.pg_name = None
        shutil.rmtree(self.folder, ignore_errors=True)


class HubServer:
    """One gunicorn master and its workers serving a :class:`HubInstance` on a free loopback port."""

    def __init__(
        self, hub: HubInstance, workers: int, env: dict[str, str], name: str = "gunicorn", root: Path | None = None
    ) -> None:
        self.hub, self.workers, self.name = hub, workers, name
        self.root = root or ROOT  # gunicorn imports backend from here (its working directory)
        self.env = {**hub.env, **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = hub.folder / f"{name}.log"
        self.terminated = False

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-w",
                str(self.workers),
                "-b",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "120",
                "--backlog",
                "256",
                # gunicorn 27's control socket is one path per user (~/.gunicorn/gunicorn.ctl): several
                # hubs on one machine would take it from each other, so none of them has one
                "--no-control-socket",
                "backend:create_app()",
            ],
            env={**self.env, "PYTHONPATH": str(self.root)} if self.root != ROOT else self.env,
            cwd=str(self.root),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 60
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            finally:
                conn.close()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn did not start: see {self.log_path}")
            time.sleep(0.2)
        # wait for every worker to have booted (each answers /healthz once its app is built)
        time.sleep(1.0)

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def cpu_seconds(self) -> float:
        """CPU time (user+system) used so far by the gunicorn master and its workers."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in [self.proc.pid if self.proc else 0, *self.worker_pids()]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def terminate(self) -> None:
        """Ask gunicorn to stop (graceful: workers finish their requests), once."""
        if self.proc is not None and self.proc.poll() is None and not self.terminated:
            self.proc.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.terminate()
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
            self.log.close()


# -- devices and their pre-signed feeds ----------------------------------------------------
def enroll_device(base_url: str, token: str) -> dict[str, Any]:
    """Enroll a fresh device key over the real API; returns its seed and identity."""
    from field_client.transport import HubClient

    key = SigningKey.generate()
    answer = HubClient(base_url).enroll(token, key.verify_key.to_text())
    return {"seed": bytes(key), "device_id": answer["device_id"], "agency": answer["agency"], "answer": answer}


def sign_feed(job: tuple[bytes, str, str, int, int]) -> list[dict[str, Any]]:
    """Sign ``count`` changes of one device's feed (run in a worker process)."""
    seed, device_id, agency, count, rng_seed = job
    rng = random.Random(rng_seed)
    key = SigningKey(seed)
    clock = Clock(device_id)
    state = MergeState()
    records: list[str] = []
    wires: list[dict[str, Any]] = []
    prev: str | None = None
    for seq in range(1, count + 1):
        if not records or rng.random() < 0.2:
            record_id, seen = str(uuid.uuid4()), {}
            values: dict[str, Any] = {
                "kind": "vehicle",
                "name": f"Unit {len(records)}",
                "status": "available",
                "quantity": 1,
            }
            records.append(record_id)
        else:
            record_id = rng.choice(records[-50:])
            seen = state.records[record_id].seen()
            name = rng.choice(["status", "notes", "quantity"])
            values = {
                name: {
                    "status": rng.choice(["available", "deployed", "maintenance"]),
                    "notes": f"shift note {rng.random():.6f}",
                    "quantity": rng.randint(0, 9),
                }[name]
            }
            if rng.random() < 0.3:
                values["status"] = rng.choice(["available", "deployed"])
        wire = make_change(
            key,
            collection="resources",
            record_id=record_id,
            agency=agency,
            device=device_id,
            seq=seq,
            prev=prev,
            hlc=str(clock.now()),
            values=values,
            seen=seen,
        )
        prev = change_hash(wire)
        state.apply(Change.from_verified(VerifiedChange(wire, prev)))
        wires.append(wire)
    return wires


def sign_feeds(jobs: list[tuple[bytes, str, str, int, int]], processes: int = 2) -> list[list[dict[str, Any]]]:
    from multiprocessing import get_context

    with get_context("fork").Pool(processes) as pool:
        return pool.map(sign_feed, jobs)


# -- raw HTTP as a device sends it -----------------------------------------------------------
def signed_request(
    port: int,
    seed_key: SigningKey,
    device_id: str,
    method: str,
    path: str,
    body: bytes = b"",
    gz: bytes | None = None,
) -> tuple[int, Any]:
    """One signed request, sent as field_client.transport sends it (gzip both ways)."""
    headers = sign_request(
        seed_key,
        device=device_id,
        method=method,
        path=path,
        body=body,
        at=datetime.now(UTC),
        nonce=b64e(os.urandom(16)),
    )
    headers["Accept-Encoding"] = "gzip"
    if body:
        headers["Content-Type"] = "application/json"
        if gz is not None:
            headers["Content-Encoding"] = "gzip"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request(method, path, body=gz if gz is not None else (body or None), headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.getheader("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return response.status, json.loads(data)
    finally:
        conn.close()
