"""HTTP transport to the hub: signed requests, explicit timeouts, classified failures.

Rules this module owns:

- Every request has a connect and a read timeout (requests has none by
  default): (5 s, 30 s) unless told otherwise.
- Sync requests are signed with the device key (crypto.sign_request) over the
  exact path with its query string and the exact body bytes sent.
- Request bodies over 1 KiB travel gzipped; responses are accepted gzipped
  (requests inflates them).
- A network error, a timeout or a 5xx is :class:`HubUnavailable` (retry
  later); a 4xx is :class:`HubRefused` with the hub's error envelope.
"""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import requests

from crypto import SigningKey, b64e, sign_request

from .errors import HubRefused, HubUnavailable

DEFAULT_TIMEOUT = (5.0, 30.0)
GZIP_OVER = 1024  # request bodies at least this long travel gzipped


class HubClient:
    def __init__(
        self,
        base_url: str,
        *,
        device_id: str | None = None,
        key: SigningKey | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id, self.key, self.timeout = device_id, key, timeout
        self.session = session or requests.Session()

    # -- API --------------------------------------------------------------
    def enroll(self, token: str, public_key: str) -> dict[str, Any]:
        return self.request("POST", "/api/v1/enroll", {"token": token, "public_key": public_key}, signed=False)

    def push(self, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.request("POST", "/api/v1/sync/push", {"changes": changes})["results"]  # type: ignore[no-any-return]

    def pull(self, cursor: int, limit: int | None = None) -> dict[str, Any]:
        params = {"cursor": cursor} | ({"limit": limit} if limit else {})
        return self.request("GET", "/api/v1/sync/pull", params=params)

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
    ) -> Any:
        if params:
            path = f"{path}?{urlencode(params)}"
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        sent = {"Content-Type": "application/json"} if body is not None else {}
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
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise HubUnavailable(f"hub unreachable at {self.base_url}: {type(exc).__name__}") from None
        return self._answer(response)

    def sign(self, method: str, path: str, data: bytes) -> dict[str, str]:
        if self.key is None or self.device_id is None:
            raise HubRefused(401, "not_enrolled", "this laptop is not enrolled yet")
        return sign_request(
            self.key,
            device=self.device_id,
            method=method,
            path=path,
            body=data,
            at=datetime.now(UTC),
            nonce=b64e(os.urandom(16)),
        )

    @staticmethod
    def _answer(response: requests.Response) -> Any:
        if response.status_code >= 500:
            raise HubUnavailable(f"hub error {response.status_code}")
        try:
            payload = response.json()
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
