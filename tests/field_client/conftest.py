"""Fixtures for the field client: the hub (SQLite and PostgreSQL) and enrolled laptops."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backend.db import db
from backend.models import Agency
from tests.backend.conftest import app, database_url, hub, live  # noqa: F401
from tests.backend.helpers import Hub

from .helpers import Laptop

MakeLaptop = Callable[..., Laptop]


@pytest.fixture
def laptop(hub: Hub, tmp_path: Path) -> Iterator[MakeLaptop]:  # noqa: F811
    """``laptop(agency, officer)``: a laptop enrolled with the in-process hub (agency created if new)."""
    made: list[Laptop] = []

    def make(agency: str = "SPD", officer: str = "Sgt. Lee", *, hub_url: str | None = None) -> Laptop:
        with hub.app.app_context():
            known = db.session.get(Agency, agency) is not None
            db.session.rollback()
        if not known:
            hub.agency(agency)
        home = tmp_path / f"home-{len(made)}"
        token = hub.token(agency, officer)
        lt = Laptop(home, token, app=None if hub_url else hub.app, **({"hub_url": hub_url} if hub_url else {}))
        made.append(lt)
        return lt

    yield make
    for lt in made:
        lt.close()
