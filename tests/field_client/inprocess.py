"""A transport seam: requests sessions whose HTTP goes to the Flask hub in-process.

:class:`InProcessAdapter` hands each ``PreparedRequest`` to the hub's WSGI stack
(``app.test_client()``, so the gzip middleware runs as in production) with its
method, path, query string, headers and body bytes unchanged, and turns the
answer into a real :class:`requests.Response` backed by a urllib3 response, so
``Content-Encoding: gzip`` answers are inflated exactly as on the wire.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from flask import Flask
from requests.adapters import BaseAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

HUB_URL = "http://hub.test"


class InProcessAdapter(BaseAdapter):
    """Send requests to a Flask app through its test client.

    ``sent`` logs (method, path with query); ``exchanges`` logs each request with the
    timeout it was sent with and the response headers as they came off the app (before
    requests inflates a gzipped body)."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.app = app
        self.sent: list[tuple[str, str]] = []
        self.exchanges: list[dict[str, Any]] = []

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        path = url.path + (f"?{url.query}" if url.query else "")
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.sent.append((str(request.method), path))
        client = self.app.test_client(use_cookies=False)
        answer = client.open(
            path,
            method=str(request.method),
            headers=[(k, v) for k, v in request.headers.items() if k.lower() != "content-length"],
            data=body,
            base_url=f"{url.scheme}://{url.netloc}",
        )
        try:
            data = answer.get_data()
            raw = urllib3.HTTPResponse(
                body=io.BytesIO(data),
                headers=list(answer.headers.items()),
                status=answer.status_code,
                reason=answer.status.partition(" ")[2],
                preload_content=False,
                decode_content=True,
                request_method=str(request.method),
                request_url=request.url,
            )
        finally:
            answer.close()
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(raw.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = raw
        response.reason = raw.reason or ""
        response.url = request.url or ""
        response.request = request
        response.connection = self  # type: ignore[attr-defined]
        extract_cookies_to_jar(response.cookies, request, raw)
        self.exchanges.append(
            {"request": request, "timeout": timeout, "status": answer.status_code, "headers": dict(answer.headers)}
        )
        return response

    def close(self) -> None:
        pass


class FlakyAdapter(BaseAdapter):
    """Wraps another adapter; ``fail(request) -> bool`` decides which requests die as a lost link."""

    def __init__(self, inner: BaseAdapter, fail: Callable[[requests.PreparedRequest], bool]) -> None:
        super().__init__()
        self.inner, self.fail = inner, fail

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self.fail(request):
            raise requests.ConnectionError("link lost (injected by the test)")
        return self.inner.send(request, *args, **kwargs)

    def close(self) -> None:
        self.inner.close()


def hub_session(app: Flask, base_url: str = HUB_URL) -> tuple[requests.Session, InProcessAdapter]:
    """A session whose requests to ``base_url`` reach ``app`` in-process (nothing else is mounted)."""
    session = requests.Session()
    session.adapters.clear()
    adapter = InProcessAdapter(app)
    session.mount(base_url.rstrip("/") + "/", adapter)
    return session, adapter
