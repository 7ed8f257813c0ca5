"""Text a request may carry: every string the hub would store must be storable everywhere.

Rules this module owns:

- No string in a request's JSON body (keys included), its path or its query
  may hold NUL (U+0000) or a lone surrogate (U+D800-U+DFFF, which JSON's
  ``\\ud800`` escapes can carry). PostgreSQL text cannot hold NUL and no UTF-8
  column can hold a surrogate: such a request would otherwise fail on
  PostgreSQL only, as a 500, after authentication had already been spent.
- A body with one is refused with 422 naming where it is (``changes.0.id``);
  a path or query with one with 404 / 422, before anything is read or stored.
- A body is walked only if its bytes could spell such a string: the standard
  library's ``json.loads`` makes NUL only from a ``\\u`` escape (a raw one is
  invalid JSON), a lone surrogate only from a ``\\u`` escape or from its UTF-8
  spelling (ED A0-BF: bytes are decoded with ``surrogatepass``), and reads
  UTF-16 and UTF-32, which always hold NUL bytes, only when it sees them. A
  body with none of ``\\u``, ED A0-BF or a NUL byte holds no unstorable string
  (a typical push: walking one costs about as much as parsing it).
- What the records' fields may hold beyond that (control characters, bidi
  overrides) is the shared schemas' rule (sync/schemas.py), the same on the hub
  and the laptop.
"""

from __future__ import annotations

import re
from typing import Any

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MESSAGE = "Text must not contain NUL or lone surrogates."
_MAY_SPELL_UNSTORABLE = re.compile(rb"\\u|\xed[\xa0-\xbf]|\x00")


def may_hold_unstorable(raw: bytes) -> bool:
    """False if no string ``json.loads(raw)`` makes can hold NUL or a lone surrogate (rules above)."""
    return _MAY_SPELL_UNSTORABLE.search(raw) is not None


def unstorable(value: Any, where: str = "") -> str | None:
    """The dotted path of the first string in ``value`` that cannot be stored, or None."""
    if isinstance(value, str):
        return (where or "_schema") if UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if UNSTORABLE.search(str(key)):
                return here
            found = unstorable(item, here)
            if found:
                return found
        return None
    if isinstance(value, list):
        for pos, item in enumerate(value):
            found = unstorable(item, f"{where}.{pos}" if where else str(pos))
            if found:
                return found
    return None


def safe(text: str) -> str:
    """``text`` as it may be stored or shown: unstorable characters escaped (error details, audit)."""
    return UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
