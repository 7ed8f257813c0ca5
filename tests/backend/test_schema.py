"""The migrations and the models agree, and every setting is documented.

``test_migrations_match_the_models`` fails when someone edits backend/models.py
without adding a migration (``flask --app backend db migrate -m "what"``).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import inspect

from backend import create_app, schema
from backend.db import db
from backend.settings import SETTINGS
from crypto import b64e
from tests.conftest import PG_URL, _connect

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """An app on an empty database (a new file, or a new PostgreSQL database), not migrated yet."""
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/hub.db"
    else:
        request.getfixturevalue("postgres_url")  # skips, with the reason, where no PostgreSQL can be had
        name = f"fieldsync_schema_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with _connect(PG_URL) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{PG_URL.rpartition('/')[0]}/{name}"
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance"), "KEK": b64e(os.urandom(32))})
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if name:
        with _connect(PG_URL) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _diff(app: Flask) -> list[Any]:
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, db.metadata))


def test_migrations_match_the_models(empty_app: Flask) -> None:
    with empty_app.app_context():
        schema.upgrade()
    assert _diff(empty_app) == [], "backend/models.py and backend/migrations disagree: add a migration"


def test_upgrade_reaches_the_single_head_and_is_idempotent(empty_app: Flask) -> None:
    with empty_app.app_context():
        schema.upgrade()
        schema.upgrade()
        script = ScriptDirectory.from_config(empty_app.extensions["migrate"].migrate.get_config(schema.DIRECTORY))
        heads = script.get_heads()
        assert len(heads) == 1, f"the migrations have {len(heads)} heads: merge them"
        with db.engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_heads() == tuple(heads)
        tables = set(inspect(db.engine).get_table_names())
    assert {t.name for t in db.metadata.sorted_tables} | {"alembic_version"} == tables


def test_the_diff_catches_a_model_without_a_migration(empty_app: Flask) -> None:
    """The control: the comparison sees a change the migrations lack."""
    from sqlalchemy import Column, MetaData, String, Table

    with empty_app.app_context():
        schema.upgrade()
        extra = MetaData()
        for table in db.metadata.sorted_tables:
            table.to_metadata(extra)
        Table("agencies", extra, Column("motto", String(50)), extend_existing=True)
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, extra)
    assert [(d[0], d[2], d[3].name) for d in diff] == [("add_column", "agencies", "motto")]


# -- settings are documented ---------------------------------------------------------------
OPERATIONS = ROOT / "docs" / "operations.md"


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_every_setting_is_in_docs_operations(setting: Any) -> None:
    assert OPERATIONS.exists(), "docs/operations.md is missing"
    doc = OPERATIONS.read_text(encoding="utf-8")
    name = f"FIELDSYNC_{setting.name}"
    assert re.search(rf"\b{name}\b", doc), f"{name} is not documented in docs/operations.md"
    if setting.default is not None:
        rows = [line for line in doc.splitlines() if name in line and line.lstrip().startswith("|")]
        assert rows, f"{name} has no row in the settings table of docs/operations.md"
        assert any(str(setting.default) in row for row in rows), f"docs/operations.md gives {name} another default"
