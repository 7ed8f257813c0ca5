"""Binary-to-text encoding for keys, signatures, salts and digests.

Rules this module owns:

- Every binary value that travels in JSON is unpadded base64url (RFC 4648 §5).
- Decoding is strict: padding, whitespace, or characters outside the alphabet
  are refused, so one value has exactly one text form (a signature cannot be
  "changed" by re-encoding it), and an expected length is checked when given.
"""

from __future__ import annotations

import binascii

from .errors import KeyFormatError

_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_CANONICAL_LAST = {2: frozenset(_ALPHABET[::16]), 3: frozenset(_ALPHABET[::4])}


def b64e(data: bytes) -> str:
    """Encode bytes as unpadded base64url text."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


def b64d(text: str, *, length: int | None = None, what: str = "value") -> bytes:
    """Decode unpadded base64url text, refusing any non-canonical form."""
    if type(text) is not str or not text.isascii() or "+" in text or "/" in text or "=" in text or len(text) % 4 == 1:
        raise KeyFormatError(f"{what} is not unpadded base64url text")
    try:
        data = binascii.a2b_base64(
            text.encode("ascii").translate(_TO_STANDARD) + b"=" * (-len(text) % 4), strict_mode=True
        )
    except binascii.Error:
        raise KeyFormatError(f"{what} is not unpadded base64url text") from None
    tail = len(text) % 4  # 2 or 3 characters in the last group leave 4 or 2 bits unused
    if tail and text[-1] not in _CANONICAL_LAST[tail]:  # unused bits set: a second spelling
        raise KeyFormatError(f"{what} is not in canonical base64url form")
    if length is not None and len(data) != length:
        raise KeyFormatError(f"{what} must be {length} bytes, got {len(data)}")
    return data
