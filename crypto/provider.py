"""The one small interface behind every signature and hash fieldsync makes.

Rules this module owns:

- Callers never touch PyNaCl: they use :class:`SigningKey` / :class:`VerifyKey`
  (crypto.keys) and the recipes, which call the active :class:`Provider`.
  A FIPS-validated implementation can replace :class:`NaclProvider` by
  implementing these five methods and calling :func:`set_provider` at start-up;
  the known-answer vectors in tests/data/ check any replacement.
- Signatures are Ed25519 (RFC 8032, pure, no pre-hash); hashes are SHA-256.
  Both are FIPS 186-5 / 180-4 approved algorithms.
- ``verify`` raises :class:`VerificationError`; it never returns a bool.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import nacl.bindings
import nacl.exceptions

from .errors import KeyFormatError, VerificationError

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
HASH_BYTES = 32


class Provider(Protocol):
    """What a signature provider must offer. Private keys are opaque bytes to callers."""

    name: str

    def generate_seed(self) -> bytes:
        """A fresh 32-byte private seed from a CSPRNG."""

    def expand(self, seed: bytes) -> tuple[bytes, bytes]:
        """(private handle used by ``sign``, 32-byte public key) for a seed."""

    def sign(self, private: bytes, message: bytes) -> bytes:
        """A 64-byte detached signature."""

    def verify(self, public: bytes, message: bytes, signature: bytes) -> None:
        """Return if ``signature`` is valid, else raise VerificationError."""

    def hash(self, data: bytes) -> bytes:
        """SHA-256 of data."""


class NaclProvider:
    """Ed25519 from libsodium through PyNaCl's low-level bindings."""

    name = "libsodium"

    def generate_seed(self) -> bytes:
        return nacl.bindings.randombytes(SEED_BYTES)

    def expand(self, seed: bytes) -> tuple[bytes, bytes]:
        if len(seed) != SEED_BYTES:
            raise KeyFormatError(f"a private key seed is {SEED_BYTES} bytes, got {len(seed)}")
        public, secret = nacl.bindings.crypto_sign_seed_keypair(seed)
        return secret, public

    def sign(self, private: bytes, message: bytes) -> bytes:
        return nacl.bindings.crypto_sign(message, private)[:SIGNATURE_BYTES]

    def verify(self, public: bytes, message: bytes, signature: bytes) -> None:
        if len(signature) != SIGNATURE_BYTES:
            raise VerificationError(f"a signature is {SIGNATURE_BYTES} bytes, got {len(signature)}")
        try:
            nacl.bindings.crypto_sign_open(signature + message, public)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            raise VerificationError("signature does not match the signed content") from None

    def hash(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()


_active: Provider = NaclProvider()


def get_provider() -> Provider:
    """The provider every recipe uses."""
    return _active


def set_provider(provider: Provider) -> Provider:
    """Install another provider (e.g. a FIPS module); returns the previous one."""
    global _active
    previous, _active = _active, provider
    return previous
