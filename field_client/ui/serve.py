"""Serving the ui: 127.0.0.1 only, a free port, the address printed (and opened) once.

The server is werkzeug's threaded WSGI server bound to 127.0.0.1 (never
0.0.0.0: the replica is for this laptop's own browser). Port 0 asks the
system for a free one; the address with this run's secret is printed as soon
as the socket is bound, then the browser is opened unless told not to: not at
that address (a browser's arguments are visible to every local user) but at a
0600 redirect file holding a one-time key (:mod:`.launcher`), removed at stop.
Request logging is off: it would write the secret to the terminal. Ctrl-C or
SIGTERM stops the sync thread and closes the replica.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import webbrowser
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from ..replica import Replica
from . import create_app, guard, launcher, state_of

HOST = "127.0.0.1"


def build(
    replica: Replica | None, *, home: str | Path, port: int = 0, sync_every: float = 0, **kw: Any
) -> BaseWSGIServer:
    """The app and its bound server (not yet serving)."""
    app = create_app(replica, home=home, sync_every=sync_every, **kw)
    server = make_server(HOST, port, app, threaded=True)
    guard.bind_port(app, server.server_port)
    return server


def serve(
    replica: Replica | None,
    *,
    home: str | Path,
    port: int = 0,
    browser: bool = True,
    sync_every: float = 0,
    echo: Callable[[str], None] = print,
) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = build(replica, home=home, port=port, sync_every=sync_every)
    app = server.app
    url = guard.address(app)  # type: ignore[arg-type]
    ui = state_of(app)  # type: ignore[arg-type]

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    opener: Path | None = None
    try:
        echo(f"fieldsync ui is running at {url}")
        echo("(this address holds a secret for this run: do not share it; Ctrl-C stops the ui)")
        if browser:
            opener = launcher.write(guard.address(app, guard.one_time_key(app)))  # type: ignore[arg-type]
            webbrowser.open(opener.as_uri())
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if opener is not None:
            launcher.remove(opener)
        server.server_close()
        ui.close()
