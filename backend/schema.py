"""Schema migrations (Flask-Migrate / Alembic), kept in backend/migrations.

``upgrade()`` brings any database, SQLite or PostgreSQL, to the newest
revision; ``fieldsync-hub init`` calls it. To change the schema: edit
backend/models.py, then ``flask --app backend db migrate -m "what"`` and
review the generated file; tests/backend/test_schema.py fails while the
models and the migrations disagree.
"""

from __future__ import annotations

from pathlib import Path

import flask_migrate
from flask import Flask

from . import models  # noqa: F401 - register the tables
from .db import db

DIRECTORY = str(Path(__file__).with_name("migrations"))
migrate = flask_migrate.Migrate(directory=DIRECTORY, compare_type=True)


def init_app(app: Flask) -> None:
    migrate.init_app(app, db)


def upgrade() -> None:
    flask_migrate.upgrade(directory=DIRECTORY)
