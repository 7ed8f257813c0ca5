"""Ed25519 key values.

Rules this module owns:

- A key checks its length when it is built and exposes its raw bytes through
  ``bytes(key)``; text forms are unpadded base64url (:mod:`crypto.encoding`).
- Keys compare in constant time and a private key never shows itself in
  ``repr``; ``key_id`` is a short public fingerprint for logs and tables.
"""

from __future__ import annotations

import hmac

from .encoding import b64d, b64e
from .errors import KeyFormatError
from .provider import PUBLIC_KEY_BYTES, SEED_BYTES, get_provider


class VerifyKey:
    """An Ed25519 public key."""

    __slots__ = ("_bytes",)

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != PUBLIC_KEY_BYTES:
            raise KeyFormatError(f"a public key is {PUBLIC_KEY_BYTES} bytes")
        self._bytes = bytes(raw)

    @classmethod
    def from_text(cls, text: str) -> VerifyKey:
        return cls(b64d(text, length=PUBLIC_KEY_BYTES, what="public key"))

    def __bytes__(self) -> bytes:
        return self._bytes

    def to_text(self) -> str:
        return b64e(self._bytes)

    @property
    def key_id(self) -> str:
        """First 16 characters of the base64url SHA-256 of the key."""
        return b64e(get_provider().hash(self._bytes))[:16]

    def verify(self, message: bytes, signature: bytes) -> bytes:
        """Return ``message`` if ``signature`` is valid for it, else raise VerificationError."""
        get_provider().verify(self._bytes, message, signature)
        return message

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifyKey):
            return NotImplemented
        return hmac.compare_digest(self._bytes, other._bytes)

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __repr__(self) -> str:
        return f"VerifyKey({self.key_id})"


class SigningKey:
    """An Ed25519 private key (its 32-byte seed) and its public half."""

    __slots__ = ("_private", "_seed", "verify_key")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != SEED_BYTES:
            raise KeyFormatError(f"a private key seed is {SEED_BYTES} bytes")
        self._seed = bytes(seed)
        self._private, public = get_provider().expand(self._seed)
        self.verify_key = VerifyKey(public)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(get_provider().generate_seed())

    def __bytes__(self) -> bytes:
        return self._seed

    def sign(self, message: bytes) -> bytes:
        """A 64-byte detached signature over ``message``."""
        return get_provider().sign(self._private, message)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigningKey):
            return NotImplemented
        return hmac.compare_digest(self._seed, other._seed)

    def __hash__(self) -> int:
        return hash(self.verify_key)

    def __repr__(self) -> str:
        return f"SigningKey(public={self.verify_key.key_id})"
