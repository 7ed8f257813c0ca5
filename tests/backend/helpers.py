"""Test helpers: an administrator driving the hub, and officers with enrolled laptops.

``Hub`` calls the same backend functions as the ``fieldsync-hub`` CLI.
``Officer`` is a minimal field client over real HTTP: it enrolls with a token,
signs its changes with sync.make_change (gap-free seq/prev), pushes and pulls
through field_client.transport.HubClient, and verifies what it pulls against
the registry it pinned at enrollment.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask

from backend import agreements, enroll, keystore
from backend.db import db
from crypto import KeyRegistry, RegistryHead, SigningKey, entry_hash
from field_client.transport import HubClient
from sync import Change, Clock, MergeState, Verifier, make_change


class Hub:
    def __init__(self, app: Flask) -> None:
        self.app = app

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self.app.app_context():
            result = fn(*args, **kwargs)
            db.session.commit()
            return result

    def agency(self, code: str, name: str | None = None) -> None:
        self._run(keystore.create_agency, code, name or f"{code} agency")

    def token(self, agency: str, officer: str = "Officer", ttl: int | None = None) -> str:
        return str(self._run(enroll.issue_token, agency, officer, ttl=ttl))

    def agreement(self, from_agency: str, to_agency: str, collections: list[str], withhold=(), write=()) -> None:
        self._run(agreements.add, from_agency, to_agency, collections, list(withhold), list(write), actor="test")

    def revoke(self, device_id: str) -> None:
        self._run(enroll.revoke, device_id, actor="test", reason="lost laptop")

    def rotate(self, agency: str) -> None:
        self._run(keystore.rotate_agency_key, agency)


RESOURCE = {"kind": "vehicle", "name": "Unit 12", "status": "available", "quantity": 1}


class Officer:
    def __init__(self, base_url: str, token: str) -> None:
        self.key = SigningKey.generate()
        answer = HubClient(base_url).enroll(token, self.key.verify_key.to_text())
        self.device_id: str = answer["device_id"]
        self.agency: str = answer["agency"]
        self.certificate: dict[str, Any] = answer["certificate"]
        self.pinned = RegistryHead(len(answer["registry"]), entry_hash(answer["registry"][-1]))
        self.registry = KeyRegistry.verify(answer["registry"])
        self.client = HubClient(base_url, device_id=self.device_id, key=self.key)
        self.clock = Clock(self.device_id)
        self.clock.observe(answer["hub_time"])
        self.seq, self.prev = 0, None
        self.state = MergeState()
        self.cursor = 0

    def change(
        self,
        collection: str,
        values: dict[str, Any],
        *,
        record_id: str | None = None,
        agency: str | None = None,
        deleted: bool = False,
    ) -> dict[str, Any]:
        """Sign the next change of this laptop's feed (applied locally too)."""
        record_id = record_id or str(uuid.uuid4())
        current = self.state.records.get(record_id)
        self.seq += 1
        wire = make_change(
            self.key, collection=collection, record_id=record_id,
            agency=agency or (current.agency if current else self.agency), device=self.device_id,
            seq=self.seq, prev=self.prev, hlc=str(self.clock.now()), values=values,
            seen=current.seen() if current else {}, deleted=deleted,
        )  # fmt: skip
        change = Verifier(self.registry).verify(wire, self.certificate)
        self.prev = change.hash
        try:
            self.state.apply(change)
        except Exception:  # noqa: BLE001 - a locally refused change is still signed and sent
            pass
        return wire

    def create(self, collection: str = "resources", values: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        return self.change(collection, dict(values or RESOURCE), **kw)

    def push(self, *wires: dict[str, Any]) -> list[dict[str, Any]]:
        return self.client.push(list(wires))

    def pull(self, limit: int | None = None) -> list[Change]:
        """Pull until ``more`` is false; verify and apply every change."""
        got: list[Change] = []
        while True:
            answer = self.client.pull(self.cursor, limit)
            if answer["registry_size"] != len(self.registry.entries):
                self.registry = KeyRegistry.verify(self.client.registry(), pinned=self.pinned)
            verifier = Verifier(self.registry)
            for item in answer["changes"]:
                wire = item["change"]
                change = verifier.verify(wire, answer["certificates"].get(wire["device"]))
                self.clock.observe(change.hlc)
                self.state.apply(change)
                got.append(change)
            self.cursor = answer["next_cursor"]
            self.last = answer
            if not answer["more"]:
                return got
