"""Exceptions raised by fieldsync's crypto package.

One root, specific leaves, each carrying a reason a person can read::

    CryptoError
    ├── KeyFormatError        bytes that cannot be a key, a signature or a digest
    ├── SealedKeyError        a sealed private key that cannot be opened
    │   ├── WrongPassphrase   the passphrase (or key-encryption key) is wrong
    │   └── DamagedKeyFile    the sealed blob is truncated, edited or not ours
    ├── CanonicalError        a value that has no canonical encoding (NaN, bytes, ...)
    └── VerificationError     a signature, certificate or registry entry does not verify

Every ``verify_*`` function returns the verified payload or raises
:class:`VerificationError`; none of them returns a bool.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Root of every error raised by :mod:`crypto`."""


class KeyFormatError(CryptoError):
    """Bytes or text that cannot be decoded into a key, signature or digest."""


class CanonicalError(CryptoError):
    """A value that cannot be canonically encoded."""


class SealedKeyError(CryptoError):
    """A sealed private key could not be opened."""


class WrongPassphrase(SealedKeyError):
    """The passphrase or key-encryption key does not open the sealed key."""


class DamagedKeyFile(SealedKeyError):
    """The sealed key is truncated, edited, or not a fieldsync sealed key."""


class VerificationError(CryptoError):
    """Something signed did not verify.

    ``reason`` is a sentence for a person ("signature does not match",
    "certificate expired at 2026-11-01T00:00:00Z"); ``subject`` names what was
    being verified (a change id, a device id, a registry entry index).
    """

    def __init__(self, reason: str, *, subject: str | None = None) -> None:
        self.reason = reason
        self.subject = subject
        super().__init__(f"{subject}: {reason}" if subject else reason)
