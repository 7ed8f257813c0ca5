"""The compiled helper crypto may use, and when it does not.

Rules this module owns:

- crypto/_speedups.c holds fieldsync's one compiled part: a change's signed bytes
  in the common shape (its rules are at its top). Where it is not built (no C
  compiler or no OpenSSL headers when ``pip install`` ran setup.py), :data:`compiled`
  is None and crypto.changes runs its Python path alone, which gives the same bytes.
- A build is used only if it was built from the source beside it (the digest it
  carries, ``SOURCE_SHA256``): an edited _speedups.c is never shadowed by an older
  build. The Python path runs, with a warning, until it is built again (``make``, or
  ``pip install -e .``). An installed copy with no source beside it is used as it is.
- ``FIELDSYNC_SPEEDUPS=0`` turns it off (to compare the two, or rule it out).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from types import ModuleType

logger = logging.getLogger("fieldsync.crypto")
SOURCE = Path(__file__).with_name("_speedups.c")


def load(source: Path = SOURCE) -> ModuleType | None:
    """crypto._speedups if it is built, current with ``source`` and not turned off; else None."""
    if os.environ.get("FIELDSYNC_SPEEDUPS", "").strip() == "0":
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    try:
        current = hashlib.sha256(source.read_bytes()).hexdigest()
    except FileNotFoundError:
        return _speedups  # installed without its source: as built
    if current != _speedups.SOURCE_SHA256:
        logger.warning(
            "%s changed since crypto._speedups was built: verifying in Python until it is built again (make)",
            source,
        )
        return None
    return _speedups


compiled = load()
