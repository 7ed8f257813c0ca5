"""Hub fixtures: the app on SQLite and on PostgreSQL, and a real HTTP server on loopback.

Every test that takes ``app`` (or ``hub``/``live``) runs twice: ``[sqlite]``
with a fresh file, ``[postgresql]`` on the session's database, migrated once
with the real migrations and emptied between tests.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from werkzeug.serving import make_server

from backend import bootstrap, create_app, keystore, schema
from backend.db import db
from crypto import b64e

from .helpers import Hub

_migrated: set[str] = set()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/hub.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def app(database_url: str, tmp_path: Any) -> Iterator[Flask]:
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "KEK": b64e(os.urandom(32)),
            "SECRET_KEY": "test-secret",
            "TESTING": True,
            "CERT_DAYS": 30,
        }
    )
    with app.app_context():
        if database_url.startswith("sqlite"):
            schema.upgrade()
        else:
            if database_url not in _migrated:
                schema.upgrade()
                _migrated.add(database_url)
            tables = ", ".join(t.name for t in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {tables} CASCADE"))
            db.session.commit()
        bootstrap.start_hub()
        db.session.commit()
        keystore.reset_cache()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def hub(app: Flask) -> Hub:
    return Hub(app)


@pytest.fixture
def live(app: Flask) -> Iterator[str]:
    """The hub served over real HTTP on 127.0.0.1 (a free port)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
