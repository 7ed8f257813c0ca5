"""HTTP transport to the hub: signed requests, explicit timeouts, classified failures.

Rules this module owns:

- Every request has a connect and a read timeout (requests has none by
  default): (5 s, 30 s) unless told otherwise, or set on the laptop with
  ``FIELDSYNC_CONNECT_TIMEOUT`` / ``FIELDSYNC_READ_TIMEOUT`` (field_client.settings). A hub
  that stops answering mid-request ends in the read timeout, never a hang.
- Sync requests are signed with the device key (crypto.sign_request) over the
  exact path with its query string and the exact body bytes sent.
- Requests are signed in *hub time*: laptop time plus the offset learned from
  the hub's ``X-Fieldsync-Hub-Time`` header, which every API answer carries.
  A request refused as stale (401, ``details.reason = clock_skew``) is signed
  again with a fresh nonce and the new offset, once. An offset larger than
  ``max_offset`` (the laptop's ``FIELDSYNC_MAX_CLOCK_DRIFT``, 24 h) is not
  adopted: the laptop's clock is wrong and the officer is told so
  (:class:`HubRefused`, code ``clock_skew``). The hub's freshness window and
  nonce check are unchanged: this only lets a laptop hours off reach them.
- Request bodies over 1 KiB travel gzipped; responses are accepted gzipped
  (requests inflates them).
- A network error (refused, reset, a response cut short), a timeout or a 5xx
  is :class:`HubUnavailable` (retry later), with the hub's message when it
  sent one; a 4xx is :class:`HubRefused` with the hub's error envelope.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests

from crypto import CryptoError, SigningKey, b64e, parse_time, sign_request

from . import settings
from .decoding import decode_json
from .errors import HubRefused, HubUnavailable

DEFAULT_TIMEOUT = (float(settings.DEFAULTS["CONNECT_TIMEOUT"]), float(settings.DEFAULTS["READ_TIMEOUT"]))
GZIP_OVER = 1024  # request bodies at least this long travel gzipped
HUB_TIME_HEADER = "X-Fieldsync-Hub-Time"
MAX_OFFSET = float(settings.DEFAULTS["MAX_CLOCK_DRIFT"])  # seconds; the laptop sets it (agent.client_for)
# a network failure, or an answer cut short: the hub may or may not have committed; retrying is safe
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def _describe_offset(seconds: float) -> str:
    whole = int(abs(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{days} d {hours} h" if days else f"{hours} h {rest // 60} min"
    return f"{text} {'behind' if seconds > 0 else 'ahead of'}"


class HubClient:
    def __init__(
        self,
        base_url: str,
        *,
        device_id: str | None = None,
        key: SigningKey | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        clock_offset: float = 0.0,
        max_offset: float = MAX_OFFSET,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id, self.key, self.timeout = device_id, key, timeout
        self.session = session or requests.Session()
        # seconds to add to this laptop's clock to get the hub's (learned from its answers)
        self.clock_offset = clock_offset if abs(clock_offset) <= max_offset else 0.0
        self.max_offset = max_offset
        self._now = now

    # -- API --------------------------------------------------------------
    def enroll(self, token: str, public_key: str) -> dict[str, Any]:
        return self.request("POST", "/api/v1/enroll", {"token": token, "public_key": public_key}, signed=False)

    def push(self, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.request("POST", "/api/v1/sync/push", {"changes": changes})["results"]  # type: ignore[no-any-return]

    def pull(self, cursor: int, limit: int | None = None) -> dict[str, Any]:
        return self.pull_page(cursor, limit)[0]

    def pull_page(self, cursor: int, limit: int | None = None) -> tuple[dict[str, Any], bytes]:
        """:meth:`pull`, and the answer's JSON bytes as they came (field_client.verifier)."""
        params = {"cursor": cursor} | ({"limit": limit} if limit else {})
        answer, body = self.request("GET", "/api/v1/sync/pull", params=params, raw=True)
        return answer, body

    def feed(self, *, after: int = 0, since: int = 0) -> dict[str, Any]:
        """This device's own feed as the hub holds it (links after ``after``), the head of the hub's
        log at size ``since``, and a signed checkpoint."""
        return self.request("GET", "/api/v1/sync/feed", params={"after": after, "since": since})

    def registry(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/v1/registry", signed=False)["entries"]  # type: ignore[no-any-return]

    def provenance(self, record_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/records/{record_id}/provenance")

    # -- plumbing -----------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        signed: bool = True,
        headers: dict[str, str] | None = None,
        raw: bool = False,
    ) -> Any:
        """The hub's JSON answer (``raw``: and its bytes, as a pair)."""
        if params:
            path = f"{path}?{urlencode(params)}"
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        response = self._send(method, path, data, body is not None, signed, headers)
        if signed and response.status_code == 401 and self._skew_refusal(response):
            self._learn_offset(response, refused=True)
            response = self._send(method, path, data, body is not None, signed, headers)  # fresh time and nonce
        answer = self._answer(response)
        return (answer, response.content) if raw else answer

    def _send(
        self, method: str, path: str, data: bytes, is_json: bool, signed: bool, headers: dict[str, str] | None
    ) -> requests.Response:
        sent = {"Content-Type": "application/json"} if is_json else {}
        if signed:
            sent.update(self.sign(method, path, data))  # over the bytes before compression
        sent.update(headers or {})
        if len(data) >= GZIP_OVER:
            data = gzip.compress(data, compresslevel=5)
            sent["Content-Encoding"] = "gzip"
        try:
            response = self.session.request(
                method, self.base_url + path, data=data or None, headers=sent, timeout=self.timeout
            )
        except requests.Timeout as exc:
            what = "connect" if isinstance(exc, requests.ConnectTimeout) else "answer"
            limit = self.timeout[0] if what == "connect" else self.timeout[1]
            raise HubUnavailable(
                f"hub at {self.base_url} did not {what} within {limit:g} s (timed out); try again later"
            ) from None
        except _NETWORK_ERRORS as exc:
            raise HubUnavailable(f"hub unreachable at {self.base_url}: {type(exc).__name__}; try again later") from None
        if response.status_code != 401:
            self._learn_offset(response, refused=False)
        return response

    def sign(self, method: str, path: str, data: bytes) -> dict[str, str]:
        if self.key is None or self.device_id is None:
            raise HubRefused(401, "not_enrolled", "this laptop is not enrolled yet")
        return sign_request(
            self.key,
            device=self.device_id,
            method=method,
            path=path,
            body=data,
            at=self._now() + timedelta(seconds=self.clock_offset),
            nonce=b64e(os.urandom(16)),
        )

    # -- the hub's clock ------------------------------------------------------
    @staticmethod
    def _skew_refusal(response: requests.Response) -> bool:
        try:
            payload = response.json()
        except ValueError:
            return False
        details = payload.get("details") if isinstance(payload, dict) else None
        return isinstance(details, dict) and details.get("reason") == "clock_skew"

    def _learn_offset(self, response: requests.Response, *, refused: bool) -> None:
        """Adopt the offset the hub's time header shows. Whole seconds on the wire, so only a
        difference over 2 s is taken (a plain answer then never changes an offset that works).
        After a skew refusal, an offset over ``max_offset`` ends the sync with the reason."""
        try:
            hub_time = parse_time(response.headers.get(HUB_TIME_HEADER, ""), what="hub time")
        except CryptoError:
            return
        offset = (hub_time - self._now()).total_seconds()
        if abs(offset) > self.max_offset:
            if refused:
                raise HubRefused(
                    401,
                    "clock_skew",
                    f"this laptop's clock is {_describe_offset(offset)} the hub's, more than the "
                    f"{self.max_offset / 3600:g} h allowed: set the laptop's date and time right, then sync again",
                    {"hub_time": response.headers.get(HUB_TIME_HEADER)},
                )
            return
        if refused or abs(offset - self.clock_offset) > 2:
            self.clock_offset = offset

    @staticmethod
    def _answer(response: requests.Response) -> Any:
        if response.status_code >= 500:
            message = ""
            try:
                payload = response.json()
                message = str(payload.get("message", "")) if isinstance(payload, dict) else ""
            except ValueError:
                pass
            raise HubUnavailable(
                f"hub unavailable ({response.status_code}): {message or response.reason or 'server error'}; "
                "try again later (your changes stay queued)"
            )
        try:
            payload = decode_json(response.content)
        except ValueError:
            raise HubUnavailable(f"hub answered {response.status_code} with a body that is not JSON") from None
        if response.status_code >= 400:
            if not isinstance(payload, dict):
                payload = {}
            raise HubRefused(
                response.status_code,
                str(payload.get("error", "error")),
                str(payload.get("message", response.reason)),
                payload.get("details"),
            )
        return payload
