"""The transport (field_client/transport.py) and the in-process seam the agent tests rely on."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pytest
import requests
import urllib3
from requests.adapters import BaseAdapter

from crypto import SigningKey
from field_client import edits
from field_client.errors import HubRefused, HubUnavailable
from field_client.transport import DEFAULT_TIMEOUT, GZIP_OVER, HubClient
from tests.backend.helpers import Hub

from .conftest import MakeLaptop
from .helpers import VEHICLE
from .inprocess import HUB_URL, hub_session

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class Canned(BaseAdapter):
    """Answers every request with one canned response, or raises one exception."""

    def __init__(self, status: int = 200, body: bytes = b"{}", raises: Exception | None = None) -> None:
        super().__init__()
        self.status, self.body, self.raises = status, body, raises
        self.timeouts: list[Any] = []

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, **kw: Any) -> Any:  # type: ignore[override]
        self.timeouts.append(timeout)
        if self.raises is not None:
            raise self.raises
        response = requests.Response()
        response.status_code, response.reason = self.status, "Canned"
        response.raw = urllib3.HTTPResponse(body=io.BytesIO(self.body), preload_content=False, status=self.status)
        response.headers["Content-Type"] = "application/json"
        response.request, response.url = request, request.url or ""
        return response

    def close(self) -> None:
        pass


def canned_client(adapter: BaseAdapter, **kw: Any) -> HubClient:
    session = requests.Session()
    session.adapters.clear()
    session.mount("http://", adapter)
    return HubClient("http://hub.invalid", device_id="dev-1", key=SigningKey.generate(), session=session, **kw)


# -- failure classes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "adapter",
    [
        Canned(raises=requests.ConnectionError("refused")),
        Canned(raises=requests.ConnectTimeout("connect timeout")),
        Canned(raises=requests.ReadTimeout("read timeout")),
        Canned(status=500, body=b'{"error": "internal"}'),
        Canned(status=503, body=b"<html>down for maintenance</html>"),
        Canned(status=200, body=b"<html>a captive portal</html>"),
    ],
    ids=["refused", "connect-timeout", "read-timeout", "500", "503-html", "200-not-json"],
)
def test_network_failures_and_5xx_are_retryable(adapter: Canned) -> None:
    with pytest.raises(HubUnavailable) as caught:
        canned_client(adapter).pull(0)
    assert caught.value.retryable is True


def test_a_4xx_is_a_refusal_with_the_hubs_envelope() -> None:
    envelope = {"error": "conflict", "message": "cursor beyond the log", "details": {"size": 3}}
    with pytest.raises(HubRefused) as caught:
        canned_client(Canned(status=409, body=json.dumps(envelope).encode())).pull(99)
    refused = caught.value
    assert (refused.status, refused.code, refused.message, refused.details) == (
        409,
        "conflict",
        "cursor beyond the log",
        {"size": 3},
    )
    assert "409" in str(refused) and "cursor beyond the log" in str(refused)
    assert refused.retryable is False
    with pytest.raises(HubRefused) as caught:
        canned_client(Canned(status=404, body=b"[]")).pull(0)
    assert (caught.value.status, caught.value.details) == (404, {})


def test_every_request_has_a_connect_and_read_timeout() -> None:
    adapter = Canned(body=b'{"results": [], "entries": []}')
    client = canned_client(adapter)
    client.push([])
    client.registry()
    client.pull(0)
    assert adapter.timeouts == [DEFAULT_TIMEOUT] * 3
    assert DEFAULT_TIMEOUT == (5.0, 30.0)
    custom = Canned()
    canned_client(custom, timeout=(1.0, 2.0)).pull(0)
    assert custom.timeouts == [(1.0, 2.0)]


def test_an_unenrolled_client_sends_no_sync_request() -> None:
    adapter = Canned()
    session = requests.Session()
    session.mount("http://", adapter)
    with pytest.raises(HubRefused, match="not enrolled"):
        HubClient("http://hub.invalid", session=session).pull(0)
    assert adapter.timeouts == []


# -- against the hub, through the seam ----------------------------------------------------------------


@sqlite_only
def test_big_bodies_travel_gzipped_both_ways(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop()
    small = edits.create(lee.device, "resources", dict(VEHICLE))
    lee.sync()
    assert lee.adapter is not None
    push = next(x for x in lee.adapter.exchanges if x["request"].path_url == "/api/v1/sync/push")
    assert "Content-Encoding" not in push["request"].headers
    assert len(push["request"].body) < GZIP_OVER

    big = edits.create(lee.device, "resources", {**VEHICLE, "notes": "long notes " * 300})
    lee.adapter.exchanges.clear()
    report = lee.sync()
    assert report.accepted == 1
    push = next(x for x in lee.adapter.exchanges if x["request"].path_url == "/api/v1/sync/push")
    sent = push["request"]
    assert sent.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(sent.body))["changes"][0]["record_id"] == big["id"]
    assert push["timeout"] == DEFAULT_TIMEOUT

    ray = laptop("SPD", "Ofc. Ray")
    ray.sync()
    assert ray.adapter is not None
    pull = next(x for x in ray.adapter.exchanges if "/sync/pull" in x["request"].path_url)
    assert pull["headers"].get("Content-Encoding") == "gzip"  # the hub compressed it, requests inflated it
    assert ray.record(big["id"])["notes"] == "long notes " * 300  # type: ignore[index]
    assert ray.record(small["id"]) is not None


@sqlite_only
def test_requests_are_signed_by_the_device_key(hub: Hub, laptop: MakeLaptop) -> None:
    lee = laptop()
    assert lee.client.pull(0, 10)["next_cursor"] == 0  # signed over the path with its query string
    impostor = HubClient(HUB_URL, device_id=lee.device.device_id, key=SigningKey.generate(), session=lee.session)
    with pytest.raises(HubRefused) as caught:
        impostor.pull(0)
    assert caught.value.status == 401
    assert "signature" in caught.value.message
    unknown = HubClient(HUB_URL, device_id="no-such-device", key=SigningKey.generate(), session=lee.session)
    with pytest.raises(HubRefused) as caught:
        unknown.push([])
    assert caught.value.status == 401


@sqlite_only
def test_the_seam_answers_like_http(hub: Hub) -> None:
    session, adapter = hub_session(hub.app)
    response = session.get(HUB_URL + "/healthz", timeout=1)
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert response.headers["Content-Type"].startswith("application/json")
    missing = session.get(HUB_URL + "/api/v1/records/nope/provenance", timeout=1)
    assert missing.status_code == 401 and set(missing.json()) == {"error", "message", "details"}
    assert adapter.sent == [("GET", "/healthz"), ("GET", "/api/v1/records/nope/provenance")]
    with pytest.raises(requests.exceptions.InvalidSchema):
        session.get("http://elsewhere.test/", timeout=1)  # nothing else is reachable
    session.close()
