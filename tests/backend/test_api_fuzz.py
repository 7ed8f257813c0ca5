"""schemathesis against the hub's own OpenAPI document, over real HTTP on SQLite and PostgreSQL.

Every operation of ``GET /api/v1/openapi.json`` gets generated requests, both
fitting the schema (positive) and not (negative), in two ways:

- **as sent**: no signature, or garbage in the signature headers (random
  values, an enrolled device's id with a bogus signature);
- **signed** by an enrolled device's key exactly as the laptop signs
  (crypto.sign_request over method, path with query, SHA-256 of the exact body
  bytes, time, nonce), so generation gets past authentication into the
  validation and merge code.

Each answer must pass schemathesis's ``not_a_server_error`` (no 5xx),
``status_code_conformance``, ``content_type_conformance`` and
``response_schema_conformance``: a status, type or body the document does not
declare is a failure. Runs are derandomized (repeatable in CI) and bounded.

Also here: gzip request bodies sent chunked (no Content-Length), which the
hub once read as empty (backend/compression.py).
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend.api.text import MESSAGE
from backend.models import AuditEntry, Device, LogEntry
from crypto import b64e, sign_request

from .helpers import RESOURCE, Hub, Officer, follow, rows, sign_as, signed_headers

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
OPERATIONS = {
    ("POST", "/api/v1/enroll"),
    ("POST", "/api/v1/sync/push"),
    ("GET", "/api/v1/sync/pull"),
    ("GET", "/api/v1/sync/feed"),
    ("GET", "/api/v1/registry"),
    ("GET", "/api/v1/records/{record_id}/provenance"),
    ("GET", "/healthz"),
}
EXAMPLES = 12  # per operation, generation mode and auth mode: ~600 requests per database
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # the hub is shared by every example on purpose (one enrolled device, one database), and
    # generated bodies are large by design
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def enrolled(hub: Hub, live: str) -> Officer:
    hub.agency("SPD")
    hub.agency("CSO")
    hub.agreement("SPD", "CSO", ["resources"], withhold=["notes"], write=["status"])
    lee = Officer(live, hub.token("SPD", "Sgt. Lee"))
    # a few records on the hub, so pull and provenance have something to answer with
    lee.push(lee.create(), lee.create("contacts", {"name": "Dana Cruz", "role": "liaison"}))
    return lee


@pytest.fixture
def api(live: str) -> Any:
    return schemathesis.openapi.from_url(f"{live}/api/v1/openapi.json")


def _send(live: str, case: Any, headers: dict[str, str], session: requests.Session) -> requests.Response:
    """Send ``case`` as schemathesis serializes it, with ``headers`` added last."""
    kwargs = case.as_transport_kwargs(base_url=live)
    kwargs.pop("timeout", None)
    prepared = session.prepare_request(requests.Request(**_request_args(kwargs)))
    prepared.headers.update(headers)
    return session.send(prepared, timeout=(5, 30), allow_redirects=False)


def _request_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    allowed = {"method", "url", "headers", "params", "data", "json", "files", "cookies", "auth"}
    return {k: v for k, v in kwargs.items() if k in allowed}


def _signed(
    officer: Officer, live: str, case: Any, session: requests.Session, extra: dict[str, str]
) -> requests.Response:
    """Send ``case`` signed by ``officer``'s device key over the exact bytes and path on the wire."""
    kwargs = case.as_transport_kwargs(base_url=live)
    prepared = session.prepare_request(requests.Request(**_request_args(kwargs)))
    body = prepared.body or b""
    body = body.encode() if isinstance(body, str) else body
    split = urlsplit(prepared.url or "")
    # the hub verifies request.path (percent-decoded) plus the raw query string
    path = unquote(split.path, errors="replace") + (f"?{split.query}" if split.query else "")
    prepared.headers.update(signed_headers(officer, prepared.method or "GET", path, body))
    prepared.headers.update(extra)
    return session.send(prepared, timeout=(5, 30), allow_redirects=False)


