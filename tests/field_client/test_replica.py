"""The encrypted replica (field_client/replica.py): opening, passphrases, damage, leaks, migrations."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from crypto import FAST, INTERACTIVE, b64d
from field_client import edits, highwater, overview, replica, state
from field_client.device import Device
from field_client.errors import (
    AlreadyEnrolled,
    NotEnrolled,
    ReplicaDamaged,
    ReplicaError,
    WrongPassphrase,
)
from field_client.replica import DB_NAME, HEADER_NAME, MIGRATIONS, Replica

from .conftest import MakeLaptop
from .helpers import PASSPHRASE

# The hub's database does not matter to these tests: run them against the SQLite hub only.
sqlite_hub = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def snapshot(home: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in ``home``: its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(home.iterdir()) if p.is_file()}


@pytest.fixture
def made(tmp_path: Path) -> Path:
    """A replica holding a little data, closed (no WAL left)."""
    home = tmp_path / "home"
    with Replica.create(home, PASSPHRASE, cost=FAST) as rep:
        rep.set("greeting", {"text": "hello", "n": 1})
        rep.set_secret("device_key", b"\x01" * 32)
        with rep.transaction():
            for i in range(300):  # several pages, so damage can land past the first one
                rep.set(f"filler-{i}", "x" * 200)
    return home


# -- create / open ---------------------------------------------------------------------


def test_create_then_open_round_trip(made: Path) -> None:
    with Replica.open(made, PASSPHRASE) as rep:
        assert rep.get("greeting") == {"text": "hello", "n": 1}
        assert rep.secret("device_key") == b"\x01" * 32
        assert rep.get("filler-299") == "x" * 200
        assert rep.get("absent", "default") == "default"
        assert rep.secret("absent") is None


def test_create_writes_header_and_private_files(made: Path) -> None:
    header = json.loads((made / HEADER_NAME).read_text())
    assert header["format"] == replica.FORMAT
    assert header["kdf"] == "argon2id"
    assert (header["opslimit"], header["memlimit"]) == (FAST.opslimit, FAST.memlimit)
    assert len(b64d(header["salt"])) == 16
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    for name in (DB_NAME, HEADER_NAME):
        assert stat.S_IMODE((made / name).stat().st_mode) == 0o600
    assert not list(made.glob("*.tmp"))


def test_salt_is_fresh_for_every_replica(tmp_path: Path) -> None:
    salts = set()
    for name in ("a", "b"):
        Replica.create(tmp_path / name, PASSPHRASE, cost=FAST).close()
        salts.add(json.loads((tmp_path / name / HEADER_NAME).read_text())["salt"])
    assert len(salts) == 2


def test_default_cost_is_interactive(tmp_path: Path) -> None:
    Replica.create(tmp_path / "home", PASSPHRASE).close()
    header = json.loads((tmp_path / "home" / HEADER_NAME).read_text())
    assert header["opslimit"] == INTERACTIVE.opslimit
    assert header["memlimit"] == INTERACTIVE.memlimit
    assert INTERACTIVE != FAST


def test_create_refuses_an_existing_replica_and_a_short_passphrase(made: Path, tmp_path: Path) -> None:
    before = snapshot(made)
    with pytest.raises(AlreadyEnrolled):
        Replica.create(made, PASSPHRASE, cost=FAST)
    assert snapshot(made) == before
    with pytest.raises(WrongPassphrase, match="at least 8"):
        Replica.create(tmp_path / "short", "1234567", cost=FAST)
    assert not replica.exists(tmp_path / "short")


# -- wrong passphrase, not enrolled, damage ------------------------------------------------


def test_wrong_passphrase_raises_and_writes_nothing(made: Path) -> None:
    before = snapshot(made)
    with pytest.raises(WrongPassphrase):
        Replica.open(made, PASSPHRASE + "!")
    assert snapshot(made) == before
    Replica.open(made, PASSPHRASE).close()  # the right one still works


def test_wrong_passphrase_while_the_replica_is_open_elsewhere(made: Path) -> None:
    """With a WAL and shared-memory file present, a wrong passphrase still changes nothing."""
    with Replica.open(made, PASSPHRASE) as rep:
        rep.set("while-open", 1)
        assert (made / f"{DB_NAME}-wal").exists()
        before = snapshot(made)
        with pytest.raises(WrongPassphrase):
            Replica.open(made, "not the passphrase")
        after = snapshot(made)
        # The -shm file is SQLite's shared-memory WAL index: any reader updates its read
        # marks there. It holds no data; the database, its WAL and the header must not move.
        assert after.keys() == before.keys()
        for name in (DB_NAME, f"{DB_NAME}-wal", HEADER_NAME):
            assert after[name] == before[name], name
        assert rep.get("while-open") == 1


def test_opening_a_home_without_replica_is_not_enrolled(tmp_path: Path) -> None:
    with pytest.raises(NotEnrolled, match="enroll"):
        Replica.open(tmp_path / "nowhere", PASSPHRASE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotEnrolled):
        Replica.open(tmp_path / "empty", PASSPHRASE)
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_replica_without_enrollment_is_no_device(tmp_path: Path) -> None:
    with Replica.create(tmp_path / "home", PASSPHRASE, cost=FAST) as rep, pytest.raises(NotEnrolled):
        Device(rep)


@pytest.mark.parametrize(
    "header",
    [
        "{not json",
        "",
        json.dumps({"format": replica.FORMAT, "kdf": "argon2id", "opslimit": 1, "memlimit": 8192}),  # no salt
        json.dumps({"format": replica.FORMAT, "salt": "AAAA", "opslimit": 1, "memlimit": 8192}),  # short salt
        json.dumps(["a", "list"]),
        json.dumps({"format": replica.FORMAT, "salt": "A" * 22, "opslimit": 0, "memlimit": 8192}),
        json.dumps({"format": replica.FORMAT, "salt": "A" * 22, "opslimit": 1, "memlimit": 10}),
        json.dumps({"format": replica.FORMAT, "salt": "A" * 22, "opslimit": "many", "memlimit": 8192}),
    ],
    ids=["not-json", "empty", "no-salt", "short-salt", "list", "no-passes", "no-memory", "text-cost"],
)
def test_damaged_header_is_replica_damaged(made: Path, header: str) -> None:
    (made / HEADER_NAME).write_text(header)
    with pytest.raises(ReplicaDamaged):
        Replica.open(made, PASSPHRASE)


def test_header_of_another_format_is_replica_damaged(made: Path) -> None:
    header = json.loads((made / HEADER_NAME).read_text())
    (made / HEADER_NAME).write_text(json.dumps({**header, "format": "something-else/9"}))
    with pytest.raises(ReplicaDamaged):
        Replica.open(made, PASSPHRASE)


def test_missing_header_is_replica_damaged(made: Path) -> None:
    (made / HEADER_NAME).unlink()
    with pytest.raises(ReplicaDamaged):
        Replica.open(made, PASSPHRASE)


# -- one reader of replica.json, for open and check alike ------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "{not json",
        json.dumps({"format": replica.FORMAT, "salt": "AAAA", "opslimit": 1, "memlimit": 8192}),
        json.dumps({"format": replica.FORMAT, "salt": "A" * 22, "opslimit": 0, "memlimit": 8192}),
        json.dumps({"salt": "A" * 22, "opslimit": 1, "memlimit": 8192}),
        "another-format",
    ],
    ids=["not-json", "short-salt", "no-passes", "no-format", "another-format"],
)
def test_check_reads_the_header_as_open_does(made: Path, header: str) -> None:
    """``fieldsync check`` refuses every header that opening refuses, with the same message,
    and writes nothing; a header of another format included (check once let it through)."""
    if header == "another-format":
        header = json.dumps({**json.loads((made / HEADER_NAME).read_text()), "format": "something-else/9"})
    (made / HEADER_NAME).write_text(header)
    before = snapshot(made)
    with pytest.raises(ReplicaDamaged) as opening:
        Replica.open(made, PASSPHRASE)
    with pytest.raises(ReplicaDamaged) as checking:
        replica.check(made, PASSPHRASE)
    assert str(opening.value) == str(checking.value)
    assert "is missing or damaged" in str(checking.value)
    assert snapshot(made) == before


def test_unlock_derives_the_key_and_reads_the_cipher(made: Path) -> None:
    before = snapshot(made)
    unlocked = replica.unlock(made, PASSPHRASE)
    assert unlocked.cipher == replica.CIPHER and isinstance(unlocked.check, str)
    assert _raw_key_reads(made, unlocked.key)
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        replica.unlock(made, "not the passphrase")
    with pytest.raises(NotEnrolled, match="fieldsync enroll"):
        replica.unlock(made.parent / "elsewhere", PASSPHRASE)
    assert snapshot(made) == before


def test_a_header_without_a_key_check_unlocks_and_leaves_the_first_page_to_judge(made: Path) -> None:
    header = json.loads((made / HEADER_NAME).read_text())
    del header["check"]
    (made / HEADER_NAME).write_text(json.dumps(header))
    assert replica.unlock(made, "not the passphrase").check is None
    with pytest.raises(WrongPassphrase, match="or the replica file is damaged"):
        Replica.open(made, "not the passphrase")
    with pytest.raises(WrongPassphrase, match="or the replica file is damaged"):
        replica.check(made, "not the passphrase")
    with Replica.open(made, PASSPHRASE) as rep:
        assert rep.get("greeting") == {"text": "hello", "n": 1}


def _raw_key_reads(home: Path, key: bytes) -> bool:
    import sqlcipher3

    conn = sqlcipher3.connect(str(home / DB_NAME))
    try:
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        conn.execute(f"PRAGMA cipher_page_size = {replica.CIPHER.page_size}")
        conn.execute(f"PRAGMA cipher_hmac_algorithm = {replica.CIPHER.hmac}")
        return int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]) > 0
    finally:
        conn.close()


# -- the cipher's page size and page MAC ------------------------------------------------------


def _raw_read(home: Path, cipher: replica.Cipher | None) -> object:
    """Read the replica with its raw key and the given page settings (None: SQLCipher's defaults,
    nothing set), as another program holding the key would."""
    import sqlcipher3

    header = json.loads((home / HEADER_NAME).read_text())
    from crypto.sealed import derive_key

    key = derive_key(PASSPHRASE, b64d(header["salt"]), replica.KdfCost(header["opslimit"], header["memlimit"]))
    conn = sqlcipher3.connect(str(home / DB_NAME))
    try:
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        if cipher is not None:
            conn.execute(f"PRAGMA cipher_page_size = {cipher.page_size}")
            conn.execute(f"PRAGMA cipher_hmac_algorithm = {cipher.hmac}")
        return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    finally:
        conn.close()


def test_a_new_replica_has_16_kib_pages_checked_with_hmac_sha256(made: Path) -> None:
    """Named in the header, and in force: the file is read with these settings and with no
    others (SQLCipher's defaults, or the right page size with the other MAC, fail)."""
    header = json.loads((made / HEADER_NAME).read_text())
    assert header["cipher"] == {"page_size": 16384, "hmac": "HMAC_SHA256"} == replica.CIPHER._asdict()
    with Replica.open(made, PASSPHRASE) as rep, rep.clone() as other:
        for conn in (rep.conn, other.conn):
            assert int(conn.execute("PRAGMA page_size").fetchone()[0]) == 16384
            assert conn.execute("PRAGMA cipher_hmac_algorithm").fetchone()[0] == "HMAC_SHA256"
    assert (made / DB_NAME).stat().st_size % 16384 == 0
    assert _raw_read(made, replica.CIPHER) > 0
    for other_settings in (None, replica.Cipher(16384, "HMAC_SHA512"), replica.Cipher(4096, "HMAC_SHA256")):
        with pytest.raises(Exception, match="not a database"):
            _raw_read(made, other_settings)
    assert replica.check(made, PASSPHRASE)["ok"]


def test_a_replica_made_before_the_header_named_a_cipher_opens_with_sqlcipher_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica of the first releases: 4 KiB pages, HMAC-SHA512, no "cipher" in replica.json.
    It opens, reads, writes, clones and checks as before, and keeps its settings."""
    home = tmp_path / "old"
    with monkeypatch.context() as m:
        m.setattr(replica, "CIPHER", replica.SQLCIPHER4_DEFAULTS)
        with Replica.create(home, PASSPHRASE, cost=FAST) as rep:
            rep.set("greeting", "from an old release")
    header = json.loads((home / HEADER_NAME).read_text())
    del header["cipher"]
    (home / HEADER_NAME).write_text(json.dumps(header))
    assert _raw_read(home, None) > 0  # SQLCipher 4's own defaults read it
    with Replica.open(home, PASSPHRASE) as rep, rep.clone() as other:
        assert rep.get("greeting") == "from an old release"
        other.set("more", 1)
        assert int(rep.conn.execute("PRAGMA page_size").fetchone()[0]) == 4096
    assert replica.check(home, PASSPHRASE)["ok"]
    assert "cipher" not in json.loads((home / HEADER_NAME).read_text())


@pytest.mark.parametrize(
    "cipher",
    [
        {"page_size": 16384, "hmac": "HMAC_SHA1"},
        {"page_size": 16384, "hmac": "none"},
        {"page_size": 1000, "hmac": "HMAC_SHA256"},
        {"page_size": 131072, "hmac": "HMAC_SHA256"},
        {"page_size": "16384", "hmac": "HMAC_SHA256"},
        {"page_size": 16384, "hmac": "HMAC_SHA256", "kdf_iter": 1},
        {"page_size": 16384},
        {"page_size": 16384, "hmac": ["HMAC_SHA256"]},
        "HMAC_SHA256",
    ],
    ids=[
        "sha1",
        "no-mac",
        "not-a-power",
        "too-big",
        "text-size",
        "extra-key",
        "no-mac-named",
        "mac-list",
        "not-an-object",
    ],
)
def test_a_header_naming_another_cipher_is_damaged_and_nothing_is_written(made: Path, cipher: object) -> None:
    header = json.loads((made / HEADER_NAME).read_text())
    (made / HEADER_NAME).write_text(json.dumps({**header, "cipher": cipher}))
    before = snapshot(made)
    with pytest.raises(ReplicaDamaged, match="cipher"):
        Replica.open(made, PASSPHRASE)
    with pytest.raises(ReplicaDamaged, match="cipher"):
        replica.check(made, PASSPHRASE)
    assert snapshot(made) == before


def test_a_header_naming_the_wrong_page_size_never_opens_silently(made: Path) -> None:
    """A valid but wrong setting (edited by hand): the pages' MACs fail, the replica is reported
    damaged, and nothing is written."""
    header = json.loads((made / HEADER_NAME).read_text())
    (made / HEADER_NAME).write_text(json.dumps({**header, "cipher": {"page_size": 4096, "hmac": "HMAC_SHA256"}}))
    before = snapshot(made)
    with pytest.raises(ReplicaDamaged):
        Replica.open(made, PASSPHRASE)
    assert snapshot(made) == before


@pytest.mark.parametrize("where", [0.0, 0.3, 0.5, 0.97], ids=["first-page", "early", "middle", "last-page"])
def test_garbage_in_the_file_never_opens_silently(made: Path, where: float) -> None:
    path = made / DB_NAME
    size = path.stat().st_size
    assert size > 8 * 4096
    offset = 100 if where == 0.0 else int(size * where)
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(os.urandom(64))
    with pytest.raises(ReplicaError) as caught:
        rep = Replica.open(made, PASSPHRASE)
        rep.close()  # pragma: no cover - only reached if damage went unnoticed
    assert isinstance(caught.value, WrongPassphrase | ReplicaDamaged)


# -- nothing readable on disk ------------------------------------------------------------

CANARY = "CANARY-7f3a"


def leak_forms(secret: bytes) -> list[bytes]:
    """``secret`` as bytes, UTF-16 both ways, hex, and base64 (standard and url-safe) at any alignment."""
    forms = [secret, secret.hex().encode(), secret.hex().upper().encode()]
    text = secret.decode("latin-1")
    forms += [text.encode("utf-16-le"), text.encode("utf-16-be")]
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\x00" * shift + secret)
            # drop the characters that depend on the neighbouring bytes
            start = (shift * 4 + 2) // 3
            forms.append(encoded[start : len(encoded) - 4].rstrip(b"="))
    return [f for f in forms if len(f) >= 8]


def leaks(folder: Path, secrets: list[bytes]) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {form!r}" for s in secrets for form in leak_forms(s) if form in data]
    return found


def test_leak_forms_finds_what_it_should(tmp_path: Path) -> None:
    """The search itself works: plain, UTF-16 and base64 copies are all caught."""
    secret = CANARY.encode()
    for i, blob in enumerate(
        [
            b"xx" + secret + b"yy",
            ("abc" + CANARY).encode("utf-16-le"),
            base64.b64encode(b"q" + secret + b"zz"),
            base64.urlsafe_b64encode(b"pp" + secret),
        ]
    ):
        (tmp_path / f"f{i}").write_bytes(blob)
        assert leaks(tmp_path, [secret]), blob
        (tmp_path / f"f{i}").unlink()


def test_memory_security_is_a_setting_refused_when_misspelt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    Replica.create(home, PASSPHRASE, cost=FAST).close()
    monkeypatch.setenv("FIELDSYNC_REPLICA_MEMORY_SECURITY", "yes please")
    before = {p.name: p.read_bytes() for p in home.iterdir()}
    with pytest.raises(ReplicaError, match="FIELDSYNC_REPLICA_MEMORY_SECURITY must be on or off"):
        Replica.open(home, PASSPHRASE)
    assert {p.name: p.read_bytes() for p in home.iterdir()} == before  # nothing written, no sidecar left


def test_memory_security_can_be_turned_on_for_a_laptop_that_wants_it(tmp_path: Path) -> None:
    """In a process of its own: once on, SQLCipher keeps it on for the process (this one stays off)."""
    home = tmp_path / "home"
    Replica.create(home, PASSPHRASE, cost=FAST).close()
    script = (
        "import sys; from field_client.replica import Replica; "
        "rep = Replica.open(sys.argv[1], sys.argv[2]); "
        "print(rep.conn.execute('PRAGMA cipher_memory_security').fetchone()[0])"
    )
    env = {**os.environ, "FIELDSYNC_REPLICA_MEMORY_SECURITY": "on"}
    out = subprocess.run([sys.executable, "-c", script, str(home), PASSPHRASE], env=env, capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert out.stdout.strip() == "1"


def test_every_connection_the_client_opens_keeps_temp_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """temp_store MEMORY and WAL, read back with PRAGMAs, on each connection field_client opens:
    create, open, clone (the officer's page), and `fieldsync check`'s. cipher_memory_security is
    OFF on each, by choice (field_client/replica.py's rules: ~17x the cost of every row written,
    for SQLite's share of plaintext only); once ON SQLCipher keeps it ON for the whole process,
    so one connection that set it would slow all of them."""
    opened: list[object] = []
    hardened: dict[int, tuple[object, object, object]] = {}
    real_connect, real_keyed = replica.sqlcipher3.connect, replica._keyed

    def connect(*args: object, **kwargs: object) -> object:
        conn = real_connect(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(conn)
        return conn

    def keyed(conn: object, key: bytes, cipher: replica.Cipher) -> object:
        out = real_keyed(conn, key, cipher)  # type: ignore[arg-type]
        pragma = lambda name: out.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
        hardened[id(out)] = (pragma("cipher_memory_security"), pragma("temp_store"), pragma("journal_mode"))
        return out

    monkeypatch.setattr(replica.sqlcipher3, "connect", connect)
    monkeypatch.setattr(replica, "_keyed", keyed)
    home = tmp_path / "home"
    Replica.create(home, PASSPHRASE, cost=FAST).close()
    with Replica.open(home, PASSPHRASE) as rep, rep.clone() as other:
        for conn in (rep.conn, other.conn):  # and still so once open and in use
            assert conn.execute("PRAGMA cipher_memory_security").fetchone()[0] == "0"
            assert conn.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # never a rollback journal
    assert replica.check(home, PASSPHRASE)["ok"]
    assert len(opened) == 4 and {id(c) for c in opened} == set(hardened)  # every one went through _keyed
    assert {(memory, temp) for memory, temp, _ in hardened.values()} == {("0", 2)}


@sqlite_hub
def test_nothing_readable_reaches_the_disk(laptop: MakeLaptop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite_tmp = tmp_path / "sqlite-tmp"
    sqlite_tmp.mkdir()
    monkeypatch.setenv("SQLITE_TMPDIR", str(sqlite_tmp))  # where SQLite would spill temp files
    lee = laptop("SPD", "Sgt. Lee")
    kim = laptop("SPD", "Ofc. Kim")
    for i in range(40):
        edits.create(lee.device, "resources", {"kind": "vehicle", "name": f"{CANARY} unit {i}", "notes": CANARY * 20})
    contact = edits.create(kim.device, "contacts", {"name": f"{CANARY} liaison", "role": "liaison"})
    edits.update(kim.device, contact["id"], {"notes": f"radio {CANARY}"})
    lee.sync()
    kim.sync()  # kim's replica now holds pulled changes too
    assert len(state.list_records(kim.replica, "resources")) == 40
    assert all(CANARY in r["name"] for r in state.list_records(kim.replica, "resources"))
    secrets = [CANARY.encode(), kim.replica.secret("device_key") or b"?", lee.replica.secret("device_key") or b"?"]

    # Open, with a WAL in use.
    home = kim.home
    assert (home / f"{DB_NAME}-wal").exists() and (home / f"{DB_NAME}-wal").stat().st_size > 0
    names = {p.name for p in home.iterdir()}
    assert names <= {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", HEADER_NAME, highwater.NAME}, names
    assert leaks(home, secrets) == []
    assert leaks(lee.home, secrets) == []
    assert leaks(sqlite_tmp, secrets) == []

    # Closed: WAL checkpointed into the database file.
    kim.replica.close()
    lee.replica.close()
    assert leaks(home, secrets) == []
    assert leaks(lee.home, secrets) == []
    assert leaks(sqlite_tmp, secrets) == []
    assert not any(sqlite_tmp.iterdir())

    kim.reopen()  # and the values are still there for the right passphrase
    assert state.get_record(kim.replica, contact["id"])["notes"] == f"radio {CANARY}"  # type: ignore[index]
    lee.reopen()


# -- migrations and transactions ------------------------------------------------------------


def test_user_version_is_the_last_migration(made: Path) -> None:
    with Replica.open(made, PASSPHRASE) as rep:
        assert rep.conn.execute("PRAGMA user_version").fetchone()[0] == MIGRATIONS[-1][0]
        tables = {r["name"] for r in rep.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"meta", "secrets", "records", "changes", "outbox", "conflicts", "refused"} <= tables
        assert rep.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_registered_migration_runs_once_on_open(made: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nxt = MIGRATIONS[-1][0] + 1
    monkeypatch.setattr(
        replica, "MIGRATIONS", [*MIGRATIONS, (nxt, "CREATE TABLE extra (x TEXT); INSERT INTO extra VALUES ('one')")]
    )
    for _ in range(2):
        with Replica.open(made, PASSPHRASE) as rep:
            assert rep.conn.execute("PRAGMA user_version").fetchone()[0] == nxt
            assert rep.rows("SELECT x FROM extra") == [{"x": "one"}]  # ran exactly once
            assert rep.get("greeting") == {"text": "hello", "n": 1}


def test_a_failing_migration_leaves_nothing_half_done(made: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nxt = MIGRATIONS[-1][0] + 1
    broken = "CREATE TABLE extra (x TEXT); INSERT INTO meta(key, value) VALUES ('m', '1'); CREATE TABLE meta (x)"
    monkeypatch.setattr(replica, "MIGRATIONS", [*MIGRATIONS, (nxt, broken)])
    with pytest.raises(Exception, match="already exists"):
        Replica.open(made, PASSPHRASE)
    monkeypatch.setattr(replica, "MIGRATIONS", MIGRATIONS)
    with Replica.open(made, PASSPHRASE) as rep:
        assert rep.conn.execute("PRAGMA user_version").fetchone()[0] == MIGRATIONS[-1][0]
        assert rep.rows("SELECT name FROM sqlite_master WHERE name = 'extra'") == []
        assert rep.get("m") is None


def test_transaction_rolls_back_on_error(made: Path) -> None:
    with Replica.open(made, PASSPHRASE) as rep:
        with pytest.raises(RuntimeError, match="boom"), rep.transaction():
            rep.set("inside", 1)
            rep.set_secret("inside", b"s")
            assert rep.get("inside") == 1  # visible inside the transaction
            raise RuntimeError("boom")
        assert rep.get("inside") is None
        assert rep.secret("inside") is None
        assert not rep.conn.in_transaction
        with rep.transaction():  # and the replica is usable afterwards
            rep.set("after", 2)
    with Replica.open(made, PASSPHRASE) as rep:
        assert rep.get("after") == 2
        assert rep.get("inside") is None


def test_nested_transaction_is_one_transaction(made: Path) -> None:
    with Replica.open(made, PASSPHRASE) as rep:
        with pytest.raises(KeyError), rep.transaction():
            rep.set("outer", 1)
            with rep.transaction():
                rep.set("inner", 2)
            raise KeyError("after the inner one committed nothing on its own")
        assert rep.get("outer") is None and rep.get("inner") is None
        with rep.transaction():
            rep.set("outer", 1)
            with pytest.raises(ValueError), rep.transaction():
                raise ValueError("inner failure, caught inside the outer transaction")
            assert rep.conn.in_transaction
        assert rep.get("outer") == 1


@sqlite_hub
def test_status_of_a_fresh_laptop(laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    info = overview.status(lee.device)
    assert info["device_id"] == lee.device.device_id
    assert (info["agency"], info["officer"], info["pending"]) == ("SPD", "Sgt. Lee", 0)
    assert info["last_sync_at"] is None


def test_create_in_a_folder_that_holds_other_things_leaves_its_mode_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    (shared / "someone-elses.txt").write_text("x")
    shared.chmod(0o1777)  # like /tmp
    replica.Replica.create(shared, "a long enough passphrase", cost=FAST).close()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    for name in (DB_NAME, HEADER_NAME):
        assert stat.S_IMODE((shared / name).stat().st_mode) == 0o600
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    replica.Replica.create(empty, "a long enough passphrase", cost=FAST).close()
    assert stat.S_IMODE(empty.stat().st_mode) == 0o700
