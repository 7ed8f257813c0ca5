"""gzip on the wire, both ways (WSGI middleware).

- A request with ``Content-Encoding: gzip`` is inflated before Flask reads it,
  never beyond ``MAX_CONTENT_LENGTH`` (a small bomb that inflates past it gets
  413); a body that is not valid gzip gets 400; either refusal is reported to
  ``on_refused`` (the hub audits it). Signatures cover the inflated
  bytes, so they verify the same whether the body travelled compressed or not.
- A JSON response over 1 KiB to a client that accepts gzip is compressed.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterable
from typing import Any

MIN_SIZE = 1024

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def _error(start_response: StartResponse, status: str, code: str, message: str) -> list[bytes]:
    body = json.dumps({"error": code, "message": message, "details": {}}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Gzip:
    """``on_refused(environ, message)``, when given, is told of each body refused here (the hub
    audits it: these requests never reach the application)."""

    def __init__(
        self,
        app: Callable[[Environ, StartResponse], Iterable[bytes]],
        max_length: int,
        on_refused: Callable[[Environ, str], None] | None = None,
    ) -> None:
        self.app, self.max_length, self.on_refused = app, max_length, on_refused

    def _refuse(
        self, environ: Environ, start_response: StartResponse, status: str, code: str, message: str
    ) -> list[bytes]:
        if self.on_refused is not None:
            self.on_refused(environ, message)
        return _error(start_response, status, code, message)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("HTTP_CONTENT_ENCODING", "").lower() == "gzip":
            limit = int(environ.get("CONTENT_LENGTH") or 0)
            if limit > self.max_length:
                return self._refuse(environ, start_response, "413 Request Entity Too Large", "payload_too_large",
                                    "body too large")  # fmt: skip
            raw = environ["wsgi.input"].read(limit)
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                body = inflater.decompress(raw, self.max_length + 1)
                if len(body) > self.max_length or inflater.unconsumed_tail:
                    return self._refuse(environ, start_response, "413 Request Entity Too Large", "payload_too_large",
                                        "body too large once inflated")  # fmt: skip
                if not inflater.eof:
                    raise zlib.error("truncated")
            except zlib.error:
                return self._refuse(environ, start_response, "400 Bad Request", "bad_request", "body is not valid gzip")
            environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
            environ.pop("HTTP_CONTENT_ENCODING", None)
        if "gzip" not in environ.get("HTTP_ACCEPT_ENCODING", ""):
            return self.app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self.app(environ, capture)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        content_type = dict((k.lower(), v) for k, v in headers).get("content-type", "")
        if len(body) >= MIN_SIZE and content_type.startswith("application/json"):
            body = gzip.compress(body, compresslevel=5)
            headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]
