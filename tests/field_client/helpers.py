"""Enrolled laptops for the field client's tests, without the CLI.

A :class:`Laptop` is a real encrypted replica in a tmp folder (cheap Argon2id
cost), enrolled with the hub through ``field_client.transport.HubClient``, and
syncing through the same agent code as ``fieldsync sync``. Its transport is
the in-process seam by default, or real HTTP when given a live hub's URL.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from sqlalchemy import select

from backend.db import db
from backend.models import LogEntry
from crypto import FAST, SigningKey
from field_client import agent, state
from field_client.device import Device, enroll_into
from field_client.replica import Replica
from field_client.transport import HubClient
from tests.backend.helpers import Hub

from .inprocess import HUB_URL, hub_session

PASSPHRASE = "correct horse battery"
VEHICLE = {"kind": "vehicle", "name": "Unit 12", "quantity": 1}


class Laptop:
    def __init__(
        self, home: Path, token: str, *, app: Flask | None = None, hub_url: str = HUB_URL, passphrase: str = PASSPHRASE
    ) -> None:
        self.home, self.passphrase = home, passphrase
        if app is not None:
            self.session, self.adapter = hub_session(app, hub_url)
        else:
            self.session, self.adapter = requests.Session(), None
        key = SigningKey.generate()
        answer = HubClient(hub_url, session=self.session).enroll(token, key.verify_key.to_text())
        self.replica = Replica.create(home, passphrase, cost=FAST)
        enroll_into(self.replica, hub_url=hub_url, key=key, answer=answer)
        self.device = Device(self.replica)

    @property
    def client(self) -> HubClient:
        return agent.client_for(self.device, session=self.session)

    def sync(self) -> agent.SyncReport:
        return agent.sync(self.device, self.client)

    def reopen(self) -> None:
        """Close and open the replica again, as the next CLI command would."""
        self.replica.close()
        self.replica = Replica.open(self.home, self.passphrase)
        self.device = Device(self.replica)

    def record(self, record_id: str) -> dict[str, Any] | None:
        return state.get_record(self.replica, record_id)

    def count(self, table: str, where: str = "1") -> int:
        return int(self.replica.conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])

    def close(self) -> None:
        self.replica.close()
        self.session.close()


def outbox(lt: Laptop) -> list[dict[str, Any]]:
    return lt.replica.rows("SELECT seq, change_id, record_id, status, reason FROM outbox ORDER BY seq")


def views(lt: Laptop, collection: str = "resources") -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in state.list_records(lt.replica, collection, include_deleted=True)}


# -- the hub's side, as a test (or a compromised hub) sees it ------------------------------------------


def log_size(hub: Hub) -> int:
    with hub.app.app_context():
        return len(db.session.scalars(select(LogEntry.seq)).all())


def tamper(hub: Hub, change_id: str, edit: Any) -> None:
    """Change the hub's stored wire of one change, as a compromised hub (or its database) would."""
    with hub.app.app_context():
        entry = db.session.scalars(select(LogEntry).where(LogEntry.change_id == change_id)).one()
        wire = copy.deepcopy(entry.wire)
        edit(wire)
        entry.wire = wire
        db.session.commit()


FORGERIES: dict[str, Any] = {
    "value": lambda w: w["fields"]["name"].__setitem__("value", "Unit 99"),
    "agency": lambda w: w.__setitem__("agency", "CSO"),
    "seq": lambda w: w.__setitem__("seq", w["seq"] + 100),
    "salt": lambda w: w["fields"]["name"].__setitem__("salt", w["fields"]["kind"]["salt"]),
    "field-added": lambda w: w["fields"].__setitem__("notes", dict(w["fields"]["name"])),
}
