"""The ``fieldsync-hub`` command line, run for real as a subprocess, on SQLite and on PostgreSQL.

Each hub gets its own instance folder and its own database (a SQLite file, or a
fresh PostgreSQL database created on the test server and dropped afterwards).
Checks the contract of DESIGN.md "Command lines": exit 0 on success, non-zero
with one clear ``Error:`` line on stderr otherwise, ``--json`` that parses; and
that agency private keys never reach the database in clear.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import nacl.pwhash
import pytest
import requests
import sqlalchemy as sa

from crypto import SigningKey, b64d, b64e, unwrap_private_key
from field_client.errors import HubRefused
from field_client.transport import HubClient
from tests.conftest import PG_URL, _connect

ADMIN_PASSWORD = "correct-horse-battery-staple"
USER_PASSWORD = "a-long-enough-password"
EXE = Path(sys.executable).with_name("fieldsync-hub")
CLI = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "backend.cli"]
ROOT = Path(__file__).resolve().parents[2]
AGENCIES = {"SPD": "Springfield Police Department", "CSO": "County Sheriff's Office", "FHP": "Highway Patrol"}
TEMPLATE_ACTIONS = ["user.add", "hub.init", "agency.create", "agency.create", "agency.create"]


# -- databases and hubs ----------------------------------------------------------------
class Databases:
    """Empty databases of one kind, or copies of a template; PostgreSQL ones are dropped at close."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind, self.root, self.created = kind, root, list[str]()

    def new(self, template: str | None = None) -> str:
        name = f"fieldsync_cli_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        if self.kind == "sqlite":
            path = self.root / f"{name}.db"
            if template:
                source = template.removeprefix("sqlite:///")
                for suffix in ("", "-wal", "-shm"):
                    if Path(source + suffix).exists():
                        shutil.copyfile(source + suffix, f"{path}{suffix}")
            return f"sqlite:///{path}"
        clause = f' TEMPLATE "{template.rpartition("/")[2]}"' if template else ""
        with _connect(PG_URL) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{clause}')
        self.created.append(name)
        return f"{PG_URL.rpartition('/')[0]}/{name}"

    def close(self) -> None:
        for name in self.created:
            with _connect(PG_URL) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Fail(NamedTuple):
    args: tuple[str, ...]
    expect: str
    env: dict[str, str | None] | None = None


