"""Private keys at rest: sealed under a passphrase or a key-encryption key.

Rules this module owns:

- A sealed key is a small JSON document (``format: fieldsync-sealed-key/1``)
  holding SecretBox (XSalsa20-Poly1305) ciphertext of the 32-byte seed, the
  public key in clear (so a wrong passphrase and a swapped file are told apart
  after opening), and, for passphrases, the Argon2id salt and cost.
- A passphrase is stretched with Argon2id (libsodium pwhash); the cost is
  stored in the file so it can be raised later without breaking old files.
  :data:`INTERACTIVE` (64 MiB, 2 passes) is the default: opening must stay
  well under a second on a laptop; tests use :data:`FAST`.
- A key-encryption key (the hub's ``FIELDSYNC_KEK``) is used directly as the
  SecretBox key: it is already 32 random bytes.
- Opening never writes. Writing goes to a temporary file in the same folder,
  fsynced, then moved into place (and the folder fsynced), so a crash or a
  failure leaves either the old file or the new one, never a torn one.
  :func:`write_sealed_key` refuses to replace an existing file unless told to.
- A wrong secret raises :class:`WrongPassphrase`; a blob that cannot be read
  as a sealed key raises :class:`DamagedKeyFile`. Poly1305 cannot tell a wrong
  secret from an edited ciphertext, salt or cost, so those also read as
  :class:`WrongPassphrase` ("wrong passphrase, or the sealed key was altered").
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from .encoding import b64d, b64e
from .errors import DamagedKeyFile, KeyFormatError, WrongPassphrase
from .keys import SigningKey

FORMAT = "fieldsync-sealed-key/1"
KEK_BYTES = nacl.secret.SecretBox.KEY_SIZE


@dataclass(frozen=True, slots=True)
class KdfCost:
    """Argon2id cost: passes over memory, and memory in bytes."""

    opslimit: int
    memlimit: int


INTERACTIVE = KdfCost(nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE, nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE)
MODERATE = KdfCost(nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE)
FAST = KdfCost(nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)  # tests only


def derive_key(passphrase: str, salt: bytes, cost: KdfCost = INTERACTIVE) -> bytes:
    """A 32-byte key from a passphrase with Argon2id. The passphrase is NFC-normalized
    first, so "é" typed as one code point or as e + accent gives the same key."""
    text = unicodedata.normalize("NFC", passphrase)
    return nacl.pwhash.argon2id.kdf(
        KEK_BYTES, text.encode("utf-8"), salt, opslimit=cost.opslimit, memlimit=cost.memlimit
    )


def seal_private_key(key: SigningKey, passphrase: str, cost: KdfCost = INTERACTIVE) -> bytes:
    """Seal a private key under a passphrase."""
    if not passphrase:
        raise WrongPassphrase("an empty passphrase cannot seal a key")
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(derive_key(passphrase, salt, cost))
    doc = {
        "format": FORMAT,
        "kdf": {"alg": "argon2id", "salt": b64e(salt), "opslimit": cost.opslimit, "memlimit": cost.memlimit},
        "public_key": key.verify_key.to_text(),
        "box": b64e(bytes(box.encrypt(bytes(key)))),
    }
    return json.dumps(doc, indent=1).encode("utf-8")


def wrap_private_key(key: SigningKey, kek: bytes) -> bytes:
    """Seal a private key under a 32-byte key-encryption key."""
    box = nacl.secret.SecretBox(_check_kek(kek))
    doc = {
        "format": FORMAT,
        "kdf": None,
        "public_key": key.verify_key.to_text(),
        "box": b64e(bytes(box.encrypt(bytes(key)))),
    }
    return json.dumps(doc).encode("utf-8")


def open_private_key(blob: bytes, passphrase: str) -> SigningKey:
    """Open a key sealed with :func:`seal_private_key`."""
    doc = _parse(blob)
    kdf = doc["kdf"]
    if not isinstance(kdf, dict) or kdf.get("alg") != "argon2id":
        raise DamagedKeyFile("this key is not sealed under a passphrase")
    try:
        salt = b64d(kdf["salt"], length=nacl.pwhash.argon2id.SALTBYTES, what="salt")
        cost = KdfCost(int(kdf["opslimit"]), int(kdf["memlimit"]))
        secret = derive_key(passphrase, salt, cost)
    except (KeyError, TypeError, ValueError, KeyFormatError, nacl.exceptions.CryptoError) as exc:
        raise DamagedKeyFile(f"sealed key has unreadable key-derivation settings: {exc}") from None
    return _open_box(doc, secret, "wrong passphrase")


def unwrap_private_key(blob: bytes, kek: bytes) -> SigningKey:
    """Open a key sealed with :func:`wrap_private_key`."""
    doc = _parse(blob)
    if doc["kdf"] is not None:
        raise DamagedKeyFile("this key is sealed under a passphrase, not a key-encryption key")
    return _open_box(doc, _check_kek(kek), "wrong key-encryption key")


def sealed_public_key(blob: bytes) -> str:
    """The public key recorded in a sealed blob, without opening it."""
    return str(_parse(blob)["public_key"])


def write_sealed_key(path: str | os.PathLike[str], blob: bytes, *, overwrite: bool = False) -> None:
    """Atomically write a sealed key file readable only by its owner.

    Without ``overwrite``, an existing file is never replaced, even one created
    by another process a moment before: the new file is linked into place,
    which fails if the name is taken, instead of renamed over it.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; refusing to replace a key file")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise FileExistsError(f"{target} already exists; refusing to replace a key file") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable: fsync the folder that holds the new name."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_sealed_key(path: str | os.PathLike[str], passphrase: str) -> SigningKey:
    """Read and open a passphrase-sealed key file."""
    try:
        blob = Path(path).read_bytes()
    except FileNotFoundError:
        raise DamagedKeyFile(f"no key file at {path}") from None
    return open_private_key(blob, passphrase)


def _check_kek(kek: bytes) -> bytes:
    if not isinstance(kek, (bytes, bytearray)) or len(kek) != KEK_BYTES:
        raise KeyFormatError(f"a key-encryption key is {KEK_BYTES} bytes")
    return bytes(kek)


def _parse(blob: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(blob)
    except (ValueError, UnicodeDecodeError):
        raise DamagedKeyFile("sealed key is not readable JSON (truncated or damaged)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DamagedKeyFile("not a fieldsync sealed key")
    if not all(k in doc for k in ("kdf", "public_key", "box")):
        raise DamagedKeyFile("sealed key is missing parts")
    return doc


def _open_box(doc: dict[str, Any], secret: bytes, wrong: str) -> SigningKey:
    try:
        ciphertext = b64d(doc["box"], what="sealed box")
    except KeyFormatError as exc:
        raise DamagedKeyFile(str(exc)) from None
    if len(ciphertext) != nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES + 32:
        raise DamagedKeyFile("sealed box has the wrong length (truncated or damaged)")
    try:
        seed = nacl.secret.SecretBox(secret).decrypt(ciphertext)
    except nacl.exceptions.CryptoError:
        # Poly1305 cannot tell a wrong key from an edited box; a wrong secret is far likelier.
        raise WrongPassphrase(f"{wrong}, or the sealed key was altered") from None
    key = SigningKey(seed)
    if key.verify_key.to_text() != doc["public_key"]:
        raise DamagedKeyFile("sealed key's public key does not match its private key")
    return key
