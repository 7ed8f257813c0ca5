"""Signed checkpoints of the hub's change log, and signed device requests.

Rules this module owns:

- A checkpoint states the hub's log size and head hash at a moment, signed by
  the hub key under the ``checkpoint`` domain. A client keeps the newest one
  it has seen and compares every later one with it (sync/, not here).
- A device request signature covers method, path, the SHA-256 of the body,
  the device id, a time and a nonce, under the ``request`` domain; the hub
  decides what is stale or replayed, this module only proves who sent it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .canonical import signing_bytes
from .clock import format_time, parse_time
from .encoding import b64d, b64e
from .errors import CanonicalError, KeyFormatError, VerificationError
from .keys import SigningKey, VerifyKey
from .provider import SIGNATURE_BYTES, get_provider


@dataclass(frozen=True, slots=True)
class Checkpoint:
    size: int
    head: str | None
    at: datetime


def sign_checkpoint(key: SigningKey, *, size: int, head: str | None, at: datetime) -> dict[str, Any]:
    body = {"type": "checkpoint", "size": size, "head": head, "at": format_time(at)}
    return {**body, "signature": b64e(key.sign(signing_bytes("checkpoint", body)))}


def verify_checkpoint(cp: Any, hub_key: VerifyKey) -> Checkpoint:
    try:
        body = {k: cp[k] for k in ("type", "size", "head", "at")}
        if body["type"] != "checkpoint" or not isinstance(body["size"], int) or body["size"] < 0:
            raise VerificationError("not a checkpoint")
        hub_key.verify(signing_bytes("checkpoint", body), b64d(cp.get("signature", ""), length=SIGNATURE_BYTES))
        return Checkpoint(body["size"], body["head"], parse_time(body["at"]))
    except (KeyError, TypeError, KeyFormatError, CanonicalError) as exc:
        raise VerificationError(f"malformed checkpoint: {exc}", subject="checkpoint") from None
    except VerificationError as exc:
        raise VerificationError(exc.reason, subject="checkpoint") from None


def body_digest(body: bytes) -> str:
    return b64e(get_provider().hash(body))


def _request_body(device: str, method: str, path: str, body: bytes, at: str, nonce: str) -> dict[str, str]:
    return {
        "device": device,
        "method": method.upper(),
        "path": path,
        "body": body_digest(body),
        "time": at,
        "nonce": nonce,
    }


@dataclass(frozen=True, slots=True)
class SignedRequest:
    device: str
    at: datetime
    nonce: str


def sign_request(
    key: SigningKey, *, device: str, method: str, path: str, body: bytes, at: datetime, nonce: str
) -> dict[str, str]:
    """Headers that prove the device sent this request."""
    stamp = format_time(at)
    message = signing_bytes("request", _request_body(device, method, path, body, stamp, nonce))
    return {
        "X-Fieldsync-Device": device,
        "X-Fieldsync-Time": stamp,
        "X-Fieldsync-Nonce": nonce,
        "X-Fieldsync-Signature": b64e(key.sign(message)),
    }


def verify_request(headers: Any, *, method: str, path: str, body: bytes, key: VerifyKey) -> SignedRequest:
    try:
        device = headers["X-Fieldsync-Device"]
        stamp = headers["X-Fieldsync-Time"]
        nonce = headers["X-Fieldsync-Nonce"]
        signature = b64d(headers["X-Fieldsync-Signature"], length=SIGNATURE_BYTES, what="request signature")
        at = parse_time(stamp, what="request time")
        key.verify(signing_bytes("request", _request_body(device, method, path, body, stamp, nonce)), signature)
    except (KeyError, TypeError) as exc:
        raise VerificationError(f"request is not signed (missing {exc})", subject="request") from None
    except (KeyFormatError, CanonicalError) as exc:
        raise VerificationError(str(exc), subject="request") from None
    except VerificationError as exc:
        raise VerificationError(exc.reason, subject="request") from None
    return SignedRequest(device, at, nonce)
