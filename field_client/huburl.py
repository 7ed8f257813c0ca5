"""The hub's address, as an officer types it at enrollment.

Rules this module owns:

- The hub is reached over ``https://``. Plain ``http://`` is accepted only for
  a hub on this machine (``localhost``, 127.0.0.0/8, ``::1``): the enrollment
  answer carries the key registry the laptop pins, so a hub reached in the
  clear could be impersonated on the wire and its registry pinned for good.
- No user name or password in the address, no query and no fragment: every
  request path is appended to it, and credentials would sit in the replica.
- The address is stored without a trailing ``/``.

TLS certificates are checked by requests against the system's trust store (or
the bundle named by ``REQUESTS_CA_BUNDLE``, for an agency's own CA).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .errors import BadHubAddress


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_hub_url(url: str) -> str:
    """``url`` normalised (no trailing ``/``), or :class:`BadHubAddress` saying why not."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as exc:
        raise BadHubAddress(f"the hub address {url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("https", "http") or not host:
        raise BadHubAddress(f"the hub address must look like https://hub.example.org, not {url!r}")
    if parts.username is not None or parts.password is not None:
        raise BadHubAddress("the hub address must not carry a user name or password")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise BadHubAddress("the hub address must not carry a query (?...) or a fragment (#...)")
    if parts.scheme == "http" and not is_loopback(host):
        raise BadHubAddress(
            f"the hub address must start with https:// ({host} is not this machine; plain http "
            "is accepted only for a hub on localhost, 127.0.0.1 or ::1)"
        )
    return text.rstrip("/")