def garbage_auth(device_id: str) -> st.SearchStrategy[dict[str, str]]:
    text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
    stamp = st.sampled_from(["", "2026-13-45T99:99:99Z", "yesterday", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")])
    return st.one_of(
        st.just({}),
        st.fixed_dictionaries(
            {"X-Fieldsync-Device": text},
            optional={"X-Fieldsync-Time": stamp, "X-Fieldsync-Nonce": text, "X-Fieldsync-Signature": text},
        ),
        # an enrolled device's id with a signature that is not its key's
        st.fixed_dictionaries(
            {
                "X-Fieldsync-Device": st.just(device_id),
                "X-Fieldsync-Time": stamp,
                "X-Fieldsync-Nonce": st.just(b64e(os.urandom(16))),
                "X-Fieldsync-Signature": st.one_of(text, st.just(b64e(bytes(64)))),
            }
        ),
    )


# a body declared gzip that is not (every operation passes the gzip middleware, backend/compression.py)
ENCODINGS = st.sampled_from([{}, {}, {"Content-Encoding": "gzip"}])
NO_INPUT = {"GET /api/v1/registry", "GET /healthz"}  # nothing to make invalid: positive mode covers them


def _operations(api: Any, mode: GenerationMode) -> list[Any]:
    found = [result.ok() for result in api.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in found} == OPERATIONS  # every operation, none forgotten
    return [op for op in found if mode is GenerationMode.POSITIVE or op.label not in NO_INPUT]


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    send: Callable[[Any, dict[str, str]], requests.Response],
    statuses: dict[str, set[int]],
    auth: st.SearchStrategy[dict[str, str]] = st.just({}),  # noqa: B008
) -> None:
    """Generated cases of one operation, each sent by ``send`` and its answer checked against the spec."""

    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode), headers=auth, encoding=ENCODINGS)
    def run(case: Any, headers: dict[str, str], encoding: dict[str, str]) -> None:
        response = send(case, {**headers, **encoding})
        statuses.setdefault(operation.label, set()).add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_unsigned_or_with_garbage_auth_stays_in_the_spec(
    api: Any, live: str, enrolled: Officer, hub: Hub, mode: GenerationMode
) -> None:
    session = requests.Session()
    statuses: dict[str, set[int]] = {}
    for operation in _operations(api, mode):
        _fuzz(
            operation,
            mode,
            lambda case, headers: _send(live, case, headers, session),
            statuses,
            garbage_auth(enrolled.device_id),
        )
    # nothing generated without a valid signature got past authentication
    signed_only = ("POST /api/v1/sync/push", "GET /api/v1/sync/pull", "GET /api/v1/sync/feed")
    for label in (*signed_only, "GET /api/v1/records/{record_id}/provenance"):
        assert statuses[label] <= {400, 401, 404, 405, 413, 422}, (label, statuses[label])
        assert 401 in statuses[label], (label, statuses[label])
    assert len(rows(hub.app, LogEntry)) == 2  # only the fixture's two changes were ever accepted


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_signed_by_an_enrolled_device_stays_in_the_spec(
    api: Any, live: str, enrolled: Officer, mode: GenerationMode
) -> None:
    session = requests.Session()
    statuses: dict[str, set[int]] = {}
    for operation in _operations(api, mode):
        _fuzz(operation, mode, lambda case, headers: _signed(enrolled, live, case, session, headers), statuses)
    # the signature was good: generation reached validation behind authentication
    push, pull = statuses["POST /api/v1/sync/push"], statuses["GET /api/v1/sync/pull"]
    assert push & {200, 422}, push
    assert pull & {200, 422}, pull
    assert statuses["GET /api/v1/sync/feed"] & {200, 422}, statuses["GET /api/v1/sync/feed"]
    assert enrolled.push(enrolled.create())[0]["status"] == "accepted"  # the device still works afterwards


