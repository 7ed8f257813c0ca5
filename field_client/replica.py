"""The officer's encrypted local replica (SQLCipher 4).

Rules this module owns:

- One :class:`Replica` owns the one SQLCipher connection; every write goes
  through :meth:`Replica.transaction` (``BEGIN IMMEDIATE``, rolled back on any
  error), so an edit, its signature, its local merge and its outbox entry land
  together or not at all.
- The database key is derived from the officer's passphrase with Argon2id
  (libsodium, :data:`crypto.INTERACTIVE`: 64 MiB) and given to SQLCipher as
  a raw key, replacing SQLCipher's own PBKDF2 (256,000 iterations, slower and
  not memory-hard). The salt and cost live in ``replica.json`` beside the
  database; they are not secret.
- ``replica.json`` is read in one place, :func:`unlock`, for opening and for
  ``fieldsync check`` alike: a header of another format, a malformed salt,
  cost or cipher is ReplicaDamaged; a key that fails the header's key check
  is WrongPassphrase, before the database file is touched.
- Nothing readable reaches the disk: the database and its WAL are encrypted by
  SQLCipher, temporary tables and sorts stay in memory (``temp_store=MEMORY``),
  and the device key lives inside the encrypted database.
- Pages of 16 KiB, each authenticated with HMAC-SHA256 (:data:`CIPHER`), fixed
  when the replica is created and named in ``replica.json``; a header that
  names none is a replica made before, opened with SQLCipher 4's defaults
  (4 KiB, HMAC-SHA512). Every page is encrypted (AES-256-CBC) and its MAC
  computed at each commit, and a long pull writes a great many of them: with
  16 KiB pages a change's share of B-tree pages, IVs and MACs is smaller, and
  SHA-256 runs on the CPU's SHA extensions, so a sync costs the laptop less
  CPU (figures: bench/README.md, bench_sync_ab.py). A 32-byte HMAC-SHA256 tag
  is no weaker a page check than a 64-byte SHA-512 one; SHA-1 is never taken.
- SQLCipher's "enhanced memory security" (``cipher_memory_security``: every
  SQLite allocation locked in RAM and wiped when freed) is OFF, SQLCipher's
  own default since 4.5. It multiplies the CPU each row a pull writes costs
  (figures: bench/README.md, bench_sync.py), and it guards only SQLite's
  share of the plaintext:
  the same records live in this Python process as strings and JSON that no
  one wipes or locks. A running laptop's memory and its swap are the
  operating system's to protect (full-disk encryption with encrypted swap,
  docs/security.md), not a pragma's. An agency that wants it all the same
  sets ``FIELDSYNC_REPLICA_MEMORY_SECURITY=on`` and pays that price.
- A wrong passphrase raises :class:`WrongPassphrase` and writes nothing.
- Schema migrations are registered in :data:`MIGRATIONS`, applied in order in
  one transaction each, and recorded in ``user_version``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import nacl.pwhash
import nacl.utils
import sqlcipher3

from crypto import INTERACTIVE, CryptoError, KdfCost, b64d, b64e
from crypto.sealed import derive_key

from . import settings
from .errors import AlreadyEnrolled, NotEnrolled, ReplicaDamaged, ReplicaError, WrongPassphrase

DB_NAME = "replica.db"
HEADER_NAME = "replica.json"
FORMAT = "fieldsync-replica/1"


class Cipher(NamedTuple):
    """How SQLCipher lays out and authenticates the replica's pages (see the module's rules)."""

    page_size: int
    hmac: str


CIPHER = Cipher(16384, "HMAC_SHA256")  # every new replica
SQLCIPHER4_DEFAULTS = Cipher(4096, "HMAC_SHA512")  # a replica whose header names no cipher
_PAGE_SIZES = frozenset(2**n for n in range(9, 17))  # SQLCipher's range: 512 B .. 64 KiB
_HMACS = frozenset(("HMAC_SHA256", "HMAC_SHA512"))

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
        CREATE TABLE records (
            record_id TEXT PRIMARY KEY, collection TEXT NOT NULL, agency TEXT NOT NULL,
            state TEXT NOT NULL, "values" TEXT NOT NULL, withheld TEXT NOT NULL,
            deleted INTEGER NOT NULL, updated_hlc TEXT NOT NULL);
        CREATE INDEX records_collection ON records(collection, agency);
        CREATE TABLE changes (
            change_id TEXT PRIMARY KEY, record_id TEXT NOT NULL, hash TEXT NOT NULL, device TEXT NOT NULL,
            seq INTEGER NOT NULL, wire TEXT NOT NULL, origin TEXT NOT NULL, received_at TEXT NOT NULL);
        CREATE INDEX changes_record ON changes(record_id);
        CREATE TABLE certificates (device_id TEXT PRIMARY KEY, certificate TEXT NOT NULL);
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY, change_id TEXT NOT NULL UNIQUE, record_id TEXT NOT NULL,
            wire TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', reason TEXT, details TEXT,
            updated_at TEXT NOT NULL);
        CREATE INDEX outbox_status ON outbox(status, seq);
        CREATE TABLE conflicts (
            id TEXT PRIMARY KEY, record_id TEXT NOT NULL, collection TEXT NOT NULL, field TEXT NOT NULL,
            winner TEXT NOT NULL, loser TEXT NOT NULL, detected_at TEXT NOT NULL);
        CREATE INDEX conflicts_record ON conflicts(record_id);
        CREATE TABLE double_bookings (
            id TEXT PRIMARY KEY, resource_id TEXT NOT NULL, first TEXT NOT NULL, second TEXT NOT NULL,
            overlap_start TEXT NOT NULL, overlap_end TEXT NOT NULL, detected_at TEXT NOT NULL);
        CREATE TABLE refused (
            id INTEGER PRIMARY KEY AUTOINCREMENT, change_id TEXT, record_id TEXT, wire TEXT NOT NULL,
            reason TEXT NOT NULL, received_at TEXT NOT NULL);
        """,
    ),
]


