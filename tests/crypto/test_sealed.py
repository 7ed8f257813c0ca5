"""crypto.sealed: private keys at rest under a passphrase or a key-encryption key."""

from __future__ import annotations

import base64
import inspect
import json
import os
import stat
from pathlib import Path

import nacl.pwhash
import pytest

import crypto.sealed
from crypto import (
    FAST,
    INTERACTIVE,
    DamagedKeyFile,
    KdfCost,
    KeyFormatError,
    SealedKeyError,
    SigningKey,
    WrongPassphrase,
    b64e,
    open_private_key,
    read_sealed_key,
    seal_private_key,
    sealed_public_key,
    unwrap_private_key,
    wrap_private_key,
    write_sealed_key,
)

from .helpers import seed

KEY = SigningKey(seed(0x5E))
OTHER = SigningKey(seed(0x5F))
PASSPHRASE = "correct horse battery staple"
KEK = bytes(range(32))
OLD_MTIME_NS = 1_000_000_000 * 10**9  # 2001-09-09: anything rewritten would get "now"


@pytest.fixture(scope="module")
def sealed() -> bytes:
    return seal_private_key(KEY, PASSPHRASE, FAST)


@pytest.fixture(scope="module")
def wrapped() -> bytes:
    return wrap_private_key(KEY, KEK)


def _edit(blob: bytes, **changes: object) -> bytes:
    doc = json.loads(blob)
    for name, value in changes.items():
        if value is _DROP:
            del doc[name]
        else:
            doc[name] = value
    return json.dumps(doc).encode()


def _edit_kdf(blob: bytes, **changes: object) -> bytes:
    doc = json.loads(blob)
    doc["kdf"].update(changes)
    return json.dumps(doc).encode()


_DROP = object()


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns, stat.S_IMODE(p.stat().st_mode)) for p in folder.iterdir()}


# -- passphrase sealing ----------------------------------------------------------------
def test_round_trip(sealed: bytes) -> None:
    opened = open_private_key(sealed, PASSPHRASE)
    assert opened == KEY
    assert opened.verify_key == KEY.verify_key


@pytest.mark.parametrize("passphrase", ["pässwörd 🔑", "x", " leading and trailing ", "a" * 1000])
def test_round_trip_any_passphrase(passphrase: str) -> None:
    assert open_private_key(seal_private_key(KEY, passphrase, FAST), passphrase) == KEY


def test_default_cost_is_interactive() -> None:
    assert inspect.signature(seal_private_key).parameters["cost"].default == INTERACTIVE


def test_cost_is_stored_so_it_can_change_without_breaking_old_files(sealed: bytes) -> None:
    stronger = KdfCost(FAST.opslimit + 1, FAST.memlimit * 2)
    newer = seal_private_key(KEY, PASSPHRASE, stronger)
    assert json.loads(sealed)["kdf"]["opslimit"] == FAST.opslimit
    assert json.loads(newer)["kdf"]["memlimit"] == FAST.memlimit * 2
    assert open_private_key(sealed, PASSPHRASE) == open_private_key(newer, PASSPHRASE) == KEY


def test_sealed_blob_does_not_hold_the_seed_in_clear(sealed: bytes, wrapped: bytes) -> None:
    raw = bytes(KEY)
    for blob in (sealed, wrapped):
        for form in (raw.hex(), b64e(raw), base64.b64encode(raw).decode().rstrip("=")):
            assert form.encode() not in blob
        assert raw not in blob


def test_each_seal_uses_fresh_salt_and_nonce() -> None:
    a, b = (json.loads(seal_private_key(KEY, PASSPHRASE, FAST)) for _ in range(2))
    assert a["kdf"]["salt"] != b["kdf"]["salt"]
    assert a["box"] != b["box"]


def test_public_key_readable_without_opening(sealed: bytes, wrapped: bytes) -> None:
    assert sealed_public_key(sealed) == KEY.verify_key.to_text()
    assert sealed_public_key(wrapped) == KEY.verify_key.to_text()


def test_empty_passphrase_refused() -> None:
    with pytest.raises(WrongPassphrase):
        seal_private_key(KEY, "", FAST)


@pytest.mark.parametrize("wrong", ["Correct horse battery staple", PASSPHRASE + " ", "", "correct horse"])
def test_wrong_passphrase(sealed: bytes, wrong: str) -> None:
    with pytest.raises(WrongPassphrase):
        open_private_key(sealed, wrong)


def test_wrong_passphrase_is_a_sealed_key_error_and_a_crypto_error(sealed: bytes) -> None:
    with pytest.raises(crypto.CryptoError):
        open_private_key(sealed, "nope")
    with pytest.raises(SealedKeyError):
        open_private_key(sealed, "nope")


def test_every_truncation_is_damage(sealed: bytes) -> None:
    not_damage = []
    for end in range(len(sealed)):
        try:
            open_private_key(sealed[:end], PASSPHRASE)
        except DamagedKeyFile:
            continue
        except Exception as exc:  # collected and reported below
            not_damage.append((end, repr(exc)))
        else:
            not_damage.append((end, "opened"))
    assert not_damage == []


