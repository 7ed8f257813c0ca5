"""Reading the hub's JSON answers.

Rules this module owns:

- One decoder for every JSON answer of the hub: the transport reads answers with it,
  and the verification workers (field_client.verifier) read each pull page's bytes
  with it again, so both see the same changes. It imports no HTTP client: a worker
  starts during a sync, and what it imports is paid for then.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def decode_json(body: bytes) -> Any:
    """A JSON answer. orjson first (a pull page is ~0.75 MB, decoded while the last is merged);
    what it refuses and the standard library reads (NaN, a lone surrogate escape) is read that
    way, so both accept the same answers and verification decides what a value is worth. (An
    integer beyond 64 bits orjson reads as a float: RFC 8785 encodes both alike, and no value a
    hub's schemas accept is one.)"""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)
