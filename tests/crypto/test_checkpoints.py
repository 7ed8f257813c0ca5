"""crypto.checkpoints: signed log checkpoints and signed device requests."""

from __future__ import annotations

import copy
import hashlib

import pytest

from crypto import (
    Checkpoint,
    SignedRequest,
    SigningKey,
    VerificationError,
    body_digest,
    sign_checkpoint,
    sign_request,
    signing_bytes,
    verify_checkpoint,
    verify_request,
)

from .helpers import DAY, SECOND, T0, b64url, seed, string_edits

HUB = SigningKey(seed(0xF0))
OTHER = SigningKey(seed(0xF1))
DEVICE = SigningKey(seed(0x11))
HEAD = b64url(hashlib.sha256(b"log head").digest())
CHECKPOINT = sign_checkpoint(HUB, size=1234, head=HEAD, at=T0)


@pytest.fixture
def cp() -> dict:
    return copy.deepcopy(CHECKPOINT)


# -- checkpoints -----------------------------------------------------------------------------------
def test_checkpoint_round_trip(cp: dict) -> None:
    assert verify_checkpoint(cp, HUB.verify_key) == Checkpoint(1234, HEAD, T0)


def test_empty_log_checkpoint() -> None:
    empty = sign_checkpoint(HUB, size=0, head=None, at=T0)
    assert verify_checkpoint(empty, HUB.verify_key) == Checkpoint(0, None, T0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("size", 1235),
        ("size", 1233),
        ("size", 0),
        ("size", "1234"),
        ("head", b64url(hashlib.sha256(b"another head").digest())),
        ("head", None),
        ("at", "2026-01-01T00:00:01Z"),
        ("type", "checkpoint2"),
    ],
)
def test_edited_checkpoint_fails(cp: dict, name: str, value: object) -> None:
    cp[name] = value
    with pytest.raises(VerificationError):
        verify_checkpoint(cp, HUB.verify_key)


def test_every_single_character_edit_of_a_checkpoint_fails(cp: dict) -> None:
    survivors = []
    for what, edited in string_edits(cp):
        try:
            verify_checkpoint(edited, HUB.verify_key)
        except VerificationError:
            continue
        survivors.append(what)
    assert survivors == []


def test_checkpoint_with_wrong_key_fails(cp: dict) -> None:
    with pytest.raises(VerificationError) as info:
        verify_checkpoint(cp, OTHER.verify_key)
    assert info.value.subject == "checkpoint"


def test_hub_signed_body_of_another_type_is_not_a_checkpoint() -> None:
    body = {"type": "conflict-resolution", "size": 1234, "head": HEAD, "at": "2026-01-01T00:00:00Z"}
    signed = {**body, "signature": b64url(HUB.sign(signing_bytes("checkpoint", body)))}
    with pytest.raises(VerificationError):
        verify_checkpoint(signed, HUB.verify_key)


@pytest.mark.parametrize("size", [-1, 1.5, None])
def test_checkpoint_size_must_be_a_count(size: object) -> None:
    bad = sign_checkpoint(HUB, size=size, head=HEAD, at=T0)  # type: ignore[arg-type]
    with pytest.raises(VerificationError):
        verify_checkpoint(bad, HUB.verify_key)


@pytest.mark.parametrize(
    "garbage",
    [None, "checkpoint", 7, [], {}, {"type": "checkpoint", "size": 1, "head": None}],
)
def test_checkpoint_garbage_raises_verification_error(garbage: object) -> None:
    with pytest.raises(VerificationError):
        verify_checkpoint(garbage, HUB.verify_key)


@pytest.mark.parametrize("signature", [None, 7, "", "A" * 86, "sig"])
def test_checkpoint_bad_signature_raises_verification_error(cp: dict, signature: object) -> None:
    cp["signature"] = signature
    with pytest.raises(VerificationError):
        verify_checkpoint(cp, HUB.verify_key)


def test_checkpoint_without_signature_fails(cp: dict) -> None:
    del cp["signature"]
    with pytest.raises(VerificationError):
        verify_checkpoint(cp, HUB.verify_key)