def _box_shortened(blob: bytes) -> bytes:
    box = json.loads(blob)["box"]
    return _edit(blob, box=box[:-4])


def _box_lengthened(blob: bytes) -> bytes:
    box = json.loads(blob)["box"]
    return _edit(blob, box=box + "AAAA")


DAMAGE = {
    "not-json": lambda b: b"this is not a key file",
    "not-utf8": lambda b: b"\xff\xfe\x00\x01",
    "empty": lambda b: b"",
    "json-list": lambda b: b"[1, 2, 3]",
    "json-string": lambda b: b'"fieldsync-sealed-key/1"',
    "format-tag-v2": lambda b: _edit(b, format="fieldsync-sealed-key/2"),
    "format-tag-other": lambda b: _edit(b, format="openssh-private-key"),
    "format-missing": lambda b: _edit(b, format=_DROP),
    "kdf-missing": lambda b: _edit(b, kdf=_DROP),
    "public-key-missing": lambda b: _edit(b, public_key=_DROP),
    "box-missing": lambda b: _edit(b, box=_DROP),
    "public-key-swapped": lambda b: _edit(b, public_key=OTHER.verify_key.to_text()),
    "box-not-base64url": lambda b: _edit(b, box="not base64!"),
    "box-not-text": lambda b: _edit(b, box=12345),
    "box-shortened": _box_shortened,
    "box-lengthened": _box_lengthened,
    "box-empty": lambda b: _edit(b, box=""),
}
PASSPHRASE_DAMAGE = {
    "kdf-not-object": lambda b: _edit(b, kdf="argon2id"),
    "kdf-null": lambda b: _edit(b, kdf=None),
    "kdf-alg-scrypt": lambda b: _edit_kdf(b, alg="scrypt"),
    "kdf-salt-short": lambda b: _edit_kdf(b, salt=b64e(b"\x00" * 8)),
    "kdf-salt-not-base64url": lambda b: _edit_kdf(b, salt="!!!!"),
    "kdf-salt-missing": lambda b: {**json.loads(b), "kdf": {"alg": "argon2id", "opslimit": 1, "memlimit": 8192}},
    "kdf-opslimit-text": lambda b: _edit_kdf(b, opslimit="many"),
    "kdf-memlimit-null": lambda b: _edit_kdf(b, memlimit=None),
    "kdf-opslimit-zero": lambda b: _edit_kdf(b, opslimit=0),
}


def _as_bytes(blob: object) -> bytes:
    return blob if isinstance(blob, bytes) else json.dumps(blob).encode()


@pytest.mark.parametrize("damage", sorted({**DAMAGE, **PASSPHRASE_DAMAGE}))
def test_damaged_passphrase_blob(sealed: bytes, damage: str) -> None:
    blob = _as_bytes({**DAMAGE, **PASSPHRASE_DAMAGE}[damage](sealed))
    with pytest.raises(DamagedKeyFile):
        open_private_key(blob, PASSPHRASE)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_wrapped_blob(wrapped: bytes, damage: str) -> None:
    blob = _as_bytes(DAMAGE[damage](wrapped))
    with pytest.raises(DamagedKeyFile):
        unwrap_private_key(blob, KEK)


def test_edited_ciphertext_does_not_open(sealed: bytes) -> None:
    # Poly1305 cannot tell an edited box from a wrong passphrase, so this may be
    # reported as either; what matters is that no key comes out.
    raw = base64.urlsafe_b64decode(json.loads(sealed)["box"] + "==")
    for i in (0, 23, 24, 40, len(raw) - 1):  # nonce, MAC and ciphertext bytes
        edited = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        with pytest.raises(SealedKeyError):
            open_private_key(_edit(sealed, box=b64e(edited)), PASSPHRASE)


def test_edited_salt_or_cost_does_not_open(sealed: bytes) -> None:
    for blob in (
        _edit_kdf(sealed, salt=b64e(b"\x00" * nacl.pwhash.argon2id.SALTBYTES)),
        _edit_kdf(sealed, opslimit=FAST.opslimit + 1),
    ):
        with pytest.raises(SealedKeyError):
            open_private_key(blob, PASSPHRASE)


# -- key-encryption key ------------------------------------------------------------------
def test_wrap_round_trip(wrapped: bytes) -> None:
    assert unwrap_private_key(wrapped, KEK) == KEY
    assert unwrap_private_key(wrapped, bytearray(KEK)) == KEY


def test_wrong_kek(wrapped: bytes) -> None:
    with pytest.raises(WrongPassphrase):
        unwrap_private_key(wrapped, bytes(32))
    with pytest.raises(WrongPassphrase):
        unwrap_private_key(wrapped, KEK[::-1])


@pytest.mark.parametrize("kek", [b"", bytes(16), bytes(31), bytes(33), "k" * 32, None])
def test_kek_must_be_32_bytes(wrapped: bytes, kek: object) -> None:
    with pytest.raises(KeyFormatError):
        wrap_private_key(KEY, kek)  # type: ignore[arg-type]
    with pytest.raises(KeyFormatError):
        unwrap_private_key(wrapped, kek)  # type: ignore[arg-type]


