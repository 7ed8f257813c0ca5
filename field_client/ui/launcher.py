"""The browser's way in: a 0600 file that redirects to the keyed address, so the key is never
on a command line.

Why: ``webbrowser.open(url)`` runs the browser with the address as an
argument, and every user of the laptop can read every process's arguments
(``ps``, ``/proc/PID/cmdline``) for as long as the browser runs. As Jupyter
does, the browser is given ``file://`` of a small HTML file instead, readable
by the officer alone (0600, in a fresh 0700 folder under ``$XDG_RUNTIME_DIR``
when there is one, else the system temp folder); the file sends the browser
on to the keyed address with a ``<meta http-equiv=refresh>`` (no script).
The file is opened locally, never served, and removed when the ui stops.

The address in the file carries a **one-time** key (:func:`guard.one_time_key`),
not the run's key: once the browser exchanged it for the session cookie it
opens nothing, so neither the file (should it survive a crash) nor the
browser's history entry of that address lets anyone in later.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from markupsafe import escape

NAME = "open-fieldsync-ui.html"


def _parent() -> str | None:
    """$XDG_RUNTIME_DIR when it is a private folder of this user (0700, ours); else None (temp)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime:
        return None
    try:
        info = os.stat(runtime)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return runtime


def write(url: str) -> Path:
    """Write the redirect file for ``url``; returns its path (the caller removes it with :func:`remove`)."""
    folder = Path(tempfile.mkdtemp(prefix="fieldsync-ui-", dir=_parent()))  # mkdtemp: 0700
    path = folder / NAME
    target = escape(url)
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="0;url={target}">'
        '<meta name="referrer" content="no-referrer"><title>Opening fieldsync…</title></head>'
        f'<body><p><a href="{target}">Open fieldsync</a></p></body></html>'
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(page)
    return path


def remove(path: Path) -> None:
    """Remove the file and its folder (nothing else is ever put there)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    shutil.rmtree(path.parent, ignore_errors=True)
