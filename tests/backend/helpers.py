"""Test helpers: an administrator driving the hub, and officers with enrolled laptops.

``Hub`` calls the same backend functions as the ``fieldsync-hub`` CLI.
``Officer`` is a minimal field client over real HTTP: it enrolls with a token,
signs its changes with sync.make_change (gap-free seq/prev), pushes and pulls
through field_client.transport.HubClient, and verifies what it pulls against
the registry it pinned at enrollment.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import requests
from flask import Flask
from sqlalchemy import select

from backend import agreements, enroll, keystore
from backend.db import db
from backend.models import AuditEntry, LogEntry, Record
from crypto import KeyRegistry, RegistryHead, SigningKey, b64e, change_hash, entry_hash, sign_request
from field_client.transport import HubClient
from sync import Change, ChangeRejected, Clock, MergeState, Verifier, make_change


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
        with contextlib.suppress(ChangeRejected):  # a locally refused change is still signed and sent
            self.state.apply(change)
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


# -- helpers for the API tests: raw HTTP, hand-built changes, database reads --------------

ENVELOPE = {"error", "message", "details"}


def error_body(response: requests.Response, status: int) -> dict[str, Any]:
    """Assert ``response`` is the JSON error envelope with ``status``; return it."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == ENVELOPE, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    return body  # type: ignore[no-any-return]


def signed_headers(
    officer: Officer, method: str, path: str, data: bytes = b"", *, at: datetime | None = None, nonce: str | None = None
) -> dict[str, str]:
    """The request-signature headers ``officer``'s laptop would send (``path`` with its query string)."""
    return sign_request(
        officer.key,
        device=officer.device_id,
        method=method,
        path=path,
        body=data,
        at=at or datetime.now(UTC),
        nonce=nonce or b64e(os.urandom(16)),
    )


def raw(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    data: bytes | None = None,
    officer: Officer | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """One plain HTTP request (no gzip, no retries): ``body`` as compact JSON or ``data`` as given,
    signed by ``officer`` when given; ``headers`` are applied last (to tamper with them)."""
    if data is None:
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    sent = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
    if officer is not None:
        sent.update(signed_headers(officer, method, path, data))
    sent.update(headers or {})
    return requests.request(method, base_url + path, data=data or None, headers=sent, timeout=(5, 30))


def sign_as(
    officer: Officer,
    collection: str = "resources",
    values: dict[str, Any] | None = None,
    *,
    seq: int | None = None,
    prev: Any = ...,  # default: the officer's feed head; give None or a hash to override
    record_id: str | None = None,
    agency: str | None = None,
    hlc: str | None = None,
    deleted: bool = False,
    seen: dict[str, str | None] | None = None,
    change_id: str | None = None,
) -> dict[str, Any]:
    """A change signed with ``officer``'s device key WITHOUT advancing its feed: by default the
    next link (seq/prev), for changes the hub should refuse before placing them (invalid,
    forged, equivocating). :meth:`follow` makes the officer continue after it."""
    return make_change(
        officer.key,
        collection=collection,
        record_id=record_id or str(uuid.uuid4()),
        agency=agency or officer.agency,
        device=officer.device_id,
        seq=officer.seq + 1 if seq is None else seq,
        prev=officer.prev if prev is ... else prev,
        hlc=hlc or str(officer.clock.now()),
        values=dict(RESOURCE if values is None and not deleted else values or {}),
        seen=seen or {},
        deleted=deleted,
        change_id=change_id,
    )


def follow(officer: Officer, wire: dict[str, Any]) -> None:
    """Make ``wire`` (built by :func:`sign_as`) the officer's latest feed link."""
    officer.seq, officer.prev = wire["seq"], change_hash(wire)


def rows(app: Flask, model: Any, *where: Any, order_by: Any = None) -> list[Any]:
    """Rows of ``model`` matching ``where`` (detached, columns loaded)."""
    with app.app_context():
        query = select(model).where(*where)
        if order_by is not None:
            query = query.order_by(order_by)
        return list(db.session.scalars(query))


def audit_entries(app: Flask, action: str | None = None) -> list[Any]:
    """Audit log entries, oldest first, optionally of one action."""
    where = [AuditEntry.action == action] if action else []
    return rows(app, AuditEntry, *where, order_by=AuditEntry.seq)


# -- pushing: verdicts, what the log and the audit log hold -------------------------------


def statuses(results: list[dict[str, Any]]) -> list[str]:
    return [r["status"] for r in results]


def rejections(hub: Hub) -> dict[str, dict[str, Any]]:
    """change id -> details of its 'change.rejected' audit entry."""
    entries = audit_entries(hub.app, "change.rejected")
    assert all(e.outcome == "rejected" for e in entries)
    return {e.object: e.details for e in entries}


def log_ids(hub: Hub) -> list[str]:
    return [e.change_id for e in rows(hub.app, LogEntry, order_by=LogEntry.seq)]


def record(hub: Hub, record_id: str) -> Record:
    (row,) = rows(hub.app, Record, Record.record_id == record_id)
    return row


def two_agencies(hub: Hub, live: str, **agreement: Any) -> tuple[Officer, Officer]:
    """SPD shares its resources with CSO (as ``agreement`` says); one officer in each."""
    hub.agency("SPD")
    hub.agency("CSO")
    hub.agreement("SPD", "CSO", ["resources"], **agreement)
    return Officer(live, hub.token("SPD", "Sgt. Lee")), Officer(live, hub.token("CSO", "Dep. Kim"))


def booking_of(resource_id: str, start: str, end: str, state: str) -> dict[str, Any]:
    return {"resource_id": resource_id, "starts_at": start, "ends_at": end, "purpose": "exercise", "state": state}
