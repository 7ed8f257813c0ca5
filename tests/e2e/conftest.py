"""End-to-end fixtures: the real hub as its own process on loopback, officers as CLI processes.

Nothing here imports ``backend``: the hub is driven only through ``fieldsync-hub``
(``init``, admin commands, ``serve`` on 127.0.0.1), and every officer
only through ``fieldsync --home DIR`` in a home folder of their own. The hub's
merged state is read from its SQLite file (opened read-only) to compare with
what each laptop holds.

Speed: ``fieldsync-hub init`` and ``agency create`` for SPD and CSO cost a few
seconds each, so they run once per session in a template instance folder; each
test copies that folder (no process has it open) and starts its own hub on it.
Every test therefore still has its own hub process, database, keys and log.

Ports: a hub's first start asks for port 0 and reads the port the server bound from
its startup line (werkzeug's `` * Running on http://127.0.0.1:PORT``), so no port is
probed, closed and handed over (another process could take it in between); a restart
binds that same port again, since the laptops hold the hub's URL.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
FIELDSYNC = BIN / "fieldsync"
FIELDSYNC_HUB = BIN / "fieldsync-hub"
ADMIN_PASSWORD = "e2e-admin-password-1"
PASSPHRASE = "e2e officer passphrase"
AGENCIES = {"SPD": "Springfield Police Department", "CSO": "County Sheriff's Office"}
COMMAND_TIMEOUT = 60
START_TIMEOUT = 60  # generous: a loaded machine only makes the start slower
STOP_TIMEOUT = 10
META = ("id", "collection", "agency", "deleted", "updated_hlc", "withheld")


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any FIELDSYNC_* setting that could leak in (e.g. a
    PostgreSQL FIELDSYNC_DATABASE_URL or a FIELDSYNC_HOME), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
    env.update(extra)
    return env


def run_cli(argv: list[Any], env: dict[str, str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [str(a) for a in argv]
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"`{shlex.join(argv)}` exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


RUNNING_ON = re.compile(rb"Running on http://127\.0\.0\.1:(\d+)")


class Hub:
    """One hub instance folder, and its ``fieldsync-hub serve`` process when started.

    ``port`` 0 (the default): the first start lets the server choose and learns its port."""

    def __init__(self, instance: Path, port: int = 0) -> None:
        self.instance = instance
        self.port = port
        self.env = clean_env(FIELDSYNC_INSTANCE=str(instance), FIELDSYNC_ADMIN_PASSWORD=ADMIN_PASSWORD)
        self.log_path = instance.parent / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    # -- administration ----------------------------------------------------------
    def admin(self, *args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``fieldsync-hub ARGS`` against this instance folder."""
        return run_cli([FIELDSYNC_HUB, *args], self.env, check=check)

    @property
    def url(self) -> str:
        assert self.port, "the hub's port is known once it has started"
        return f"http://127.0.0.1:{self.port}"

    # -- the server process ------------------------------------------------------
    def start(self) -> None:
        assert self.proc is None, "hub already running"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        logged = self._log.tell()  # this start's lines follow
        self.proc = subprocess.Popen(
            [str(FIELDSYNC_HUB), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not (self._bound(logged) and self.healthy()):
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"the hub exited at start:\n{self.log_path.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the hub did not answer /healthz within {START_TIMEOUT} s")
            time.sleep(0.1)

    def _bound(self, logged: int) -> bool:
        """Whether the port is known: given, or read from this start's "Running on" line."""
        if not self.port:
            with open(self.log_path, "rb") as log:
                log.seek(logged)
                found = RUNNING_ON.search(log.read())
            if found:
                self.port = int(found[1])
        return bool(self.port)

    def stop(self) -> None:
        """Terminate the server (kill it if it has not stopped in 10 s)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        self.proc = None
        self._log.close()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as answer:
                return answer.status == 200 and bool(json.load(answer).get("status") == "ok")
        except urllib.error.HTTPError as exc:
            exc.close()
            return False
        except (OSError, ValueError):
            return False

    # -- what the hub holds --------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.instance / "fieldsync.db"

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Read the hub's SQLite database (read-only)."""
        with closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, params)]

    def records(self) -> list[dict[str, Any]]:
        rows = self.query('SELECT record_id, collection, agency, "values", deleted, updated_hlc FROM records')
        for row in rows:
            row["values"] = json.loads(row["values"])
            row["deleted"] = bool(row["deleted"])
        return rows

    def conflicts(self) -> list[dict[str, Any]]:
        rows = self.query("SELECT id, record_id, collection, agency, field, winner, loser FROM conflicts")
        for row in rows:
            row["winner"], row["loser"] = json.loads(row["winner"]), json.loads(row["loser"])
        return rows


