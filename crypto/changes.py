"""Signing and verifying changes, with salted field digests.

Rules this module owns:

- A change on the wire is ``{id, collection, record_id, agency, device, seq,
  prev, hlc, base, fields, deleted, signature}``; ``fields`` maps a field name
  to ``{salt, value}``, or to ``{digest}`` when the value is withheld.
- ``digest = SHA-256("fieldsync/v1/field\\0" || salt text || canonical(value))``
  (the salted-digest idea of SD-JWT): the salt keeps a withheld low-entropy
  value such as ``status`` from being guessed from its digest.
- The signature covers the canonical header plus each field's digest, never
  the values themselves, so a change whose fields were reduced to digests
  still verifies, and swapping a value, a salt, a field name, the record id or
  any header byte breaks it.
- ``change_hash`` is the SHA-256 of the signed bytes: what ``prev`` points at
  and what tells two different changes at one (device, seq) apart.
- The signed bytes are made in C (crypto/_speedups.c, when crypto.speedups loads it)
  for a change in the common shape, and in Python (:func:`_reference_signed_bytes`) for
  every other change and whenever another provider is installed: the same bytes either
  way (tests/crypto/test_speedups.py compares them). The C code only ever answers "these
  bytes" or "ask Python"; every refusal and its reason is Python's.
- One optional header key, ``resolution`` = ``{kind, resolves, by}`` (all
  text), is signed with the header when present: a hub-signed resolution names
  what it resolves and the staff member who chose it. Absent, the signed bytes
  are exactly those of a change without it, so every existing signature holds.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from .canonical import _MAX_SAFE_INT, DOMAINS, canonical, signing_bytes
from .encoding import b64d, b64e
from .errors import CanonicalError, KeyFormatError, VerificationError
from .keys import SigningKey, VerifyKey
from .provider import HASH_BYTES, SIGNATURE_BYTES, NaclProvider, get_provider
from .speedups import compiled as _speedups

SALT_BYTES = 16
SALT_CHARS = 22  # 16 random bytes in unpadded base64url
_SALT = re.compile(r"\A[A-Za-z0-9_-]{22}\Z")
HEADER = ("id", "collection", "record_id", "agency", "device", "seq", "prev", "hlc", "base", "deleted")
_FIELD_PREFIX = DOMAINS["field"]
_CHANGE_PREFIX = DOMAINS["change"]


class VerifiedChange(NamedTuple):
    """A change whose signature verified, and its hash."""

    change: dict[str, Any]
    hash: str


def new_salt() -> str:
    return b64e(get_provider().generate_seed()[:SALT_BYTES])


def field_digest(salt: str, value: Any) -> str:
    """The salted digest of one field value.

    As in SD-JWT, the salt is hashed in its text form: it has a fixed length,
    so no separator is needed, and any edit to it changes the digest.
    """
    if type(salt) is not str or not _SALT.match(salt):
        raise KeyFormatError(f"a field salt is {SALT_CHARS} base64url characters")
    return b64e(get_provider().hash(_FIELD_PREFIX + salt.encode("ascii") + canonical(value)))


def _digests(fields: Any) -> dict[str, str]:
    if type(fields) is not dict:
        raise VerificationError("fields must be an object")
    out = {}
    hash_ = get_provider().hash
    for name, entry in fields.items():
        if type(name) is not str:
            raise VerificationError("field names must be text")
        if type(entry) is not dict:
            raise VerificationError(f"field {name!r} must be an object")
        if len(entry) == 2 and "salt" in entry and "value" in entry:
            salt = entry["salt"]
            if type(salt) is not str or not _SALT.match(salt):
                raise VerificationError(f"salt of field {name!r} is not {SALT_CHARS} base64url characters")
            out[name] = b64e(hash_(_FIELD_PREFIX + salt.encode("ascii") + canonical(entry["value"])))
        elif len(entry) == 1 and "digest" in entry:
            b64d(entry["digest"], length=HASH_BYTES, what=f"digest of {name!r}")
            out[name] = entry["digest"]
        else:
            raise VerificationError(f"field {name!r} must be {{salt, value}} or {{digest}}")
    return out


_TEXT_KEYS = ("id", "collection", "record_id", "agency", "device", "hlc")
RESOLUTION = "resolution"
RESOLUTION_KEYS = frozenset(("kind", "resolves", "by"))
_KNOWN_KEYS = frozenset((*HEADER, RESOLUTION, "fields", "signature"))


def _check_header(change: dict[str, Any]) -> None:
    """Exact JSON types: under RFC 8785 ``42`` and ``42.0`` (or ``1`` and ``1.0``)
    give the same bytes, so a type that is not checked could be changed without
    breaking the signature. And nothing unsigned may ride along."""
    if not change.keys() <= _KNOWN_KEYS:
        raise VerificationError(f"change carries unsigned keys: {', '.join(sorted(change.keys() - _KNOWN_KEYS))}")
    for key in _TEXT_KEYS:
        if type(change[key]) is not str:
            raise VerificationError(f"{key} must be text")
    if type(change["seq"]) is not int:
        raise VerificationError("seq must be a whole number")
    if not -_MAX_SAFE_INT <= change["seq"] <= _MAX_SAFE_INT:  # RFC 8785 has no bytes for it (crypto.canonical)
        raise VerificationError("seq is beyond the exact range of JSON numbers (2**53 - 1)")
    if type(change["deleted"]) is not bool:
        raise VerificationError("deleted must be true or false")
    if change["prev"] is not None and type(change["prev"]) is not str:
        raise VerificationError("prev must be text or null")
    base = change["base"]
    if type(base) is not dict or not all(v is None or type(v) is str for v in base.values()):
        raise VerificationError("base must map field names to clock text or null")
    if not all(type(k) is str for k in base):
        raise VerificationError("base names fields with text only")
    if RESOLUTION in change:
        resolution = change[RESOLUTION]
        if (
            type(resolution) is not dict
            or resolution.keys() != RESOLUTION_KEYS
            or not all(type(v) is str and v for v in resolution.values())
        ):
            raise VerificationError("resolution must be {kind, resolves, by}, each non-empty text")


def _signed_bytes(change: dict[str, Any]) -> bytes:
    """The bytes a change's signature covers: from crypto._speedups when it is built, the
    active provider is the default one and the change is in the common shape, else from
    :func:`_reference_signed_bytes` (the same bytes, or the reason the change is refused)."""
    if _speedups is not None and type(get_provider()) is NaclProvider:
        message: bytes | None = _speedups.signed_bytes(change, _CHANGE_PREFIX, _FIELD_PREFIX)
        if message is not None:
            return message
    return _reference_signed_bytes(change)


def _reference_signed_bytes(change: dict[str, Any]) -> bytes:
    """:func:`_signed_bytes` in Python: every change, every check, and the reason for a refusal."""
    try:
        payload = {key: change[key] for key in HEADER}
    except KeyError as exc:
        raise VerificationError(f"change has no {exc.args[0]!r}") from None
    _check_header(change)
    if RESOLUTION in change:
        payload[RESOLUTION] = change[RESOLUTION]
    payload["fields"] = digests = _digests(change.get("fields"))
    # every header value's type was checked above and digests are base64url text: with
    # ASCII field names (always, for fieldsync's schemas) the payload is plain and its
    # canonical bytes need no second scan; other names take the full JCS path
    plain = all(map(str.isascii, digests)) and all(map(str.isascii, change["base"]))
    return signing_bytes("change", payload, plain=plain)


def change_hash(change: dict[str, Any]) -> str:
    """The hash ``prev`` refers to: SHA-256 of the change's signed bytes."""
    return b64e(get_provider().hash(_signed_bytes(change)))


