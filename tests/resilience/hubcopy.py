"""Copies of a hub's instance folder, for rollback and fork tests.

A hub restored from backup is the same instance folder put back as it was at
an earlier moment; a forked hub is a second instance started from a copy of
the first and then fed different changes. Both are served at the address the
laptops already know (the same loopback port), as a restore or an impostor
would be. Copies are taken with the server stopped, so SQLite's files are
consistent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Hub


def snapshot(hub: Hub, to: Path) -> Path:
    """Stop the hub, copy its instance folder to ``to``, start it again."""
    hub.stop()
    shutil.copytree(hub.instance, to)
    hub.start()
    return to


def restore(hub: Hub, backup: Path) -> None:
    """Stop the hub, put the backup back in place of its instance folder, start it again."""
    hub.stop()
    shutil.rmtree(hub.instance)
    shutil.copytree(backup, hub.instance)
    hub.start()


def log_head(hub: Hub) -> dict[str, Any]:
    """What the hub's administrator reads on the hub itself: ``fieldsync-hub log head --json``."""
    return dict(json.loads(hub.admin("log", "head", "--json").stdout))


def refused(proc: subprocess.CompletedProcess[str]) -> str:
    """A command that must have failed cleanly: non-zero, one-line error, no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr
