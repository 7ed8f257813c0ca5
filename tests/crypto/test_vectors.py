"""Known-answer vectors (tests/data/crypto_vectors.json) and the provider seam.

The Ed25519 vectors are RFC 8032's; the fieldsync vectors were generated once
and pin the exact bytes fieldsync signs, so any replacement provider (a FIPS
module) or a second implementation can be checked against them.
"""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crypto import (
    NaclProvider,
    SigningKey,
    VerificationError,
    VerifyKey,
    b64d,
    change_hash,
    field_digest,
    get_provider,
    issue_certificate,
    set_provider,
    sign_change,
    signing_bytes,
    verify_certificate,
    verify_change,
    withhold,
)

from .helpers import HEADER_KEYS, b64url, build_change, oracle_change_signing_bytes, seed

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "crypto_vectors.json").read_text("utf-8"))


def _ids(group: str) -> list[str]:
    return [v["name"] for v in VECTORS[group]]


def test_every_vector_says_where_it_comes_from() -> None:
    groups = [g for g in VECTORS if isinstance(VECTORS[g], list)]
    assert set(groups) >= {"ed25519", "change", "certificate"}
    for group in groups:
        for vector in VECTORS[group]:
            assert vector["origin"].strip(), vector["name"]
    assert [v["name"] for v in VECTORS["ed25519"]] == [f"RFC 8032 section 7.1 TEST {i}" for i in (1, 2, 3)]


# -- RFC 8032 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("vector", VECTORS["ed25519"], ids=_ids("ed25519"))
def test_rfc8032_through_the_keys(vector: dict[str, str]) -> None:
    key = SigningKey(bytes.fromhex(vector["secret_key"]))
    message = bytes.fromhex(vector["message"])
    signature = bytes.fromhex(vector["signature"])
    assert bytes(key.verify_key) == bytes.fromhex(vector["public_key"])
    assert key.sign(message) == signature
    public = VerifyKey(bytes.fromhex(vector["public_key"]))
    assert public.verify(message, signature) == message
    with pytest.raises(VerificationError):
        public.verify(message + b"\x00", signature)
    with pytest.raises(VerificationError):
        public.verify(message, signature[:32] + bytes([signature[32] ^ 1]) + signature[33:])


@pytest.mark.parametrize("vector", VECTORS["ed25519"], ids=_ids("ed25519"))
def test_rfc8032_through_the_provider(vector: dict[str, str]) -> None:
    provider = get_provider()
    private, public = provider.expand(bytes.fromhex(vector["secret_key"]))
    assert public == bytes.fromhex(vector["public_key"])
    assert provider.sign(private, bytes.fromhex(vector["message"])) == bytes.fromhex(vector["signature"])
    provider.verify(public, bytes.fromhex(vector["message"]), bytes.fromhex(vector["signature"]))


def test_provider_hash_is_sha256() -> None:
    # FIPS 180-4 SHA-256 of "abc".
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert get_provider().hash(b"abc").hex() == expected


# -- fieldsync change ---------------------------------------------------------------------------------
@pytest.mark.parametrize("vector", VECTORS["change"], ids=_ids("change"))
def test_change_vector(vector: dict[str, Any]) -> None:
    key = SigningKey(bytes.fromhex(vector["seed"]))
    assert key.verify_key.to_text() == vector["public_key"]
    change = copy.deepcopy(vector["change"])

    digests = {name: field_digest(e["salt"], e["value"]) for name, e in change["fields"].items()}
    assert digests == vector["field_digests"]

    payload = {name: change[name] for name in HEADER_KEYS} | {"fields": digests}
    expected_bytes = bytes.fromhex(vector["signing_bytes"])
    assert signing_bytes("change", payload) == expected_bytes
    assert oracle_change_signing_bytes(change) == expected_bytes  # JCS by an independent implementation
    assert change_hash(change) == vector["change_hash"] == b64url(hashlib.sha256(expected_bytes).digest())

    signed = sign_change(change, key)
    assert signed["signature"] == vector["signature"]
    assert key.verify_key.verify(expected_bytes, b64d(vector["signature"]))

    wire = {**vector["change"], "signature": vector["signature"]}
    public = VerifyKey.from_text(vector["public_key"])
    assert verify_change(wire, public).hash == vector["change_hash"]
    hidden = withhold(wire, set(vector["withhold"]))
    assert all(set(hidden["fields"][name]) == {"digest"} for name in vector["withhold"])
    assert verify_change(hidden, public).hash == vector["change_hash"]


