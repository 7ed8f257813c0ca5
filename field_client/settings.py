"""Every laptop setting, its default and what it is for: the one table docs/officers.md lists.

Rules this module owns:

- The laptop's settings are environment variables ``FIELDSYNC_<NAME>``, all of
  them in :data:`SETTINGS` (name, default, help), as the hub's are in
  backend/settings.py; a test checks that each appears in docs/officers.md
  with its default. A new setting is a row here, a typed accessor below, and
  a row in that table.
- Each is read only through its accessor, when it is needed (not at import):
  a variable set for one command or one test takes effect there. A value left
  empty (or only spaces) means the default.
- A bad value is refused with one line naming the variable, what it must be,
  and the value given, before anything is sent or written: a misspelt setting
  must not silently become the default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from sync.hlc import DEFAULT_MAX_DRIFT_MS

from .errors import ClientError, ReplicaError

PREFIX = "FIELDSYNC_"


class Setting(NamedTuple):
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "HOME",
        "~/.fieldsync",
        "Folder of this laptop's encrypted replica (the `--home` option overrides it).",
    ),
    Setting(
        "PASSPHRASE",
        None,
        "The replica's passphrase, for scripts; unset, the laptop asks for it in the terminal.",
    ),
    Setting(
        "MAX_CLOCK_DRIFT",
        DEFAULT_MAX_DRIFT_MS // 1000,
        "Seconds a pulled change's clock may run ahead of the laptop's before it is refused, and the "
        "laptop's clock may differ from the hub's before sync stops.",
    ),
    Setting("CONNECT_TIMEOUT", 5, "Seconds `sync` waits for the hub to accept a connection (above 0, at most 3600)."),
    Setting("READ_TIMEOUT", 30, "Seconds `sync` waits for the hub to answer (above 0, at most 3600)."),
    Setting(
        "PULL_COMMIT",
        5000,
        "Most pulled changes `sync` keeps in one commit to the replica (1 to 1000000); a sync cut off "
        "pulls again at most that many.",
    ),
    Setting(
        "REPLICA_MEMORY_SECURITY",
        "off",
        "`on` turns on SQLCipher's locking and wiping of its own memory (syncs are slower; docs/security.md).",
    ),
)

DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}


def _raw(name: str) -> str:
    """The variable's value, stripped ('' when unset)."""
    return os.environ.get(PREFIX + name, "").strip()


def home() -> str:
    """``FIELDSYNC_HOME``, else ``~/.fieldsync`` (checked as ``--home`` is: field_client.arguments)."""
    return os.environ.get(PREFIX + "HOME") or str(Path.home() / ".fieldsync")


def passphrase() -> str | None:
    """``FIELDSYNC_PASSPHRASE`` exactly as given (set but empty is a passphrase too), or None."""
    return os.environ.get(PREFIX + "PASSPHRASE")


def max_clock_drift_ms() -> int:
    """``FIELDSYNC_MAX_CLOCK_DRIFT`` (whole seconds) in milliseconds, or the default."""
    raw = os.environ.get(PREFIX + "MAX_CLOCK_DRIFT", "")  # (named as given when refused)
    if not raw.strip():
        return DEFAULT_MAX_DRIFT_MS
    try:
        seconds = int(raw)
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise ClientError(f"FIELDSYNC_MAX_CLOCK_DRIFT must be a whole number of seconds above 0, not {raw!r}")
    return seconds * 1000


def timeouts() -> tuple[float, float]:
    """(connect, read) seconds from ``FIELDSYNC_CONNECT_TIMEOUT`` / ``FIELDSYNC_READ_TIMEOUT``, else the defaults."""
    return _seconds("CONNECT_TIMEOUT"), _seconds("READ_TIMEOUT")


def _seconds(name: str) -> float:
    raw = _raw(name)
    if not raw:
        return float(DEFAULTS[name])
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise ClientError(f"{PREFIX}{name} must be a number of seconds above 0 (at most 3600), not {raw!r}")
    return value


def pull_commit() -> int:
    """``FIELDSYNC_PULL_COMMIT``: most pulled changes in one commit (field_client.pull)."""
    raw = _raw("PULL_COMMIT")
    if not raw:
        return int(DEFAULTS["PULL_COMMIT"])
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 1_000_000:
        raise ClientError(f"FIELDSYNC_PULL_COMMIT must be a whole number of changes from 1 to 1000000, not {raw!r}")
    return value


def replica_memory_security() -> str:
    """``FIELDSYNC_REPLICA_MEMORY_SECURITY``: ``ON`` or ``OFF`` (the default), as SQLCipher's pragma
    takes it (field_client.replica's rules say why it is off). Once a connection has turned it
    on, SQLCipher keeps it on for the whole process."""
    raw = _raw("REPLICA_MEMORY_SECURITY").lower() or str(DEFAULTS["REPLICA_MEMORY_SECURITY"])
    if raw not in ("on", "off"):
        raise ReplicaError(f"FIELDSYNC_REPLICA_MEMORY_SECURITY must be on or off, not {raw!r}")
    return raw.upper()