# -- validly signed changes with fuzzed values: the merge and schema code behind the signature --------

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=300),
    # what PostgreSQL cannot store, what cannot be signed, what reads differently from what it holds
    st.text(st.sampled_from("a\x00\x07\x1b\u202e\u2066\ud800\udfff\u0301\u05d0🚓"), max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
FIELD_NAMES = st.sampled_from(
    ["kind", "name", "status", "quantity", "location", "lat", "lon", "notes", "point_of_contact", "", "_deleted", "x"]
)


def test_signed_changes_with_fuzzed_values_get_a_verdict_never_a_5xx(enrolled: Officer, hub: Hub, live: str) -> None:
    verdicts: set[str] = set()

    @FUZZ
    @given(
        values=st.dictionaries(FIELD_NAMES, ODD_VALUES, max_size=4),
        collection=st.sampled_from(["resources", "contacts", "reservations", "widgets", ""]),
    )
    def run(values: dict[str, Any], collection: str) -> None:
        wire = sign_as(enrolled, collection, {**RESOURCE, **values})
        response = requests.post(
            f"{live}/api/v1/sync/push",
            data=(data := json.dumps({"changes": [wire]}).encode()),
            headers={
                "Content-Type": "application/json",
                **signed_headers(enrolled, "POST", "/api/v1/sync/push", data),
            },
            timeout=(5, 30),
        )
        assert response.status_code in {200, 422}, (response.status_code, response.text[:300])
        if response.status_code == 200:
            (result,) = response.json()["results"]
            verdicts.add(result["status"])
            if result["status"] == "rejected":
                assert result["reason"], result
            (dev,) = rows(hub.app, Device, Device.id == enrolled.device_id)
            if dev.feed_seq == wire["seq"]:
                follow(enrolled, wire)  # an authentic link advances the feed, accepted or refused

    run()
    assert "rejected" in verdicts and "accepted" in verdicts, verdicts
    assert rows(hub.app, AuditEntry, AuditEntry.action == "change.rejected")


def test_text_postgresql_cannot_store_is_refused_before_it_reaches_the_database(
    enrolled: Officer, hub: Hub, live: str
) -> None:
    """NUL (and lone surrogates) anywhere in a request once made a 500 on PostgreSQL only."""
    path = "/api/v1/sync/push"

    def push(wire: dict[str, Any]) -> requests.Response:
        data = json.dumps({"changes": [wire]}).encode()
        headers = {"Content-Type": "application/json", **signed_headers(enrolled, "POST", path, data)}
        return requests.post(live + path, data=data, headers=headers, timeout=10)

    for name in ("Unit\x0012", "Unit\ud80012"):
        wire = sign_as(enrolled, values={**RESOURCE, "name": "Unit 12"})
        wire["fields"]["name"]["value"] = name  # a surrogate cannot even be signed: the hub must look first
        response = push(wire)
        assert response.status_code == 422, response.text
        assert response.json()["details"] == {"changes.0.fields.name.value": [MESSAGE]}
    response = push({**sign_as(enrolled), "id": "x\x00y"})
    assert response.status_code == 422 and "changes.0.id" in response.json()["details"]
    # a value that can be stored but reads differently from what it holds: a per-change refusal
    response = push(wire := sign_as(enrolled, values={**RESOURCE, "name": "Unit \u202e21"}))
    (result,) = response.json()["results"]
    assert result["status"] == "rejected" and "bidi" in json.dumps(result), result
    follow(enrolled, wire)
    # a record id, a device id or a nonce with NUL: refused before any lookup
    bad = "/api/v1/records/a\x00b/provenance"
    response = requests.get(live + "/api/v1/records/a%00b/provenance", headers=signed_headers(enrolled, "GET", bad))
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    for header, value in (("X-Fieldsync-Device", "dev\x00ice"), ("X-Fieldsync-Nonce", "nonce\x00nonce")):
        status, body = _raw_get(
            live, "/api/v1/sync/pull", {**signed_headers(enrolled, "GET", "/api/v1/sync/pull"), header: value}
        )
        assert status == 401 and body["error"] == "unauthorized", (header, body)
    assert enrolled.push(enrolled.create())[0]["status"] == "accepted"  # and the device's feed goes on
    assert len(rows(hub.app, LogEntry)) == 3


def _raw_get(live: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """GET with header values sent as given (requests refuses NUL in a header)."""
    split = urlsplit(live)
    head = [f"GET {path} HTTP/1.1", f"Host: {split.netloc}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((split.hostname, split.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload)


# -- gzip bodies without Content-Length ------------------------------------------------------------


def _chunked(live: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST ``body`` with Transfer-Encoding: chunked (no Content-Length), on a raw socket."""
    split = urlsplit(live)
    head = [f"POST {path} HTTP/1.1", f"Host: {split.netloc}", "Transfer-Encoding: chunked", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 700]), body[i : i + 700]) for i in range(0, len(body), 700))
    with socket.create_connection((split.hostname, split.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + chunks + b"0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload)


def test_a_chunked_gzip_body_is_inflated_not_read_as_empty(app: Any, enrolled: Officer, hub: Hub, live: str) -> None:
    path = "/api/v1/sync/push"
    wires = [enrolled.create(values={**RESOURCE, "notes": "n" * 300}) for _ in range(3)]
    data = json.dumps({"changes": wires}).encode()
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    status, body = _chunked(
        live, path, gzip.compress(data), {**headers, **signed_headers(enrolled, "POST", path, data)}
    )
    assert status == 200, body
    assert [r["status"] for r in body["results"]] == ["accepted"] * 3
    assert len(rows(hub.app, LogEntry)) == 5
    # the size limits hold without a Content-Length too: compressed and once inflated
    app.config["MAX_CONTENT_LENGTH"] = 1000
    big = enrolled.create(values={**RESOURCE, "notes": "m" * 3000})
    data = json.dumps({"changes": [big]}).encode()
    signed = {**headers, **signed_headers(enrolled, "POST", path, data)}
    status, body = _chunked(live, path, gzip.compress(data), signed)
    assert status == 413 and body["error"] == "payload_too_large", body
    noise = os.urandom(4000)  # incompressible: over the limit on the wire already
    status, body = _chunked(
        live, path, gzip.compress(noise), {**headers, **signed_headers(enrolled, "POST", path, noise)}
    )
    assert status == 413, body
    # not gzip at all, or truncated: a clear 400, nothing stored
    for bad in (b"not gzip", gzip.compress(data)[:-12], b""):
        status, body = _chunked(live, path, bad, {**headers, **signed_headers(enrolled, "POST", path, data)})
        assert status == 400 and "gzip" in body["message"], (bad[:20], body)
    assert len(rows(hub.app, LogEntry)) == 5
    # a chunked body without gzip is read as it is (werkzeug's own handling)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024
    data = json.dumps({"changes": [big]}).encode()  # refused above before it was read: now it goes through
    status, body = _chunked(
        live, path, data, {"Content-Type": "application/json", **signed_headers(enrolled, "POST", path, data)}
    )
    assert status == 200 and body["results"][0]["status"] == "accepted", body


def test_a_stale_signature_or_an_unknown_device_is_401(enrolled: Officer, live: str) -> None:
    """What the garbage-auth mode relies on: a well-formed but stale signature, or another device id, is refused."""
    path = "/api/v1/sync/pull"
    stale = sign_request(
        enrolled.key,
        device=enrolled.device_id,
        method="GET",
        path=path,
        body=b"",
        at=datetime.now(UTC) - timedelta(hours=2),
        nonce=b64e(os.urandom(16)),
    )
    assert requests.get(live + path, headers=stale, timeout=10).status_code == 401
    unknown = {**signed_headers(enrolled, "GET", path), "X-Fieldsync-Device": str(uuid.uuid4())}
    assert requests.get(live + path, headers=unknown, timeout=10).status_code == 401
