"""``fieldsync ui``: the officer's local web app, served from the laptop to its own browser.

A small Flask app over the same library as the CLI: pages read with
:mod:`field_client.state` and :mod:`field_client.review`, write only with
:mod:`field_client.edits` (validation, signing, the outbox) after
:mod:`field_client.inputs` turned the form's text into values, and sync with
:func:`field_client.agent.sync`. There is no second way to write.

Threads and the one SQLCipher connection
----------------------------------------
The server is threaded (a single-threaded server stalls behind the idle
connections Chromium opens ahead of time). A sqlite3 connection must not be
used by two threads at once, and the replica's :meth:`Replica.transaction`
keeps its nesting depth on the object, so every request that touches the
replica holds :attr:`UiState.lock` from ``before_request`` to
``teardown_request``: requests see the replica one at a time, exactly like
CLI commands run one after another. Requests are short (milliseconds; no
network), so the lock costs nothing an officer could notice. The one slow
thing, a sync, runs in :class:`~field_client.ui.syncer.Syncer`'s thread on
its own connection (:meth:`Replica.clone`), outside this lock.

Locked start
------------
``create_app(None, home=…)`` starts locked: every page asks for the
passphrase (for an officer who started ``fieldsync ui`` from a desktop
launcher, with no terminal to type it in). The form is behind the per-run
secret and CSRF like every other; a wrong passphrase is said beside the
field and opens nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, g
from flask_wtf.csrf import CSRFProtect

from ..replica import Replica
from . import guard
from .syncer import ClientFactory, Syncer


@dataclass
class UiState:
    """What the app holds for this run."""

    home: Path
    replica: Replica | None
    sync_every: float = 0
    client_factory: ClientFactory | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    syncer: Syncer | None = None

    def unlocked(self, replica: Replica) -> None:
        self.replica = replica
        self.syncer = Syncer(replica, every=self.sync_every, client_factory=self.client_factory)
        self.syncer.start()

    def close(self) -> None:
        if self.syncer is not None:
            self.syncer.stop()
        if self.replica is not None:
            self.replica.close()
            self.replica = None


def create_app(
    replica: Replica | None,
    *,
    home: str | Path | None = None,
    secret: str | None = None,
    sync_every: float = 0,
    client_factory: ClientFactory | None = None,
    test_config: dict[str, Any] | None = None,
) -> Flask:
    """The ui for one open replica (or, with None, a locked one in ``home``).

    ``secret`` is the per-run key (a fresh one if not given); call
    :func:`guard.bind_port` once the server has its port, then give the officer
    :func:`guard.address`. ``client_factory`` builds the hub client for a sync
    (tests may give one; by default the device's hub over HTTP).
    """
    app = Flask(__name__)
    guard.init_app(app, secret)
    if test_config:
        app.config.update(test_config)
    if replica is None and home is None:
        raise ValueError("give an open replica, or the home folder of a locked one")
    ui = UiState(Path(home) if home is not None else replica.home, None, sync_every, client_factory)  # type: ignore[union-attr]
    app.extensions["fieldsync_ui"] = ui
    if replica is not None:
        ui.unlocked(replica)
    CSRFProtect(app)  # after the guard: a request without the secret is refused before any form check

    @app.before_request
    def hold_replica() -> None:
        ui.lock.acquire()
        g.fieldsync_lock = True

    @app.teardown_request
    def release_replica(_exc: BaseException | None) -> None:
        if g.pop("fieldsync_lock", False):
            ui.lock.release()

    from . import pages, views

    app.register_blueprint(views.bp)
    app.register_blueprint(pages.bp)
    app.jinja_env.filters.update(pages.FILTERS)
    app.context_processor(pages.sync_bar)
    return app


def state_of(app: Flask) -> UiState:
    return app.extensions["fieldsync_ui"]  # type: ignore[no-any-return]