@dataclass
class HubCli:
    instance: Path
    database_url: str
    env: dict[str, str]

    @property
    def kind(self) -> str:
        return "sqlite" if self.database_url.startswith("sqlite") else "postgresql"

    def run(self, *args: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
        full = dict(self.env)
        for name, value in (env or {}).items():
            if value is None:
                full.pop(name, None)
            else:
                full[name] = value
        return subprocess.run(
            [*CLI, *args],
            env=full,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,  # no terminal: a missing password is an error, never a prompt
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str, **kw: Any) -> str:
        result = self.run(*args, **kw)
        assert result.returncode == 0, f"{args} failed ({result.returncode}): {result.stderr}"
        return result.stdout

    def fails(self, *args: str, **kw: Any) -> str:
        """The command fails with exactly one line on stderr, starting ``Error:``; returns that line."""
        result = self.run(*args, **kw)
        assert result.returncode != 0, f"{args} should fail; stdout: {result.stdout}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"{args}: expected one line on stderr, got {result.stderr!r}"
        assert lines[0].startswith("Error: "), lines[0]
        return lines[0]

    def fails_all(self, *cases: Fail) -> None:
        """Independent refusals, run side by side (each process costs a second of imports)."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            lines = list(pool.map(lambda case: self.fails(*case.args, env=case.env), cases))
        for case, line in zip(cases, lines, strict=True):
            assert case.expect in line, f"{case.args}: {line}"

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def query(self, sql: str, **params: Any) -> list[Any]:
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(sql), params))
        finally:
            engine.dispose()

    def kek(self) -> bytes:
        return b64d((self.instance / "kek").read_text().strip(), length=32)


def _hub(instance: Path, database_url: str) -> HubCli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
    env.update(
        FIELDSYNC_INSTANCE=str(instance),
        FIELDSYNC_DATABASE_URL=database_url,
        FIELDSYNC_ADMIN_PASSWORD=ADMIN_PASSWORD,
        FIELDSYNC_USER_PASSWORD=USER_PASSWORD,
    )
    return HubCli(instance, database_url, env)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    if request.param == "postgresql":
        request.getfixturevalue("postgres_url")  # skips, with the reason, where no PostgreSQL can be had
    dbs = Databases(request.param, tmp_path_factory.mktemp(f"cli-{request.param}"))
    yield dbs
    dbs.close()


@pytest.fixture(scope="module")
def initialized(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> HubCli:
    """One ``fieldsync-hub init`` and the agencies of AGENCIES per database kind; each test gets a copy."""
    template = _hub(tmp_path_factory.mktemp("template") / "instance", databases.new())
    template.ok("init")
    for code, name in AGENCIES.items():
        assert f"agency {code} created" in template.ok("agency", "create", code, "--name", name)
    return template


@pytest.fixture
def fresh(databases: Databases, tmp_path: Path) -> HubCli:
    """An empty database and instance folder: nothing initialized yet."""
    return _hub(tmp_path / "instance", databases.new())


@pytest.fixture
def cli(initialized: HubCli, databases: Databases, tmp_path: Path) -> HubCli:
    """A hub of its own after ``init`` and ``agency create`` of AGENCIES (a copy of the database and instance)."""
    shutil.copytree(initialized.instance, tmp_path / "instance")
    return _hub(tmp_path / "instance", databases.new(template=initialized.database_url))


# -- init ---------------------------------------------------------------------------
def test_init_creates_a_kek_file_and_is_safe_to_rerun(fresh: HubCli) -> None:
    out = fresh.ok("init")
    assert f"hub initialized: database {fresh.database_url}" in out
    kek_file = fresh.instance / "kek"
    assert f"key-encryption key: {kek_file}" in out
    assert "admin account: admin" in out
    assert kek_file.stat().st_mode & 0o777 == 0o600
    assert len(fresh.kek()) == 32
    kek_before = kek_file.read_text()
    [(name, role, password_hash)] = fresh.query("SELECT name, role, password_hash FROM users")
    assert (name, role) == ("admin", "admin")
    assert nacl.pwhash.verify(password_hash.encode(), ADMIN_PASSWORD.encode())
    assert fresh.query("SELECT count(*) FROM hub_keys")[0][0] == 1

    again = fresh.ok("init")
    assert "already initialized" in again
    assert kek_file.read_text() == kek_before, "re-running init must never replace the KEK"
    assert fresh.query("SELECT count(*) FROM users")[0][0] == 1
    assert fresh.query("SELECT count(*) FROM hub_keys")[0][0] == 1
    assert fresh.ok("audit", "verify").strip() == "audit log intact: 2 entries"


def test_init_with_kek_from_environment_writes_no_kek_file(fresh: HubCli) -> None:
    kek = b64e(os.urandom(32))
    out = fresh.ok("init", env={"FIELDSYNC_KEK": kek})
    assert "key-encryption key: FIELDSYNC_KEK" in out
    assert kek not in out
    assert not (fresh.instance / "kek").exists()
    # the hub key is sealed under that KEK: it opens with it, and nothing works without it
    [(sealed,)] = fresh.query("SELECT sealed FROM hub_keys")
    unwrap_private_key(sealed.encode(), b64d(kek, length=32))
    fresh.ok("agency", "create", "SPD", "--name", "Springfield PD", env={"FIELDSYNC_KEK": kek})
    fresh.fails_all(
        Fail(("agency", "create", "CSO", "--name", "County Sheriff"), "no key-encryption key", {"FIELDSYNC_KEK": None}),
        Fail(("agency", "rotate-key", "SPD"), "FIELDSYNC_KEK is unusable", {"FIELDSYNC_KEK": "not-a-key"}),
        Fail(("agency", "rotate-key", "SPD"), "cannot open a sealed key", {"FIELDSYNC_KEK": b64e(os.urandom(32))}),
    )


def test_init_without_admin_password_fails_clearly_then_succeeds(fresh: HubCli) -> None:
    line = fresh.fails("init", env={"FIELDSYNC_ADMIN_PASSWORD": None})
    assert "FIELDSYNC_ADMIN_PASSWORD" in line
    assert "hub initialized" in fresh.ok("init")


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
def test_init_does_not_print_the_database_password(fresh: HubCli) -> None:
    url = sa.make_url(fresh.database_url)
    password = url.password or "s3cret-pw"  # the test server trusts loopback, so an added one is ignored
    with_password = url.set(password=password).render_as_string(hide_password=False)
    first = fresh.ok("init", env={"FIELDSYNC_DATABASE_URL": with_password})
    again = fresh.ok("init", env={"FIELDSYNC_DATABASE_URL": with_password})
    assert "already initialized" in again
    for out in (first, again):
        assert str(password) not in out
        assert f"{url.username}:***@" in out


def test_commands_before_init_say_so_in_one_line(fresh: HubCli) -> None:
    fresh.fails_all(
        Fail(("agency", "create", "NPD", "--name", "North Police"), "not initialized: run `fieldsync-hub init`"),
        Fail(("agency", "list"), "not initialized"),
        Fail(("device", "token", "SPD", "--officer", "Jane"), "not initialized"),
    )
    # and nothing was created by trying: init still starts from an empty database
    assert "initialized" in fresh.ok("init")


def test_an_unreachable_database_is_one_line(fresh: HubCli) -> None:
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
    line = fresh.fails("agency", "list", env={"FIELDSYNC_DATABASE_URL": unreachable})
    assert "cannot be used" in line and "127.0.0.1:1" in line


# -- agencies -----------------------------------------------------------------------
def test_agency_create_rotate_list(cli: HubCli) -> None:
    out = cli.ok("agency", "create", "NPD", "--name", "  North Police  ")
    assert "agency NPD created" in out
    listed = cli.json("agency", "list")
    assert [a["code"] for a in listed] == ["CSO", "FHP", "NPD", "SPD"]
    assert {a["code"]: a["name"] for a in listed} == AGENCIES | {"NPD": "North Police"}
    assert all(a["devices"] == 0 for a in listed)
    for row in listed:  # --json is stable for scripts: aware UTC times whatever the database
        assert datetime.fromisoformat(row["created_at"]).utcoffset() == timedelta(0), row["created_at"]
    before = {a["code"]: a["key"] for a in listed}
    assert before["NPD"][:16] in out

    out = cli.ok("agency", "rotate-key", "NPD")
    assert "agency NPD key rotated" in out
    after = {a["code"]: a["key"] for a in cli.json("agency", "list")}
    assert after["NPD"] != before["NPD"] and after["NPD"][:16] in out
    assert {c: k for c, k in after.items() if c != "NPD"} == {c: k for c, k in before.items() if c != "NPD"}
    keys = cli.query("SELECT public_key, retired_at FROM agency_keys WHERE agency = 'NPD' ORDER BY id")
    assert [k[0] for k in keys] == [before["NPD"], after["NPD"]]
    assert keys[0][1] is not None and keys[1][1] is None
    entries = [r[0] for r in cli.query('SELECT entry FROM registry_entries ORDER BY "index"')]
    types = [(e if isinstance(e, dict) else json.loads(e))["type"] for e in entries]
    assert types == ["hub", "agency", "agency", "agency", "agency", "rotation"]


def test_agency_errors(cli: HubCli) -> None:
    cli.fails_all(
        Fail(("agency", "create", "SPD", "--name", "Another"), "agency SPD already exists"),
        Fail(("agency", "create", "spd", "--name", "Lower"), "agency code 'spd' must be"),
        Fail(("agency", "create", "1PD", "--name", "Digit first"), "agency code '1PD' must be"),
        Fail(("agency", "create", "SPD!", "--name", "Punctuation"), "agency code 'SPD!' must be"),
        Fail(("agency", "create", "NEW", "--name", "   "), "--name must not be empty"),
        Fail(("agency", "rotate-key", "NOPE"), "unknown agency NOPE"),
    )
    assert [a["code"] for a in cli.json("agency", "list")] == ["CSO", "FHP", "SPD"]
    assert cli.query("SELECT count(*) FROM agency_keys")[0][0] == 3
    assert cli.query("SELECT count(*) FROM audit_log")[0][0] == len(TEMPLATE_ACTIONS)  # refusals change nothing


def _seed_forms(seed: bytes) -> list[bytes]:
    return [seed, b64e(seed).encode(), base64.b64encode(seed).rstrip(b"="), seed.hex().encode()]


def test_agency_private_keys_are_never_stored_in_clear(cli: HubCli) -> None:
    cli.ok("agency", "rotate-key", "SPD")
    kek = cli.kek()
    rows = cli.query(
        "SELECT a.public_key, a.sealed FROM agency_keys a UNION ALL SELECT h.public_key, h.sealed FROM hub_keys h"
    )
    assert len(rows) == 5  # three agencies, one retired key, the hub key
    seeds = []
    for public_key, sealed in rows:
        key = unwrap_private_key(sealed.encode(), kek)
        assert key.verify_key.to_text() == public_key
        seeds.append(bytes(key))
    if cli.kind == "sqlite":
        path = Path(cli.database_url.removeprefix("sqlite:///"))
        stored = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    else:
        tables = [r[0] for r in cli.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert "agency_keys" in tables
        stored = "\n".join(
            str(r[0]) for t in tables for r in cli.query(f'SELECT row_to_json(t)::text FROM "{t}" t')
        ).encode()
    for seed in seeds:
        for form in _seed_forms(seed):
            assert form not in stored, "a private key is in the database in clear"
    # the control: the public keys, stored in clear, are found by the same search
    assert all(public_key.encode() in stored for public_key, _ in rows)


# -- devices ----------------------------------------------------------------------------
RUNNING_ON = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")


@pytest.fixture
def served(cli: HubCli, tmp_path: Path) -> Iterator[str]:
    """``fieldsync-hub serve`` on port 0, until the test ends: the server binds a port of its choosing and
    names it in its startup line (werkzeug's `` * Running on URL``), so no port is probed, closed and handed
    over (another process could take it in between)."""
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", "0"],
            env=cli.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 60  # generous: a loaded machine only makes the start slower
        base = None
        while True:
            if proc.poll() is not None:
                pytest.fail(f"fieldsync-hub serve exited {proc.returncode}: {log_path.read_text(errors='replace')}")
            if base is None and (found := RUNNING_ON.search(log_path.read_text(errors="replace"))):
                base = found[1]
            try:
                if base and requests.get(f"{base}/healthz", timeout=1).json()["status"] == "ok":
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail("fieldsync-hub serve did not answer /healthz within 60 s")
            time.sleep(0.1)
        assert base is not None
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_device_token_enrolls_list_and_revoke(cli: HubCli, served: str) -> None:
    token = cli.ok("device", "token", "SPD", "--officer", "Sgt. Lee").strip()
    assert len(b64d(token)) == 32
    stored = json.dumps([list(r) for r in cli.query("SELECT * FROM enrollment_tokens")], default=str)
    assert "Sgt. Lee" in stored and token not in stored  # only the token's hash is kept

    key = SigningKey.generate()
    answer = HubClient(served).enroll(token, key.verify_key.to_text())
    assert answer["agency"] == "SPD" and answer["officer"] == "Sgt. Lee"
    device_id = answer["device_id"]
    with pytest.raises(HubRefused, match="already used") as refused:  # one token, one laptop
        HubClient(served).enroll(token, SigningKey.generate().verify_key.to_text())
    assert refused.value.status == 409

    [listed] = cli.json("device", "list")
    assert listed["id"] == device_id and listed["status"] == "active" and listed["officer"] == "Sgt. Lee"
    assert cli.json("device", "list", "--agency", "CSO") == []

    out = cli.ok("device", "revoke", device_id, "--reason", "lost laptop")
    assert device_id in out and "revoked after seq 0" in out
    [listed] = cli.json("device", "list", "--agency", "SPD")
    assert listed["status"] == "revoked"
    last = HubClient(served).registry()[-1]  # the revocation is in the signed registry the hub serves
    assert (last["type"], last["device_id"], last["after_seq"], last["reason"]) == (
        "revocation", device_id, 0, "lost laptop",
    )  # fmt: skip
    cli.fails_all(
        Fail(("device", "revoke", device_id), f"device {device_id} is already revoked"),
        Fail(("device", "revoke", "no-such-device"), "unknown device no-such-device"),
    )
    rows = cli.query("SELECT action, outcome, agency, actor FROM audit_log ORDER BY seq")
    assert [r[0] for r in rows[: len(TEMPLATE_ACTIONS)]] == TEMPLATE_ACTIONS
    assert [r[:3] for r in rows[len(TEMPLATE_ACTIONS) :]] == [
        ("token.issued", "ok", "SPD"),
        ("device.enroll", "ok", "SPD"),
        ("device.enroll", "refused", "SPD"),  # the second laptop with a spent token
        ("device.revoke", "ok", "SPD"),
    ]
    assert rows[-1][3].startswith("cli:") and rows[-3][3] == "officer:Sgt. Lee"
    assert cli.ok("audit", "verify").strip() == f"audit log intact: {len(rows)} entries"


def test_device_token_errors(cli: HubCli) -> None:
    cli.fails_all(
        Fail(("device", "token", "NOPE", "--officer", "Sgt. Lee"), "unknown agency NOPE"),
        Fail(("device", "token", "SPD", "--officer", "  "), "an officer name is required"),
    )
    assert cli.query("SELECT count(*) FROM enrollment_tokens")[0][0] == 0


# -- agreements ---------------------------------------------------------------------------
def test_agreements(cli: HubCli) -> None:
    out = cli.ok(
        "agreement", "add", "--from", "SPD", "--to", "CSO", "--collections", "resources,contacts",
        "--withhold", "notes", "--write", "status",
    )  # fmt: skip
    assert "CSO sees SPD's resources, contacts" in out
    cli.ok("agreement", "add", "--from", "CSO", "--to", "SPD", "--collections", "resources")

    spd_fhp = ("agreement", "add", "--from", "SPD", "--to", "FHP", "--collections")
    cli.fails_all(
        Fail((*spd_fhp, "resources,widgets"), "unknown collection widgets"),
        Fail((*spd_fhp, "resources", "--withhold", "colour"), "withhold: no field colour in resources"),
        Fail((*spd_fhp, "resources", "--write", "phone"), "write: no field phone in resources"),
        Fail(
            (*spd_fhp, "resources", "--withhold", "status", "--write", "status"), "both withheld and writable: status"
        ),
        Fail(("agreement", "add", "--from", "SPD", "--to", "CSO", "--collections", "contacts"), "exists"),
        Fail(
            ("agreement", "add", "--from", "SPD", "--to", "NOPE", "--collections", "resources"), "unknown agency NOPE"
        ),
        Fail(("agreement", "add", "--from", "SPD", "--to", "SPD", "--collections", "resources"), "two different"),
        Fail(("agreement", "remove", "--from", "FHP", "--to", "SPD"), "no agreement from FHP to SPD"),
    )
    assert cli.json("agreement", "list") == [
        {"from": "CSO", "to": "SPD", "collections": "resources", "withhold": "", "write": ""},
        {"from": "SPD", "to": "CSO", "collections": "resources,contacts", "withhold": "notes", "write": "status"},
    ]
    assert "agreement from SPD to CSO removed" in cli.ok("agreement", "remove", "--from", "SPD", "--to", "CSO")
    # once removed, the pair can be agreed again, differently
    cli.ok("agreement", "add", "--from", "SPD", "--to", "CSO", "--collections", "contacts")
    assert [(a["from"], a["to"], a["collections"]) for a in cli.json("agreement", "list")] == [
        ("CSO", "SPD", "resources"),
        ("SPD", "CSO", "contacts"),
    ]
    actions = [r[0] for r in cli.query("SELECT action FROM audit_log WHERE action LIKE 'agreement.%' ORDER BY seq")]
    assert actions == ["agreement.add", "agreement.add", "agreement.remove", "agreement.add"]


# -- users and audit ------------------------------------------------------------------------
def test_user_add(cli: HubCli) -> None:
    assert "user dana added (staff)" in cli.ok("user", "add", "dana", "--role", "staff")
    cli.ok("user", "add", "root2", "--role", "admin", env={"FIELDSYNC_USER_PASSWORD": "another-long-password"})
    rows = {r[0]: (r[1], r[2]) for r in cli.query("SELECT name, role, password_hash FROM users")}
    assert {name: role for name, (role, _) in rows.items()} == {"admin": "admin", "dana": "staff", "root2": "admin"}
    assert nacl.pwhash.verify(rows["dana"][1].encode(), USER_PASSWORD.encode())
    assert rows["dana"][1].startswith("$argon2id$") and USER_PASSWORD not in json.dumps(rows)

    cli.fails_all(
        Fail(("user", "add", "eve", "--role", "staff"), "at least 12 characters", {"FIELDSYNC_USER_PASSWORD": "short"}),
        Fail(("user", "add", "dana", "--role", "admin"), "user dana already exists"),
        Fail(("user", "add", "fay", "--role", "staff"), "FIELDSYNC_USER_PASSWORD", {"FIELDSYNC_USER_PASSWORD": None}),
    )
    # an unknown role is a usage error (click): exit 2, the choices named
    bad = cli.run("user", "add", "gus", "--role", "root")
    assert bad.returncode == 2
    assert "Error: Invalid value for '--role'" in bad.stderr and "'admin', 'staff'" in bad.stderr
    assert sorted(rows) == sorted(r[0] for r in cli.query("SELECT name FROM users"))


# -- scheduled jobs -------------------------------------------------------------------
def test_jobs_run_and_list(cli: HubCli) -> None:
    assert "job audit-verify ran" in cli.ok("jobs", "run", "audit-verify")
    rows = {row["name"]: row for row in cli.json("jobs", "list")}
    assert rows["audit-verify"]["runs"] == 1 and rows["audit-verify"]["last_outcome"] == "ok"
    assert rows["audit-verify"]["summary"]["ok"] is True
    cli.fails_all(Fail(("jobs", "run", "no-such-job"), "no job 'no-such-job'"))


def test_agreement_fields_may_be_comma_separated(cli: HubCli) -> None:
    cli.ok(
        "agreement", "add", "--from", "SPD", "--to", "CSO", "--collections", "resources",
        "--withhold", "notes,description", "--write", "status",
    )  # fmt: skip
    (row,) = cli.json("agreement", "list")
    assert sorted(row["withhold"].split(",")) == ["description", "notes"] and row["write"] == "status"


# -- the module's shape ----------------------------------------------------------------
def test_the_cli_holds_no_model_query_and_calls_no_private_name() -> None:
    """backend.cli calls library functions only (one path with the admin pages): it imports no
    model and no query builder, uses the session only to commit, roll back and release it, and
    reaches no ``_private`` name of another module. Read from its source, so the rule cannot
    silently come back."""
    source = ROOT / "backend" / "cli.py"
    tree = ast.parse(source.read_text(), str(source))
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            problems += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in ("backend", "sqlalchemy")]
        elif isinstance(node, ast.ImportFrom):
            module = ("backend" + ("." + node.module if node.module else "")) if node.level else (node.module or "")
            names = [a.name for a in node.names]
            if module == "backend.models" or (module == "backend" and "models" in names):
                problems.append(f"line {node.lineno}: imports the models")
            if module == "sqlalchemy" and set(names) - {"make_url"}:
                problems.append(f"line {node.lineno}: imports a query builder from sqlalchemy: {names}")
            problems += [f"line {node.lineno}: imports private {n} from {module}" for n in names if n.startswith("_")]
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_") and not node.attr.startswith("__"):
                problems.append(f"line {node.lineno}: reaches the private name .{node.attr}")
            if isinstance(node.value, ast.Name) and node.value.id == "db" and node.attr not in ("session", "engines"):
                problems.append(f"line {node.lineno}: uses db.{node.attr}")
            if (
                isinstance(node.value, ast.Attribute)
                and node.value.attr == "session"
                and node.attr not in ("commit", "rollback", "remove")
            ):
                problems.append(f"line {node.lineno}: queries through db.session.{node.attr}")
    assert problems == []
