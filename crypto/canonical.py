"""The one canonical encoding used for everything fieldsync signs or digests.

Rules this module owns:

- ``canonical(obj)`` is the JSON Canonicalization Scheme (RFC 8785): object keys
  sorted by their UTF-16 code units, no insignificant white space, strings
  escaped as ECMAScript's JSON.stringify does, numbers in ECMAScript's
  shortest round-trip form (``1.0`` -> ``1``, ``1e-7`` -> ``1e-7``), UTF-8 out.
- Only JSON values are accepted: dict (str keys), list/tuple, str, int, float,
  bool, None. NaN, infinities, integers outside IEEE-754's exact range, bytes
  or any other type raise :class:`CanonicalError` instead of being guessed at.
- ``signing_bytes(kind, obj)`` prefixes the encoding with a domain separator
  per kind of signed object, so a signature over a change can never pass as a
  certificate, registry entry, checkpoint or request signature, and the other
  way round; ``audit`` separates the hub's audit-log chain hashes. The set of
  kinds is closed: :data:`DOMAINS`.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import orjson

from .errors import CanonicalError

#: Every kind of object fieldsync signs or digests, and its domain separator.
DOMAINS: dict[str, bytes] = {
    kind: b"fieldsync/v1/" + kind.encode("ascii") + b"\x00"
    for kind in ("change", "field", "certificate", "registry", "checkpoint", "request", "audit")
}

_MAX_SAFE_INT = 2**53 - 1
_encode_str = json.encoder.encode_basestring


def _number(value: float) -> str:
    """Format a finite float as ECMAScript's Number::toString (ECMA-262 7.1.12.1)."""
    if value == 0:
        return "0"
    # repr() gives the shortest digits that round-trip, as ECMAScript requires.
    _, digit_tuple, exp = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exp = int(exp) + (len(digit_tuple) - len(digits))
    k = len(digits)
    n = exp + k  # the decimal point sits n digits from the left of `digits`
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-") + str(abs(e))
    return ("-" if value < 0 else "") + text


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _encode(obj: Any, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append(_encode_str(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        if not -_MAX_SAFE_INT <= obj <= _MAX_SAFE_INT:
            raise CanonicalError(f"integer {obj} is outside the exact range of JSON numbers")
        out.append(str(obj))
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise CanonicalError(f"{obj!r} has no JSON encoding")
        out.append(_number(obj))
    elif isinstance(obj, dict):
        keys = list(obj)
        for key in keys:
            if not isinstance(key, str):
                raise CanonicalError(f"object key {key!r} is not a string")
        if not all(k.isascii() for k in keys):
            keys.sort(key=_utf16_key)
        else:
            keys.sort()
        out.append("{")
        first = True
        for key in keys:
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(key))
            out.append(":")
            _encode(obj[key], out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, item in enumerate(obj):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise CanonicalError(f"{type(obj).__name__} is not a JSON value")


_SCALARS = frozenset({str, bool, type(None)})


def _plain(obj: Any) -> bool:
    """True when ``obj`` holds no float, no unsafe integer and no non-ASCII key, so
    that the C encoder with sorted keys gives exactly the JCS bytes (strings
    escape the same way; ASCII keys sort the same by code point as by UTF-16)."""
    kind = type(obj)
    if kind in _SCALARS:
        return True
    if kind is int:
        return bool(-_MAX_SAFE_INT <= obj <= _MAX_SAFE_INT)
    if kind is dict:
        try:
            if not all(map(str.isascii, obj)):
                return False
        except TypeError:  # a key that is not a str
            return False
        values = obj.values()
    elif kind is list or kind is tuple:
        values = obj
    else:
        return False
    if set(map(type, values)) <= _SCALARS:  # the common case, checked at C speed
        return True
    return all(type(v) in _SCALARS or _plain(v) for v in values)


_c_encoder = json.encoder.c_make_encoder  # type: ignore[attr-defined]
if _c_encoder is not None:  # CPython: the C encoder, sorted keys, no indent, no NaN
    _c_fast = _c_encoder(None, None, _encode_str, None, ":", ",", True, False, False)

    def _fast(obj: Any) -> str:
        return "".join(_c_fast(obj, 0))

else:  # pragma: no cover - other interpreters
    _fast = json.JSONEncoder(  # type: ignore[assignment]
        ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
    ).encode

# sorted keys; and a dataclass, datetime or subclass of a JSON type (which orjson would
# otherwise write its own way) raises and goes to the C encoder, should a caller of
# canonical_plain ever break its promise. (An Enum or a UUID orjson writes all the same:
# canonical() never sends one here, _plain admits exact JSON types only.)
_SORTED = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _plain_bytes(obj: Any) -> bytes:
    """The JCS bytes of a plain value (see :func:`_plain`). orjson with sorted keys first: on
    plain values it writes the same bytes (strings escaped alike: only ``"``, ``\\`` and
    U+0000-U+001F, in the short forms where there are some, else ``\\u00xx`` in lower case;
    everything else as UTF-8), at a fraction of the C encoder's cost, and a change's
    signed bytes are made at every verification. What orjson refuses (a lone surrogate, nesting
    deeper than its limit) goes to the standard library's C encoder, which raises or agrees."""
    try:
        return orjson.dumps(obj, option=_SORTED)
    except orjson.JSONEncodeError:
        pass
    try:
        return _fast(obj).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError("string holds a lone surrogate, which is not valid UTF-8") from exc


def canonical(obj: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of a JSON value."""
    if type(obj) is str:
        try:
            return _encode_str(obj).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CanonicalError("string holds a lone surrogate, which is not valid UTF-8") from exc
    if type(obj) is int and -_MAX_SAFE_INT <= obj <= _MAX_SAFE_INT:
        return str(obj).encode("ascii")
    if _plain(obj):
        return _plain_bytes(obj)
    out: list[str] = []
    _encode(obj, out)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError("string holds a lone surrogate, which is not valid UTF-8") from exc


def canonical_plain(obj: Any) -> bytes:
    """:func:`canonical` for a value its caller has already checked is plain (no
    float, no integer beyond 2**53-1, only ASCII object keys): the same bytes,
    without scanning the value again. Only the change hot path uses it, right
    after crypto.changes has checked every type; tests check it equals
    :func:`canonical` on every plain value."""
    return _plain_bytes(obj)


def signing_bytes(kind: str, obj: Any, *, plain: bool = False) -> bytes:
    """The exact bytes signed for an object of the given kind (``plain``: the caller
    has checked the value is plain, see :func:`canonical_plain`)."""
    try:
        prefix = DOMAINS[kind]
    except KeyError:
        raise CanonicalError(f"unknown kind of signed object: {kind!r}") from None
    return prefix + (canonical_plain(obj) if plain else canonical(obj))