def test_passphrase_blob_given_to_unwrap_is_damage(sealed: bytes) -> None:
    with pytest.raises(DamagedKeyFile):
        unwrap_private_key(sealed, KEK)


def test_wrapped_blob_given_to_open_is_damage(wrapped: bytes) -> None:
    with pytest.raises(DamagedKeyFile):
        open_private_key(wrapped, PASSPHRASE)


# -- files -------------------------------------------------------------------------------
def test_write_then_read(tmp_path: Path, sealed: bytes) -> None:
    path = tmp_path / "device.key"
    write_sealed_key(path, sealed)
    assert path.read_bytes() == sealed
    assert read_sealed_key(path, PASSPHRASE) == KEY
    assert read_sealed_key(str(path), PASSPHRASE) == KEY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device.key"]  # no temp files left


def test_written_file_is_owner_only_whatever_the_umask(tmp_path: Path, sealed: bytes) -> None:
    old = os.umask(0)
    try:
        write_sealed_key(tmp_path / "a.key", sealed)
        (tmp_path / "b.key").write_bytes(b"old")
        (tmp_path / "b.key").chmod(0o644)
        write_sealed_key(tmp_path / "b.key", sealed, overwrite=True)
    finally:
        os.umask(old)
    for name in ("a.key", "b.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_refuses_to_replace_existing_file(tmp_path: Path, sealed: bytes) -> None:
    path = tmp_path / "agency.key"
    path.write_bytes(b"the only copy of another key")
    before = _snapshot(tmp_path)
    with pytest.raises(FileExistsError):
        write_sealed_key(path, sealed)
    assert _snapshot(tmp_path) == before


def test_overwrite_replaces(tmp_path: Path, sealed: bytes) -> None:
    path = tmp_path / "agency.key"
    write_sealed_key(path, seal_private_key(OTHER, PASSPHRASE, FAST))
    write_sealed_key(path, sealed, overwrite=True)
    assert read_sealed_key(path, PASSPHRASE) == KEY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agency.key"]


def test_failed_write_leaves_no_temp_file(tmp_path: Path, sealed: bytes) -> None:
    target = tmp_path / "in-the-way"
    target.mkdir()
    with pytest.raises(OSError):
        write_sealed_key(target, sealed, overwrite=True)  # a directory cannot be replaced by a file
    assert [p.name for p in tmp_path.iterdir()] == ["in-the-way"]
    assert target.is_dir()


def test_refusal_holds_when_the_file_appears_during_the_write(
    tmp_path: Path, sealed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process creates the key file while write_sealed_key is busy (simulated at
    its fsync). Exactly one writer may win; the loser must be told, never overwritten."""
    path = tmp_path / "device.key"
    theirs = b"key written by a concurrent enrollment"
    real_fsync = os.fsync
    other = {"tried": False, "won": False}

    def another_writer(fd: int) -> None:
        real_fsync(fd)
        if other["tried"]:
            return
        other["tried"] = True
        try:
            their_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return  # we got there first: the other writer is refused
        with os.fdopen(their_fd, "wb") as fh:
            fh.write(theirs)
        other["won"] = True

    monkeypatch.setattr(crypto.sealed.os, "fsync", another_writer)
    try:
        write_sealed_key(path, sealed)
        refused = False
    except FileExistsError:
        refused = True
    assert other["tried"]
    if other["won"]:
        assert (refused, path.read_bytes()) == (True, theirs)
    else:
        assert (refused, path.read_bytes()) == (False, sealed)


def test_missing_file_is_damage(tmp_path: Path) -> None:
    with pytest.raises(DamagedKeyFile):
        read_sealed_key(tmp_path / "absent.key", PASSPHRASE)


def _read_fails_without_writing(folder: Path, path: Path, passphrase: str, error: type[Exception]) -> None:
    os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    before = _snapshot(folder)
    with pytest.raises(error):
        read_sealed_key(path, passphrase)
    assert _snapshot(folder) == before
    assert path.stat().st_mtime_ns == OLD_MTIME_NS


def test_wrong_passphrase_writes_nothing(tmp_path: Path, sealed: bytes) -> None:
    path = tmp_path / "device.key"
    write_sealed_key(path, sealed)
    _read_fails_without_writing(tmp_path, path, "wrong", WrongPassphrase)


@pytest.mark.parametrize("damage", ["truncated", "edited-json", "format-tag", "public-key-swapped", "wrapped"])
def test_damaged_file_writes_nothing(tmp_path: Path, sealed: bytes, wrapped: bytes, damage: str) -> None:
    blob = {
        "truncated": sealed[: len(sealed) // 2],
        "edited-json": sealed.replace(b'"box"', b'"b0x"'),
        "format-tag": DAMAGE["format-tag-v2"](sealed),
        "public-key-swapped": DAMAGE["public-key-swapped"](sealed),
        "wrapped": wrapped,
    }[damage]
    path = tmp_path / "device.key"
    write_sealed_key(path, blob)
    _read_fails_without_writing(tmp_path, path, PASSPHRASE, DamagedKeyFile)
