"""A small threaded TCP proxy of the tests, in front of a hub on loopback, that can cut or stall links.

Rules this module owns:

- It listens on 127.0.0.1 on a free port and forwards each accepted connection to the
  hub's port, one thread per direction: ``up`` is laptop -> hub, ``down`` is hub -> laptop.
- With no fault armed it passes every byte unchanged, and counts them (``bytes_up``,
  ``bytes_down``), so a test can see that a request is under way.
- A fault is armed for the next ``times`` requests (of those whose request line starts with
  its ``on``, e.g. ``"POST /api/v1/sync/push"``, when given) that carry more than ``after``
  bytes in its direction, counted from the start of that request (``up``) or of its answer
  (``down``; HTTP/1.1 without pipelining, so the bytes down after a request line belong to
  its answer, also on a kept-alive connection): exactly ``after`` bytes go through, then
  ``drop`` closes both sockets abruptly (SO_LINGER 0: a TCP reset, as a cut cable or a
  dying middlebox does), or ``stall`` stops forwarding in both directions without closing
  anything (a link that went silent) until the proxy is closed.
- Each fired fault is kept in ``fired_faults`` with the moment it fired (``fired_at``,
  ``time.monotonic()``), so a test can time what follows the fault rather than the whole command.
- ``close()`` stops the listener and closes every socket it opened, stalled ones included.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass

CHUNK = 4096
METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"HEAD ", b"OPTIONS ")


@dataclass
class Fault:
    kind: str  # "drop" | "stall"
    direction: str  # "up" (laptop -> hub) | "down" (hub -> laptop)
    after: int  # bytes of one request (or its answer) that go through in that direction first
    times: int = 1  # how many requests it hits
    on: str | None = None  # only requests whose request line starts with this, e.g. "POST /api/v1/sync/push"
    fired_at: float | None = None  # time.monotonic() when it fired (set in fired_faults)


class _Link:
    """One laptop connection and its connection to the hub."""

    def __init__(self, proxy: Proxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy, self.client, self.server = proxy, client, server
        self.sent = {"up": 0, "down": 0}
        self.base = {"up": 0, "down": 0}  # bytes each way when the current request began
        self.request = b""  # the current request's line
        self.fault: Fault | None = None
        self.dead = threading.Event()  # dropped or closed: both pumps stop
        self.stalled = threading.Event()

    def start(self) -> None:
        for direction, src, dst in (("up", self.client, self.server), ("down", self.server, self.client)):
            threading.Thread(target=self._pump, args=(direction, src, dst), daemon=True).start()

    def _pump(self, direction: str, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self.dead.is_set():
                data = src.recv(CHUNK)
                if not data:
                    break
                if self.stalled.is_set():
                    self.dead.wait()  # a silent link: hold everything until the proxy closes
                    return
                if direction == "up" and data.startswith(METHODS):  # a new request on this connection
                    self.request, self.base = data.split(b"\r\n", 1)[0], dict(self.sent)
                data = self._through(direction, data, dst)
                if data is None:
                    return
                dst.sendall(data)
                self.proxy.count(direction, len(data))
                self.sent[direction] += len(data)
            # an orderly end on one side: pass it on (half-close), as a real link would
            if not self.dead.is_set():
                dst.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(reset=False)

    def _through(self, direction: str, data: bytes, dst: socket.socket) -> bytes | None:
        """Bytes to forward now, or None when a fault fired (after forwarding what it lets through)."""
        done = self.sent[direction] - self.base[direction]
        fault = self.fault or self.proxy.claim(direction, done + len(data), self.request)
        if fault is None or fault.direction != direction:
            return data
        self.fault = fault
        room = fault.after - done
        if len(data) <= room:
            return data
        if room > 0:
            dst.sendall(data[:room])
            self.proxy.count(direction, room)
            self.sent[direction] += room
        self.proxy.fired(fault)
        if fault.kind == "drop":
            self.close(reset=True)
        else:
            self.stalled.set()
            self.dead.wait()
        return None

    def close(self, *, reset: bool) -> None:
        if self.dead.is_set():
            return
        self.dead.set()
        for sock in (self.client, self.server):
            # close() alone neither wakes a thread blocked in recv() on the socket nor releases it
            # (Linux keeps it open while that call runs): shut it down first. For a reset, only the
            # reading side (SHUT_RD sends nothing), with SO_LINGER 0 so the release sends RST, not FIN.
            with contextlib.suppress(OSError):
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD if reset else socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class Proxy:
    """``Proxy(hub_port)``: started at once; ``url`` is what officers enroll and sync through."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._links: list[_Link] = []
        self.fired_faults: list[Fault] = []
        self.bytes_up = self.bytes_down = 0
        self.connections = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    # -- faults ---------------------------------------------------------------
    def drop(self, direction: str, after: int, *, times: int = 1, on: str | None = None) -> None:
        """Cut the next ``times`` requests (``on``: of that request line) abruptly after ``after`` bytes."""
        self._arm(Fault("drop", direction, after, times, on))

    def stall(self, direction: str, after: int, *, times: int = 1, on: str | None = None) -> None:
        """Stop forwarding (without closing) the next ``times`` requests after ``after`` bytes."""
        self._arm(Fault("stall", direction, after, times, on))

    def clear(self) -> None:
        """Disarm faults not yet fired (stalled links stay stalled until :meth:`close`)."""
        with self._lock:
            self._faults.clear()

    def _arm(self, fault: Fault) -> None:
        assert fault.direction in ("up", "down") and fault.kind in ("drop", "stall") and fault.after >= 0
        with self._lock:
            self._faults.append(fault)

    def claim(self, direction: str, total: int, request: bytes) -> Fault | None:
        """The armed fault this request now triggers (its ``direction`` bytes reach ``total``)."""
        with self._lock:
            for fault in self._faults:
                wanted = fault.on is None or request.startswith(fault.on.encode("ascii"))
                if fault.direction == direction and total > fault.after and wanted:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return Fault(fault.kind, fault.direction, fault.after, 1, fault.on)
        return None

    def fired(self, fault: Fault) -> None:
        fault.fired_at = time.monotonic()
        with self._lock:
            self.fired_faults.append(fault)

    def count(self, direction: str, n: int) -> None:
        with self._lock:
            if direction == "up":
                self.bytes_up += n
            else:
                self.bytes_down += n

    # -- plumbing ---------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:  # the hub is down: the laptop sees its connection closed
                client.close()
                continue
            link = _Link(self, client, server)
            with self._lock:
                self._links.append(link)
                self.connections += 1
            link.start()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close(reset=False)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