def _header_path(home: Path) -> Path:
    return home / HEADER_NAME


def _cipher_of(header: dict[str, Any]) -> Cipher:
    """The header's cipher settings; a header without them is SQLCipher 4's defaults.
    Raises ValueError for anything else (the header is damaged)."""
    raw = header.get("cipher")
    if raw is None:
        return SQLCIPHER4_DEFAULTS
    if not isinstance(raw, dict) or raw.keys() != {"page_size", "hmac"}:
        raise ValueError("cipher must be {page_size, hmac}")
    if type(raw["page_size"]) is not int or raw["page_size"] not in _PAGE_SIZES:
        raise ValueError(f"cipher page_size {raw['page_size']!r} is not a power of two from 512 to 65536")
    if type(raw["hmac"]) is not str or raw["hmac"] not in _HMACS:
        raise ValueError(f"cipher hmac {raw['hmac']!r} is not one of {', '.join(sorted(_HMACS))}")
    return Cipher(raw["page_size"], raw["hmac"])


def exists(home: str | os.PathLike[str]) -> bool:
    return (Path(home) / DB_NAME).exists()


def _key_check(key: bytes) -> str:
    """A value in replica.json that tells a wrong passphrase from a damaged file. It gives a
    guesser nothing the encrypted first page (itself HMAC-checked per guess) does not."""
    return hashlib.blake2b(b"fieldsync/v1/key-check", key=key, digest_size=16).hexdigest()


class Unlocked(NamedTuple):
    """What ``replica.json`` and the passphrase give: the raw key, the key check (None in a
    header that has none: then only the first page tells a wrong passphrase) and the cipher."""

    key: bytes
    check: str | None
    cipher: Cipher


def unlock(folder: Path, passphrase: str) -> Unlocked:
    """The one reader of ``replica.json``, for :meth:`Replica.open` and :func:`check` alike:
    the header must be this format's, its salt, cost and cipher well formed, and the key it
    derives must match its key check. Raises NotEnrolled (no replica), ReplicaDamaged (the
    header) or WrongPassphrase; reads nothing but the header and writes nothing."""
    if not exists(folder):
        raise NotEnrolled(f"no replica in {folder}: run `fieldsync enroll` first")
    try:
        header = json.loads(_header_path(folder).read_text())
        salt = b64d(header["salt"], length=nacl.pwhash.argon2id.SALTBYTES, what="salt")
        cost = KdfCost(int(header["opslimit"]), int(header["memlimit"]))
        if header.get("format") != FORMAT:
            raise ValueError("unknown format")
        key = derive_key(passphrase, salt, cost)  # libsodium refuses a cost out of its range
        check = header.get("check")
        cipher = _cipher_of(header)
    except (OSError, ValueError, KeyError, TypeError, CryptoError) as exc:
        raise ReplicaDamaged(f"{_header_path(folder)} is missing or damaged ({exc})") from None
    if isinstance(check, str) and not hmac.compare_digest(check, _key_check(key)):
        raise WrongPassphrase("wrong passphrase")
    return Unlocked(key, check if isinstance(check, str) else None, cipher)


def _damaged(home: Path, what: str) -> str:
    first = " ".join(line.strip("* ") for line in what.strip().splitlines()[:2] if line.strip("* "))[:200]
    return (
        f"the replica file {home / DB_NAME} is damaged ({first}); it was not used and nothing was written. "
        "Keep the folder as it is for recovery, run `fieldsync check` for details and tell your administrator."
    )


