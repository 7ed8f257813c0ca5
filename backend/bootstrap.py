"""Making a hub ready to serve: what ``fieldsync-hub init`` does, in one place.

Rules this module owns:

- :func:`initialize` is safe to re-run: it creates what is missing (the
  instance's secret key file, the key-encryption key, the schema, the log's
  head row) and brings the schema to the newest revision; on a hub that has a
  hub key it stops there and changes nothing else.
- The secret key is written once to ``instance/config.py`` with mode 0600 and
  only when no ``SECRET_KEY`` is configured; an existing file is never
  overwritten (``O_EXCL``), so web sessions survive a re-run.
- A new hub gets, in one transaction (the caller commits): the log's head row,
  the hub key, the first admin account and a ``hub.init`` audit entry naming
  where the KEK comes from (the environment or a file, never the key).
- The admin's password is asked for (``password()``) only when a new hub
  needs it, so a re-run never prompts.
- :func:`start_hub` is the database part alone (head row and hub key), for
  test and benchmark hubs whose schema and KEK are set up by their fixtures.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from . import audit, keystore, log, schema, users


@dataclass(frozen=True)
class Initialized:
    """What ``init`` did: where the KEK comes from, and the admin it created (None on a re-run)."""

    kek_source: str
    admin: str | None

    @property
    def already(self) -> bool:
        return self.admin is None


def write_secret_key() -> None:
    """Write ``instance/config.py`` with a fresh SECRET_KEY unless one is configured or the file exists."""
    config_file = Path(current_app.instance_path) / "config.py"
    if current_app.config.get("SECRET_KEY") or config_file.exists():
        return
    fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"SECRET_KEY = {secrets.token_urlsafe(48)!r}\n")


def start_hub() -> None:
    """The rows a hub needs before its first request: the log's head and the hub key."""
    log.ensure_head()
    keystore.create_hub_key()


def initialize(admin_name: str, password: Callable[[], str], *, actor: str) -> Initialized:
    """Create the database, the keys and the first admin account, or bring an initialized hub's
    schema up to date. The caller commits."""
    write_secret_key()
    kek_source = keystore.ensure_kek()
    schema.upgrade()
    if keystore.has_hub_key():
        log.ensure_head()
        return Initialized(kek_source, None)
    secret = password()
    start_hub()
    users.add_user(admin_name, "admin", secret, actor=actor)
    audit.record("hub.init", actor=actor, details={"kek": "environment" if kek_source == "FIELDSYNC_KEK" else "file"})
    return Initialized(kek_source, admin_name)