# -- requests ---------------------------------------------------------------------------------------
METHOD, PATH, BODY, NONCE = "POST", "/v1/changes", b'{"changes":[]}', "n-7f3a9c"
AT = T0 + 5 * DAY
HEADERS = sign_request(DEVICE, device="dev-7", method=METHOD, path=PATH, body=BODY, at=AT, nonce=NONCE)


def _verify(headers: object, *, method: str = METHOD, path: str = PATH, body: bytes = BODY) -> SignedRequest:
    return verify_request(headers, method=method, path=path, body=body, key=DEVICE.verify_key)


def test_request_round_trip() -> None:
    assert _verify(dict(HEADERS)) == SignedRequest("dev-7", AT, NONCE)
    assert HEADERS["X-Fieldsync-Time"] == "2026-01-06T00:00:00Z"


def test_body_digest_is_sha256() -> None:
    assert body_digest(BODY) == b64url(hashlib.sha256(BODY).digest())
    assert body_digest(b"") == b64url(hashlib.sha256(b"").digest())


@pytest.mark.parametrize(
    "change",
    [
        {"method": "PUT"},
        {"method": "GET"},
        {"path": "/v1/changes/"},
        {"path": "/v1/change"},
        {"path": "/v1/changes?since=1"},
        {"body": BODY + b" "},
        {"body": b""},
        {"body": b'{"changes":[{}]}'},
    ],
)
def test_changed_request_fails(change: dict) -> None:
    with pytest.raises(VerificationError) as info:
        _verify(dict(HEADERS), **change)
    assert info.value.subject == "request"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Fieldsync-Time", "2026-01-06T00:00:01Z"),
        ("X-Fieldsync-Nonce", "n-7f3a9d"),
        ("X-Fieldsync-Nonce", ""),
        ("X-Fieldsync-Device", "dev-8"),
        ("X-Fieldsync-Signature", "A" * 86),
    ],
)
def test_changed_header_fails(header: str, value: str) -> None:
    with pytest.raises(VerificationError):
        _verify({**HEADERS, header: value})


def test_every_single_character_edit_of_a_header_fails() -> None:
    survivors = []
    for what, edited in string_edits(dict(HEADERS), keys=False):
        try:
            _verify(edited)
        except VerificationError:
            continue
        survivors.append(what)
    assert survivors == []


def test_request_from_another_device_key_fails() -> None:
    with pytest.raises(VerificationError):
        verify_request(dict(HEADERS), method=METHOD, path=PATH, body=BODY, key=OTHER.verify_key)


def test_request_signed_a_moment_later_differs() -> None:
    later = sign_request(DEVICE, device="dev-7", method=METHOD, path=PATH, body=BODY, at=AT + SECOND, nonce=NONCE)
    assert later["X-Fieldsync-Signature"] != HEADERS["X-Fieldsync-Signature"]
    assert _verify(later).at == AT + SECOND


@pytest.mark.parametrize("missing", sorted(HEADERS))
def test_missing_header_raises_verification_error(missing: str) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != missing}
    with pytest.raises(VerificationError, match="not signed"):
        _verify(headers)


@pytest.mark.parametrize("headers", [None, {}, [], "headers", 7])
def test_no_headers_raises_verification_error(headers: object) -> None:
    with pytest.raises(VerificationError):
        _verify(headers)


@pytest.mark.parametrize("stamp", ["2026-01-06 00:00:00Z", "2026-01-06T00:00:00+00:00", "yesterday", ""])
def test_malformed_time_header_raises_verification_error(stamp: str) -> None:
    with pytest.raises(VerificationError):
        _verify({**HEADERS, "X-Fieldsync-Time": stamp})


@pytest.mark.parametrize("stamp", ["2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z"])
def test_impossible_time_header_raises_verification_error(stamp: str) -> None:
    with pytest.raises(VerificationError):
        _verify({**HEADERS, "X-Fieldsync-Time": stamp})