def _sidecars(folder: Path) -> set[Path]:
    return {p for p in (folder / f"{DB_NAME}-wal", folder / f"{DB_NAME}-shm") if p.exists()}


def _drop_new_sidecars(folder: Path, before: set[Path]) -> None:
    """After a refused open: remove the empty -wal/-shm files that opening created, so the
    folder is left exactly as it was found (a -wal that holds frames is never touched)."""
    wal = folder / f"{DB_NAME}-wal"
    if wal not in before and wal.exists() and wal.stat().st_size == 0:
        wal.unlink()
        shm = folder / f"{DB_NAME}-shm"
        if shm not in before:
            shm.unlink(missing_ok=True)


def _keyed(conn: sqlcipher3.Connection, key: bytes, cipher: Cipher) -> sqlcipher3.Connection:
    """Every connection the client opens goes through here: the raw key, the replica's page
    size and page MAC (set before the first page is read), and temporary tables
    and sorts kept in memory (never a clear temp file). SQLCipher's enhanced memory security
    is OFF unless configured (:func:`settings.replica_memory_security`), on purpose: see the module's rules."""
    try:
        wipe = settings.replica_memory_security()
    except ReplicaError:
        conn.close()
        raise
    conn.execute("PRAGMA cipher_log_level = NONE")
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    conn.execute(f"PRAGMA cipher_page_size = {int(cipher.page_size)}")
    conn.execute(f"PRAGMA cipher_hmac_algorithm = {cipher.hmac}")  # one of _HMACS: checked by _cipher_of
    conn.execute(f"PRAGMA cipher_memory_security = {wipe}")
    conn.execute("PRAGMA temp_store = MEMORY")  # needs no read of the file: safe before the key is checked
    return conn


def check(home: str | os.PathLike[str], passphrase: str) -> dict[str, Any]:
    """``fieldsync check``: PRAGMA cipher_integrity_check (every page's HMAC) and PRAGMA
    integrity_check (the whole structure), read-only; reports rather than raises on damage.
    Raises NotEnrolled / WrongPassphrase / ReplicaDamaged (header) as :meth:`Replica.open`."""
    folder = Path(home)
    unlocked = unlock(folder, passphrase)
    key, expected, cipher = unlocked.key, unlocked.check, unlocked.cipher
    before = _sidecars(folder)
    conn = _keyed(sqlcipher3.connect(f"file:{folder / DB_NAME}?mode=ro", uri=True, isolation_level=None), key, cipher)
    problems: list[str] = []
    pages = 0
    try:
        try:
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
            problems += [str(row[0]) for row in conn.execute("PRAGMA cipher_integrity_check").fetchall()]
            for (text,) in conn.execute("PRAGMA integrity_check(20)").fetchall():
                problems += [line.strip("* ") for line in str(text).splitlines() if line.strip("* ") not in ("", "ok")]
        except sqlcipher3.DatabaseError as exc:
            if not isinstance(expected, str) and not problems:
                raise WrongPassphrase("wrong passphrase (or the replica file is damaged)") from None
            problems.append(str(exc))
    finally:
        conn.close()
        _drop_new_sidecars(folder, before)
    return {"ok": not problems, "pages": pages, "problems": problems}


