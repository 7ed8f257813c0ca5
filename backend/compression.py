"""gzip on the wire, both ways (WSGI middleware).

- A request with ``Content-Encoding: gzip`` is inflated before Flask reads it,
  never beyond ``MAX_CONTENT_LENGTH`` (a small bomb that inflates past it gets
  413); a body that is not valid gzip (an empty one included) gets 400; either
  refusal is reported to ``on_refused`` (the hub audits it). Signatures cover
  the inflated bytes, so they verify the same whether the body travelled
  compressed or not.
- The compressed body is read by its ``Content-Length`` or, sent chunked
  (``Transfer-Encoding: chunked``, no length), to the end of the stream the
  server has de-chunked (``wsgi.input_terminated``), both at most
  ``MAX_CONTENT_LENGTH`` bytes: a chunked body is never taken for an empty one.
- A JSON response over 1 KiB to a client that accepts gzip is compressed with
  ISA-L (the isal package: the same gzip format, RFC 1952, any client inflates
  it), at its level 2 (``LEVEL``). Pull pages are most of what the hub
  compresses, and the hub's CPU is shared by every laptop; a laptop on a weak
  field link wants small bodies. ISA-L's level 2 makes bodies about as small as
  zlib's level 3 for a fraction of its CPU; its level 0 saves little CPU more
  for much larger bodies (figures: bench/README.md, bench_pull.py).
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from isal import igzip
from werkzeug.wsgi import get_content_length

MIN_SIZE = 1024
LEVEL = 2  # ISA-L's levels are 0-3; see the rules above

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def _error(start_response: StartResponse, status: str, code: str, message: str) -> list[bytes]:
    body = json.dumps({"error": code, "message": message, "details": {}}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _read_compressed(environ: Environ, max_length: int) -> bytes | None:
    """The request body as sent (still compressed), or None when it is over ``max_length``."""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    length = None if chunked else get_content_length(environ)
    if length is not None:
        return None if length > max_length else environ["wsgi.input"].read(length)
    if not chunked or not environ.get("wsgi.input_terminated"):
        return b""  # no length and not chunked: HTTP says the body is empty
    stream, parts, size = environ["wsgi.input"], [], 0
    while size <= max_length and (part := stream.read(min(65536, max_length + 1 - size))):
        parts.append(part)
        size += len(part)
    return None if size > max_length else b"".join(parts)


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
            raw = _read_compressed(environ, self.max_length)
            if raw is None:
                return self._refuse(environ, start_response, "413 Request Entity Too Large", "payload_too_large",
                                    "body too large")  # fmt: skip
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
            environ.pop("HTTP_TRANSFER_ENCODING", None)  # the inflated body has a length now
            environ.pop("wsgi.input_terminated", None)
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
            body = igzip.compress(body, compresslevel=LEVEL)
            headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]