# -- fieldsync certificate -------------------------------------------------------------------------------
def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@pytest.mark.parametrize("vector", VECTORS["certificate"], ids=_ids("certificate"))
def test_certificate_vector(vector: dict[str, Any]) -> None:
    agency = SigningKey(bytes.fromhex(vector["agency_seed"]))
    device = SigningKey(bytes.fromhex(vector["device_seed"]))
    inputs = vector["inputs"]
    cert = issue_certificate(
        agency,
        device_id=inputs["device_id"],
        device_key=device.verify_key,
        agency=inputs["agency"],
        officer=inputs["officer"],
        not_before=_parse(inputs["not_before"]),
        not_after=_parse(inputs["not_after"]),
    )
    assert cert == vector["certificate"]
    body = {name: value for name, value in cert.items() if name != "signature"}
    assert signing_bytes("certificate", body) == bytes.fromhex(vector["signing_bytes"])
    assert (
        verify_certificate(vector["certificate"], agency.verify_key, at=_parse(inputs["not_before"])).officer
        == (inputs["officer"])
    )


# -- the provider seam ---------------------------------------------------------------------------------
class RecordingProvider:
    """Delegates to PyNaCl and records every call, so the test sees what went through it."""

    name = "recording"

    def __init__(self) -> None:
        self.inner = NaclProvider()
        self.calls: list[str] = []

    def generate_seed(self) -> bytes:
        self.calls.append("generate_seed")
        return self.inner.generate_seed()

    def expand(self, seed: bytes) -> tuple[bytes, bytes]:
        self.calls.append("expand")
        return self.inner.expand(seed)

    def sign(self, private: bytes, message: bytes) -> bytes:
        self.calls.append("sign")
        return self.inner.sign(private, message)

    def verify(self, public: bytes, message: bytes, signature: bytes) -> None:
        self.calls.append("verify")
        self.inner.verify(public, message, signature)

    def hash(self, data: bytes) -> bytes:
        self.calls.append("hash")
        return self.inner.hash(data)


class RefusingProvider(RecordingProvider):
    """Refuses every signature: nothing may verify while it is installed."""

    def verify(self, public: bytes, message: bytes, signature: bytes) -> None:
        self.calls.append("verify")
        raise VerificationError("refused by the test provider")


@pytest.fixture
def install():
    installed: list[object] = []

    def _install(provider: object) -> object:
        previous = set_provider(provider)  # type: ignore[arg-type]
        installed.append(previous)
        return previous

    yield _install
    for previous in reversed(installed):
        set_provider(previous)  # type: ignore[arg-type]


def test_set_provider_returns_the_previous_one(install) -> None:
    original = get_provider()
    stub = RecordingProvider()
    assert install(stub) is original
    assert get_provider() is stub


def test_keys_and_recipes_go_through_the_installed_provider(install) -> None:
    stub = RecordingProvider()
    install(stub)
    key = SigningKey(seed(1))
    assert stub.calls == ["expand"]
    signature = key.sign(b"m")
    assert stub.calls[-1] == "sign"
    key.verify_key.verify(b"m", signature)
    assert stub.calls[-1] == "verify"
    SigningKey.generate()
    assert "generate_seed" in stub.calls

    stub.calls.clear()
    signed = sign_change(build_change(), key)
    verify_change(signed, key.verify_key)
    assert {"sign", "verify", "hash"} <= set(stub.calls)


def test_a_refusing_provider_makes_valid_signatures_fail(install) -> None:
    key = SigningKey(seed(1))
    signed = sign_change(build_change(), key)
    verify_change(signed, key.verify_key)  # valid under the real provider
    stub = RefusingProvider()
    install(stub)
    with pytest.raises(VerificationError, match="refused by the test provider"):
        verify_change(signed, key.verify_key)
    with pytest.raises(VerificationError):
        key.verify_key.verify(b"m", key.sign(b"m"))
    assert "verify" in stub.calls


def test_provider_is_restored_after_the_fixture() -> None:
    assert isinstance(get_provider(), NaclProvider)