class Replica:
    """The encrypted replica in an officer's home folder."""

    def __init__(self, home: Path, conn: sqlcipher3.Connection, key: bytes | None, cipher: Cipher) -> None:
        self.home = home
        self.conn = conn
        self.cipher = cipher  # for clone
        self._key = key  # kept to open another connection (clone) and to key the high-water mark's MAC
        self._depth = 0
        self._after_commit: dict[str, Callable[[], None]] = {}

    # -- opening --------------------------------------------------------------
    @classmethod
    def create(cls, home: str | os.PathLike[str], passphrase: str, *, cost: KdfCost = INTERACTIVE) -> Replica:
        folder = Path(home)
        if exists(folder):
            raise AlreadyEnrolled(f"a replica already exists in {folder}")
        if len(passphrase) < 8:
            raise WrongPassphrase("choose a passphrase of at least 8 characters")
        if not folder.exists() or not any(folder.iterdir()):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)  # a folder of its own: only the officer may list it
        # else a folder that already holds other things (even /tmp, by mistake): its mode is not
        # ours to change; the replica's own files are 0600 whatever the folder's mode
        salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
        key = derive_key(passphrase, salt, cost)
        header = {
            "format": FORMAT,
            "kdf": "argon2id",
            "salt": b64e(salt),
            "opslimit": cost.opslimit,
            "memlimit": cost.memlimit,
            "check": _key_check(key),
            "cipher": CIPHER._asdict(),
        }
        tmp = _header_path(folder).with_suffix(".tmp")
        tmp.write_text(json.dumps(header, indent=1))
        os.chmod(tmp, 0o600)
        os.replace(tmp, _header_path(folder))
        replica = cls._connect(folder, key, CIPHER)
        replica._migrate()
        os.chmod(folder / DB_NAME, 0o600)
        return replica

    @classmethod
    def open(cls, home: str | os.PathLike[str], passphrase: str) -> Replica:
        folder = Path(home)
        unlocked = unlock(folder, passphrase)
        key, check, cipher = unlocked.key, unlocked.check, unlocked.cipher
        before = _sidecars(folder)
        replica = cls._connect(folder, key, cipher)
        try:
            try:
                replica.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlcipher3.DatabaseError as exc:
                replica.conn.close()
                if isinstance(check, str):  # the passphrase is right: the file is not
                    raise ReplicaDamaged(_damaged(folder, f"its first page cannot be read: {exc}")) from None
                raise WrongPassphrase("wrong passphrase (or the replica file is damaged)") from None
            replica._check_integrity()
        except ReplicaError:
            _drop_new_sidecars(folder, before)
            raise
        replica._migrate()
        return replica

    @classmethod
    def _connect(cls, folder: Path, key: bytes, cipher: Cipher) -> Replica:
        conn = sqlcipher3.connect(str(folder / DB_NAME), isolation_level=None, check_same_thread=False, timeout=30)
        replica = cls(folder, _keyed(conn, key, cipher), key, cipher)
        try:
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlcipher3.DatabaseError:
            pass  # wrong key: reported by open()
        return replica

    def _check_integrity(self) -> None:
        try:
            conn = self.conn
            conn.execute("PRAGMA journal_mode = WAL")
            result = conn.execute("PRAGMA quick_check").fetchone()
            cipher = conn.execute("PRAGMA cipher_integrity_check").fetchall()
        except sqlcipher3.DatabaseError as exc:
            self.conn.close()
            raise ReplicaDamaged(_damaged(self.home, str(exc))) from None
        if result[0] != "ok" or cipher:
            self.conn.close()
            raise ReplicaDamaged(_damaged(self.home, result[0] if result[0] != "ok" else cipher[0][0]))

    def _migrate(self) -> None:
        self.conn.execute("PRAGMA journal_mode = WAL")
        current = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for version, script in MIGRATIONS:
            if version <= current:
                continue
            with self.transaction():
                for statement in filter(str.strip, script.split(";")):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {int(version)}")

    def clone(self) -> Replica:
        """Another connection to the same open replica, for another thread (``fieldsync ui``'s sync).

        SQLite connections are not to be shared between threads mid-transaction:
        each thread gets its own, and WAL mode lets readers and the one writer
        of the moment proceed side by side (writers queue on ``BEGIN IMMEDIATE``).
        No second key derivation: the key this replica was opened with is reused.
        """
        if self._key is None:
            raise ReplicaDamaged("this replica was not opened with a key to clone")
        other = type(self)._connect(self.home, self._key, self.cipher)
        other.conn.execute("PRAGMA journal_mode = WAL")
        return other

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlcipher3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error. Nests as one transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self._after_commit.clear()
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0
        hooks, self._after_commit = self._after_commit, {}
        for hook in hooks.values():
            hook()

    def after_commit(self, name: str, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the current transaction has committed (never if it rolls back);
        a later hook of the same ``name`` in the same transaction replaces the earlier one.

        For what must follow a commit and never precede it: the high-water mark
        outside the database (field_client.highwater) is written only after the
        seq it records is durable, so a crash between the two leaves the mark
        behind the replica (fine: it catches up), never ahead (a false alarm).
        Outside a transaction the hook runs at once."""
        if self._depth:
            self._after_commit[name] = hook
        else:
            hook()

    @property
    def mac_key(self) -> bytes:
        """A key for MACs over files kept beside the replica, derived from the replica key
        (so only someone holding the passphrase can make one)."""
        if self._key is None:
            raise ReplicaDamaged("this replica was not opened with a key")
        return hashlib.blake2b(b"fieldsync/v1/replica-mac", key=self._key, digest_size=32).digest()

    # -- meta and secrets (the meta keys' typed accessors: field_client.syncstate) ---------
    def get(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, key: str, value: Any) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def unset(self, key: str) -> None:
        """Remove ``key`` from ``meta``: :meth:`get` gives its default again."""
        with self.transaction():
            self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def secret(self, name: str) -> bytes | None:
        row = self.conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return bytes(row[0]) if row else None

    def set_secret(self, name: str, value: bytes) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO secrets(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
