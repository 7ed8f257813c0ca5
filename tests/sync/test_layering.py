"""sync/ is a core with no I/O (like h11): importing it pulls in no web, database or
network library, and nothing of the hub or the field client."""

from __future__ import annotations

import json
import subprocess
import sys

# (the standard library's socket comes in through marshmallow's e-mail validation: not ours to use)
FORBIDDEN = {"flask", "sqlalchemy", "requests", "urllib3", "httpx", "sqlite3", "sqlcipher3", "psycopg", "apscheduler"}
PROJECT_ABOVE = {"backend", "field_client"}


def imported_by(*packages: str) -> set[str]:
    """Top-level modules loaded by importing ``packages`` in a fresh interpreter."""
    code = (
        "import sys, json; before = set(sys.modules); "
        + "; ".join(f"import {p}" for p in packages)
        + "; print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_sync_and_crypto_import_no_io_library() -> None:
    loaded = imported_by("sync", "crypto")
    assert {"sync", "crypto"} <= loaded, "the probe really imported them"
    assert loaded & FORBIDDEN == set()
    assert loaded & PROJECT_ABOVE == set()
