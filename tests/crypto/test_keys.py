"""crypto.keys: Ed25519 key values."""

from __future__ import annotations

import base64
import hashlib

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import KeyFormatError, SigningKey, VerificationError, VerifyKey, b64e

from .helpers import b64url, seed


@pytest.mark.parametrize("raw", [b"", b"\x01" * 31, b"\x01" * 33, b"\x01" * 64, "a" * 32, None, 32, [1] * 32])
def test_verify_key_checks_length_and_type(raw: object) -> None:
    with pytest.raises(KeyFormatError):
        VerifyKey(raw)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [b"", b"\x01" * 31, b"\x01" * 33, b"\x01" * 64, "a" * 32, None, 32])
def test_signing_key_checks_length_and_type(raw: object) -> None:
    with pytest.raises(KeyFormatError):
        SigningKey(raw)  # type: ignore[arg-type]


def test_bytes_gives_raw_key() -> None:
    key = SigningKey(seed(3))
    assert bytes(key) == seed(3)
    assert len(bytes(key.verify_key)) == 32
    assert bytes(VerifyKey(bytearray(bytes(key.verify_key)))) == bytes(key.verify_key)


@given(st.binary(min_size=32, max_size=32))
def test_public_key_matches_pynacl(raw_seed: bytes) -> None:
    ours = SigningKey(raw_seed)
    theirs = nacl.signing.SigningKey(raw_seed)
    assert bytes(ours.verify_key) == bytes(theirs.verify_key)
    assert ours.sign(b"message") == theirs.sign(b"message").signature


@given(st.binary(min_size=32, max_size=32))
def test_text_round_trip(raw_seed: bytes) -> None:
    public = SigningKey(raw_seed).verify_key
    text = public.to_text()
    assert text == b64url(bytes(public))
    again = VerifyKey.from_text(text)
    assert again == public
    assert bytes(again) == bytes(public)


@pytest.mark.parametrize(
    "text",
    [
        b64url(b"\x01" * 31),
        b64url(b"\x01" * 33),
        "",
        b64url(b"\x01" * 32) + "=",
        base64.b64encode(b"\xff" * 32).decode(),  # standard alphabet
        b64url(b"\x01" * 32)[:-1] + "F",  # trailing bits set: non-canonical spelling
    ],
)
def test_from_text_refuses_bad_text(text: str) -> None:
    with pytest.raises(KeyFormatError):
        VerifyKey.from_text(text)


def test_equality_and_hash() -> None:
    a, a2, b = SigningKey(seed(1)), SigningKey(seed(1)), SigningKey(seed(2))
    assert a == a2 and a is not a2
    assert a != b
    assert a.verify_key == a2.verify_key
    assert a.verify_key != b.verify_key
    assert VerifyKey(bytes(a.verify_key)) == a.verify_key
    assert a != a.verify_key and a.verify_key != a
    assert a.verify_key != bytes(a.verify_key)  # a key is not its bytes
    assert len({a.verify_key, a2.verify_key, b.verify_key}) == 2
    assert len({a, a2, b}) == 2


def test_sign_and_verify() -> None:
    key = SigningKey(seed(5))
    signature = key.sign(b"hello")
    assert len(signature) == 64
    assert key.verify_key.verify(b"hello", signature) == b"hello"
    with pytest.raises(VerificationError):
        key.verify_key.verify(b"hellp", signature)
    with pytest.raises(VerificationError):
        SigningKey(seed(6)).verify_key.verify(b"hello", signature)
    with pytest.raises(VerificationError):
        key.verify_key.verify(b"hello", signature[:63])
    with pytest.raises(VerificationError):
        key.verify_key.verify(b"hello", signature + b"\x00")
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    with pytest.raises(VerificationError):
        key.verify_key.verify(b"hello", flipped)


@pytest.mark.parametrize("public", [bytes(32), b"\x01" + bytes(31), b"\xff" * 32])
def test_degenerate_public_keys_verify_nothing(public: bytes) -> None:
    signature = SigningKey(seed(5)).sign(b"m")
    with pytest.raises(VerificationError):
        VerifyKey(public).verify(b"m", signature)
    with pytest.raises(VerificationError):
        VerifyKey(public).verify(b"m", bytes(64))


@given(st.binary(min_size=32, max_size=32))
def test_repr_never_shows_the_seed(raw_seed: bytes) -> None:
    key = SigningKey(raw_seed)
    shown = repr(key) + str(key) + f"{key!r}" + repr([key]) + repr({"k": key})
    expanded = raw_seed + bytes(key.verify_key)  # libsodium's 64-byte secret key
    for secret in (raw_seed, expanded):
        for form in (
            secret.hex(),
            secret.hex().upper(),
            b64e(secret),
            base64.b64encode(secret).decode(),
            base64.b32encode(secret).decode(),
            repr(secret),
        ):
            assert form[:16] not in shown, form
    assert key.verify_key.key_id in repr(key)


def test_key_id_is_a_prefix_of_the_public_key_fingerprint() -> None:
    public = SigningKey(seed(9)).verify_key
    assert public.key_id == b64url(hashlib.sha256(bytes(public)).digest())[:16]
    assert public.key_id != SigningKey(seed(10)).verify_key.key_id
    assert public.key_id in repr(public)


def test_generate_gives_fresh_keys() -> None:
    keys = {bytes(SigningKey.generate()) for _ in range(20)}
    assert len(keys) == 20


def test_signatures_are_deterministic() -> None:
    key = SigningKey(seed(4))
    assert key.sign(b"x") == key.sign(b"x") != key.sign(b"y")
