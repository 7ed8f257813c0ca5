"""Enrolled laptops for the field client's tests, without the CLI.

A :class:`Laptop` is a real encrypted replica in a tmp folder (cheap Argon2id
cost), enrolled with the hub through ``field_client.transport.HubClient``, and
syncing through the same agent code as ``fieldsync sync``. Its transport is
the in-process seam by default, or real HTTP when given a live hub's URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from flask import Flask

from crypto import FAST, SigningKey
from field_client import agent, state
from field_client.device import Device, enroll_into
from field_client.replica import Replica
from field_client.transport import HubClient

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