class Officer:
    """One enrolled laptop: its own home folder, driven through the ``fieldsync`` CLI."""

    def __init__(self, name: str, agency: str, home: Path) -> None:
        self.name, self.agency, self.home = name, agency, home
        self.env = clean_env(FIELDSYNC_PASSPHRASE=PASSPHRASE)
        self.device_id = ""

    def __repr__(self) -> str:
        return f"<officer {self.name} of {self.agency}>"

    def run(self, *args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli([FIELDSYNC, "--home", self.home, *args], self.env, check=check)

    @staticmethod
    def _sets(fields: dict[str, Any]) -> list[str]:
        out: list[str] = []
        for name, value in fields.items():
            text = json.dumps(value) if isinstance(value, dict | list) else str(value)
            out += ["--set", f"{name}={text}"]
        return out

    def add_record(self, noun: str, **fields: Any) -> dict[str, Any]:
        """``fieldsync NOUN add --json --set F=V ...``; returns the new record as printed."""
        return dict(json.loads(self.run(noun, "add", "--json", *self._sets(fields)).stdout))

    def add(self, noun: str, **fields: Any) -> str:
        """Like :meth:`add_record`; returns the new record's id."""
        return str(self.add_record(noun, **fields)["id"])

    def update(self, noun: str, record_id: str, **fields: Any) -> dict[str, Any]:
        return dict(json.loads(self.run(noun, "update", record_id, "--json", *self._sets(fields)).stdout))

    def list(self, noun: str, *, deleted: bool = False) -> list[dict[str, Any]]:
        args = [noun, "list", "--json"] + (["--deleted"] if deleted else [])
        return list(json.loads(self.run(*args).stdout))

    def sync(self, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("sync", check=check)

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.run("status", "--json").stdout))

    def replica_rows(self, sql: str) -> builtins.list[dict[str, Any]]:
        """Read the encrypted replica with the officer's passphrase (no CLI lists conflict ids)."""
        from field_client.replica import Replica

        with Replica.open(self.home, PASSPHRASE) as rep:
            return [dict(row) for row in rep.rows(sql)]


@pytest.fixture(scope="session")
def hub_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An instance folder after ``fieldsync-hub init`` and ``agency create`` SPD and CSO."""
    hub = Hub(tmp_path_factory.mktemp("hub-template") / "instance")
    out = hub.admin("init").stdout
    assert "hub initialized" in out, out
    for code, name in AGENCIES.items():
        hub.admin("agency", "create", code, "--name", name)
    return hub.instance


@pytest.fixture
def hub_process(hub_template: Path, tmp_path: Path) -> Iterator[Hub]:
    """This test's own hub: a copy of the template instance, served on a free loopback port."""
    instance = tmp_path / "hub" / "instance"
    shutil.copytree(hub_template, instance)
    hub = Hub(instance)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


ENROLLED = re.compile(r"enrolled as (?P<officer>.+) of (?P<agency>\S+); device (?P<device>\S+)")


@pytest.fixture
def officer(hub_process: Hub, tmp_path: Path) -> Callable[[str, str], Officer]:
    """``officer(AGENCY, NAME)``: a token from the hub, then ``fieldsync enroll`` in a fresh home."""

    def make(agency: str, name: str) -> Officer:
        token = hub_process.admin("device", "token", agency, "--officer", name).stdout.strip()
        assert token and "\n" not in token, token
        person = Officer(name, agency, tmp_path / f"home-{name}")
        out = person.run("enroll", "--hub", hub_process.url, "--token", token).stdout
        found = ENROLLED.search(out)
        assert found and found["officer"] == name and found["agency"] == agency, out
        person.device_id = found["device"]
        return person

    return make


# -- comparing a laptop with the hub ------------------------------------------------
def replica_view(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``list --json --deleted`` output, keyed by id: agency, deleted, withheld, updated_hlc, values."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        assert item["id"] not in out, f"record {item['id']} listed twice"
        out[item["id"]] = {
            "agency": item["agency"],
            "deleted": item["deleted"],
            "withheld": sorted(item.get("withheld", [])),
            "updated_hlc": item["updated_hlc"],
            "values": {k: v for k, v in item.items() if k not in META},
        }
    return out


def hub_view(
    hub: Hub, agency: str, collection: str, shares: dict[tuple[str, str], tuple[set[str], set[str]]]
) -> dict[str, dict[str, Any]]:
    """What ``agency`` may see of the hub's merged ``collection``, by the test's own reading of
    the agreements: ``shares[(owner, receiver)] = (collections, withheld fields)``. An agency
    sees its own records, and whole the reservations of its own resources (it decides them)."""
    rows = hub.records()
    owner_of = {row["record_id"]: row["agency"] for row in rows}
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["collection"] != collection:
            continue
        values = row["values"]
        withheld: set[str] = set()
        decides = collection == "reservations" and owner_of.get(values.get("resource_id")) == agency
        if row["agency"] != agency and not decides:
            share = shares.get((row["agency"], agency))
            if share is None or collection not in share[0]:
                continue
            withheld = share[1] & set(values)
            values = {k: v for k, v in values.items() if k not in withheld}
        out[row["record_id"]] = {
            "agency": row["agency"],
            "deleted": row["deleted"],
            "withheld": sorted(withheld),
            "updated_hlc": row["updated_hlc"],
            "values": values,
        }
    return out
