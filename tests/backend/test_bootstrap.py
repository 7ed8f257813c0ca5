"""backend.bootstrap in-process: what ``fieldsync-hub init`` does, without a subprocess.

tests/backend/test_cli.py runs the command itself (output, exit codes, both databases);
these tests pin the library function it calls, which the test fixtures share (start_hub).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from backend import bootstrap, create_app, keystore, log
from backend.db import db
from backend.errors import HubError
from backend.models import AuditEntry, HubKey, User

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Flask]:
    """An app with nothing configured: no SECRET_KEY, no KEK, an empty SQLite file."""
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/hub.db", "INSTANCE_PATH": str(tmp_path / "instance")})
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_initialize_makes_a_hub_and_a_rerun_changes_nothing(fresh: Flask) -> None:
    asked = []

    def password() -> str:
        asked.append(1)
        return PASSWORD

    instance = Path(fresh.instance_path)
    with fresh.app_context():
        done = bootstrap.initialize("chief", password, actor="cli:test")
        db.session.commit()
        assert (done.already, done.admin, done.kek_source) == (False, "chief", str(instance / "kek"))
        assert (instance / "config.py").stat().st_mode & 0o777 == 0o600
        assert (instance / "kek").stat().st_mode & 0o777 == 0o600
        assert "SECRET_KEY = " in (instance / "config.py").read_text()
        assert [(u.name, u.role) for u in db.session.scalars(select(User))] == [("chief", "admin")]
        assert db.session.scalar(select(func.count()).select_from(HubKey)) == 1
        assert [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq))] == [
            "user.add",
            "hub.init",
        ]
        assert (log.read_head().size, log.read_head().head) == (0, None)
        config, kek = (instance / "config.py").read_text(), (instance / "kek").read_text()
        db.session.remove()

        again = bootstrap.initialize("someone-else", password, actor="cli:test")
        db.session.commit()
        assert (again.already, again.admin) == (True, None)
        assert asked == [1]  # a re-run never asks for a password
        assert ((instance / "config.py").read_text(), (instance / "kek").read_text()) == (config, kek)
        assert db.session.scalar(select(func.count()).select_from(User)) == 1
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 2


def test_initialize_asks_for_the_password_before_making_any_key(fresh: Flask) -> None:
    def no_password() -> str:
        raise HubError("no password")

    with fresh.app_context():
        with pytest.raises(HubError):
            bootstrap.initialize("admin", no_password, actor="cli:test")
        db.session.rollback()
        assert not keystore.has_hub_key()


def test_start_hub_is_what_the_fixtures_share(app: Flask) -> None:
    """The ``app`` fixture started its hub with bootstrap.start_hub: a log head and one hub key."""
    with app.app_context():
        assert keystore.has_hub_key()
        assert (log.read_head().size, log.read_head().head) == (0, None)
        with pytest.raises(HubError):  # a second hub key is refused (Conflict)
            bootstrap.start_hub()