def sign_change(change: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """Return a copy of ``change`` with its signature (any old one is replaced)."""
    unsigned = {k: v for k, v in change.items() if k != "signature"}
    try:
        message = _signed_bytes(unsigned)
    except VerificationError as exc:
        raise CanonicalError(f"cannot sign this change: {exc.reason}") from None
    unsigned["signature"] = b64e(key.sign(message))
    return unsigned


def verify_change(change: dict[str, Any], key: VerifyKey) -> VerifiedChange:
    """Return the change and its hash if its signature verifies under ``key``."""
    provider = get_provider()
    try:
        if type(change) is not dict:
            raise VerificationError("a change must be an object")
        message = _signed_bytes(change)
        signature = b64d(change.get("signature", ""), length=SIGNATURE_BYTES, what="signature")
        provider.verify(bytes(key), message, signature)
    except (KeyFormatError, CanonicalError) as exc:
        raise VerificationError(str(exc), subject=_subject(change)) from None
    except VerificationError as exc:
        raise VerificationError(exc.reason, subject=_subject(change)) from None
    return VerifiedChange(change, b64e(provider.hash(message)))


def _subject(change: Any) -> str:
    return f"change {change.get('id')!r}" if isinstance(change, dict) else "change"


def withhold(change: dict[str, Any], names: set[str] | frozenset[str]) -> dict[str, Any]:
    """A copy of ``change`` with the named fields reduced to their digests."""
    fields = {}
    for name, entry in change["fields"].items():
        if name in names and "digest" not in entry:
            fields[name] = {"digest": field_digest(entry["salt"], entry["value"])}
        else:
            fields[name] = entry
    return {**change, "fields": fields}
