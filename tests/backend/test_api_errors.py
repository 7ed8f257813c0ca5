"""The JSON error envelope and the public endpoints (backend/errors.py, backend/api), over real HTTP."""

from __future__ import annotations

import gzip
import json
from typing import Any

from flask import Flask
from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR

from backend.models import Device, LogEntry
from crypto import KeyRegistry, SigningKey

from .helpers import Hub, Officer, error_body, raw, rows, signed_headers

PUSH = "/api/v1/sync/push"
ENROLL = "/api/v1/enroll"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_malformed_json_is_400_and_schema_errors_are_422_with_field_details(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    # not JSON at all: 400, before and after authentication
    for data in (b'{"token": "abc", ', b"\xff\xfe not utf-8", b""):
        body = error_body(raw(live, "POST", ENROLL, data=data), 400)
        assert body["error"] == "bad_request" and "JSON" in body["message"], data
    data = b'{"changes": [}'
    body = error_body(raw(live, "POST", PUSH, data=data, headers=signed_headers(lee, "POST", PUSH, data)), 400)
    assert "JSON" in body["message"]
    # JSON of the wrong shape: 422 naming each field
    for request, fields in [
        ([], {"_schema"}),
        ({"token": "", "public_key": SigningKey.generate().verify_key.to_text()}, {"token"}),
    ]:
        body = error_body(raw(live, "POST", ENROLL, request), 422)
        assert body["error"] == "unprocessable" and set(body["details"]) == fields, (request, body)
    for request, fields in [
        ({}, {"changes"}),
        ({"changes": {"a": 1}}, {"changes"}),
        ({"changes": [], "extra": 1}, {"extra"}),
        ({"changez": []}, {"changes", "changez"}),
        ("changes", {"_schema"}),
    ]:
        body = error_body(raw(live, "POST", PUSH, request, officer=lee), 422)
        assert body["error"] == "unprocessable" and set(body["details"]) == fields, (request, body)
        assert all(isinstance(m, list | dict) and m for m in body["details"].values())
    # a batch over MAX_BATCH: 413 with the envelope, nothing stored
    hub.app.config["MAX_BATCH"] = 2
    body = error_body(
        raw(live, "POST", PUSH, {"changes": [lee.create(), lee.create(), lee.create()]}, officer=lee), 413
    )
    assert body["error"] == "payload_too_large" and "at most 2" in body["message"]
    assert rows(hub.app, LogEntry) == []
    hub.app.config["MAX_BATCH"] = 500
    assert [r["status"] for r in lee.push(*[lee.create() for _ in range(3)])][-1] == "held"  # 1-3 were never sent


def test_a_body_over_max_content_length_is_413(app: Flask, hub: Hub, live: str) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1000
    hub.agency("SPD")
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))  # a small body still passes
    token = hub.token("SPD", "Dep. Kim")
    big = {"token": token, "public_key": SigningKey.generate().verify_key.to_text(), "pad": "x" * 2000}
    body = error_body(raw(live, "POST", ENROLL, big), 413)
    assert body["error"] in {"payload_too_large", "request_entity_too_large"}
    # a signed push over the limit
    wires = [lee.create(values={"kind": "vehicle", "name": "Unit", "notes": "n" * 400}) for _ in range(3)]
    data = json.dumps({"changes": wires}).encode()
    assert len(data) > 1000
    error_body(raw(live, "POST", PUSH, data=data, headers=signed_headers(lee, "POST", PUSH, data)), 413)
    # small on the wire, large once inflated
    packed = gzip.compress(data)
    assert len(packed) < 1000
    headers = {**signed_headers(lee, "POST", PUSH, data), "Content-Encoding": "gzip"}
    error_body(raw(live, "POST", PUSH, data=packed, headers=headers), 413)
    assert rows(hub.app, LogEntry) == [] and len(rows(hub.app, Device)) == 1
    # the token was not spent: the same enrollment, small enough, goes through
    del big["pad"]
    assert raw(live, "POST", ENROLL, big).status_code == 201


def test_health_openapi_registry_and_unknown_routes(hub: Hub, live: str) -> None:
    hub.agency("SPD")
    health = raw(live, "GET", "/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}
    # the OpenAPI document is valid OpenAPI 3.0 and names every route
    response = raw(live, "GET", "/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"] == "3.0.3"
    errors = [str(e) for e in OPENAPI_30_VALIDATOR.iter_errors(spec)]
    assert errors == []
    assert not OPENAPI_30_VALIDATOR.is_valid({**spec, "paths": {"/x": {"get": {}}}})  # the check can fail
    paths = {
        "/api/v1/enroll": "post",
        "/api/v1/sync/push": "post",
        "/api/v1/sync/pull": "get",
        "/api/v1/registry": "get",
        "/api/v1/records/{record_id}/provenance": "get",
        "/healthz": "get",
    }
    assert paths.items() <= {(p, m) for p, ops in spec["paths"].items() for m in ops}
    schemas = spec["components"]["schemas"]
    assert all(ref.removeprefix("#/components/schemas/") in schemas for ref in _refs(spec)), _refs(spec)
    assert set(schemas["Error"]["required"]) == {"error", "message", "details"}
    assert "deviceSignature" in spec["components"]["securitySchemes"]
    # the registry is public and verifies
    entries = raw(live, "GET", "/api/v1/registry").json()["entries"]
    assert "SPD" in KeyRegistry.verify(entries).agencies
    # unknown routes and methods: the same envelope
    for method, path, status in [
        ("GET", "/nowhere", 404),
        ("GET", "/api/v1/nowhere", 404),
        ("POST", "/api/v1/registry", 405),
        ("GET", PUSH, 405),
    ]:
        body = error_body(raw(live, method, path), status)
        assert body["error"] == ("not_found" if status == 404 else "method_not_allowed"), (path, body)
