"""The hub's PostgreSQL unavailable for a while: stopped (immediate, as a crash) and started again.

The database is a private server of this test (tests/resilience/pgserver.py), never the shared
one on :5432. While it is down the hub answers every API request with its JSON error envelope,
503 ``unavailable`` with ``Retry-After`` (never a 500 traceback) and /healthz says so; a laptop's
sync fails with "try again later" and keeps its outbox. Once the server is back (the hub's pool
reconnects by itself), one sync converges with nothing lost and nothing applied twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from tests.e2e.conftest import AGENCIES, Hub, free_port

from .laptops import assert_converged, assert_log_exact, enroll, offline_edits, pending
from .pgserver import PgServer


class PgHub(Hub):
    """A hub whose database is a PostgreSQL server; :meth:`query` reads it there instead of SQLite."""

    def __init__(self, instance: Path, port: int, database_url: str) -> None:
        super().__init__(instance, port)
        self.database_url = database_url
        self.env["FIELDSYNC_DATABASE_URL"] = database_url
        # the web check below uses requests, which sends a Secure cookie over https only
        self.env["FIELDSYNC_SESSION_COOKIE_SECURE"] = "false"

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        dsn = self.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), params)
            names = [col.name for col in cur.description or []]
            return [
                {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in zip(names, row, strict=True)}
                for row in cur.fetchall()
            ]


@pytest.fixture
def pg_hub(tmp_path: Path) -> Iterator[tuple[PgHub, PgServer]]:
    server = PgServer()
    hub: PgHub | None = None
    try:
        server.start()
        hub = PgHub(tmp_path / "hub" / "instance", free_port(), server.url)
        hub.admin("init")  # runs the migrations on the private server
        hub.admin("agency", "create", "SPD", "--name", AGENCIES["SPD"])
        hub.start()
        yield hub, server
    finally:
        if hub is not None:
            hub.stop()
        server.remove()


def test_database_down_answers_503_keeps_the_outbox_and_recovers(
    pg_hub: tuple[PgHub, PgServer], tmp_path: Path
) -> None:
    hub, server = pg_hub
    writer = enroll(hub, hub.url, "SPD", "Sgt. Lee", tmp_path / "home-lee")
    reader = enroll(hub, hub.url, "SPD", "Cpl. Diaz", tmp_path / "home-diaz")
    first = offline_edits(writer, 5)
    writer.sync()
    browser = requests.Session()  # a person at the web view, with a (pre-login) session in the database
    assert browser.get(hub.url + "/login", timeout=10).status_code == 200
    assert browser.cookies, "the banner page stores a session (its CSRF secret)"

    server.stop("immediate")
    more = offline_edits(writer, 20)
    run = writer.sync(check=False)
    assert run.returncode != 0
    assert "hub unavailable (503): the hub's database is unavailable; try again later" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert pending(writer) == more  # kept for later
    assert "unavailable" in (writer.status()["last_sync_error"] or "")

    health = requests.get(hub.url + "/healthz", timeout=10)
    assert health.status_code == 503 and health.json()["status"] != "ok"
    for answer in (
        requests.post(
            hub.url + "/api/v1/sync/push", json={"changes": []}, headers={"X-Fieldsync-Device": "x"}, timeout=10
        ),
        requests.get(hub.url + "/api/v1/sync/pull?cursor=0", headers={"X-Fieldsync-Device": "x"}, timeout=10),
        requests.get(hub.url + "/api/v1/registry", timeout=10),
    ):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "unavailable"
        assert set(answer.json()) == {"error", "message", "details"}
        assert answer.headers["Retry-After"].isdigit()
    page = browser.get(hub.url + "/login", timeout=10)  # the session cannot be read: a page, not a 500
    assert page.status_code == 503, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    assert "database is unavailable" in page.text and page.headers["Retry-After"].isdigit()
    assert "Traceback" not in hub.log_path.read_text(errors="replace")

    server.start()
    assert hub.healthy()
    assert browser.get(hub.url + "/login", timeout=10).status_code == 200  # the same session, back
    writer.sync()
    assert_log_exact(hub, writer, first + more)
    assert_converged(hub, [writer, reader])
    assert len(hub.records()) == 25
    verify = hub.admin("audit", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
