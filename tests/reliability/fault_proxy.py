"""A fault-injecting HTTP reverse proxy for S3 tests: put it between boto3 and moto's S3 server.

Every request is forwarded to ``upstream`` unless a fault is drawn for it (seeded, so a run is
reproducible). The faults are what a real network and a real S3 do to a client:

* ``slowdown``: answer ``503 SlowDown`` with S3's XML error body; nothing reaches the server.
* ``reset``: reset the TCP connection (RST) after reading the request; nothing reaches the server.
* ``lost_reply``: forward the request and wait for the server's whole answer (so a write has
  landed), then close the connection without answering: the client cannot tell whether its
  write happened.
* ``late_write`` (opt-in, for writes): reset the connection at once and keep the request; it
  lands on the server just before the next write to the same path is forwarded. A read in
  between still finds nothing, so the retried write meets its own earlier attempt (a write that
  landed after the client gave up on it, as after a read timeout).

Only the standard library: ``http.server`` (one thread per connection) and ``http.client``.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import struct
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

Fault = Literal["slowdown", "reset", "lost_reply", "late_write"]
FAULTS: tuple[Fault, ...] = ("slowdown", "reset", "lost_reply")

SLOW_DOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate. (injected by fault_proxy)</Message>"
    b"<RequestId>fault-proxy</RequestId><HostId>fault-proxy</HostId></Error>"
)

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business on each side.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}
_WRITES = {"PUT", "POST", "DELETE"}


@dataclass
class Decision:
    method: str
    path: str
    fault: Fault | None


@dataclass
class FaultPlan:
    """What to do with each request: a forced queue first, else a seeded draw at ``rate``."""

    rate: float = 0.0
    seed: int = 0
    faults: tuple[Fault, ...] = FAULTS
    weights: tuple[float, ...] | None = None
    applies: Callable[[str, str], bool] = lambda method, path: True
    """``(method, path) -> bool``: requests it returns False for are never faulted."""
    forced: deque[Fault | None] = field(default_factory=deque)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self, method: str, path: str) -> Fault | None:
        if not self.applies(method, path):
            return None
        if self.forced:
            return self.forced.popleft()
        if self._rng.random() >= self.rate:
            return None
        return self._rng.choices(self.faults, weights=self.weights)[0]


class FaultProxy:
    """``with FaultProxy(upstream, rate=0.2, seed=1) as proxy:`` then use ``proxy.url``."""

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        seed: int = 0,
        faults: Iterable[Fault] = FAULTS,
        weights: Iterable[float] | None = None,
        applies: Callable[[str, str], bool] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.plan = FaultPlan(
            rate=rate,
            seed=seed,
            faults=tuple(faults),
            weights=tuple(weights) if weights is not None else None,
            applies=applies or (lambda method, path: True),
        )
        self.lock = threading.Lock()
        self.log: list[Decision] = []
        self._late: dict[str, list[tuple[str, list[tuple[str, str]], bytes]]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def force(self, *faults: Fault | None) -> None:
        """The next requests that ``applies`` to get these faults (None: forwarded cleanly)."""
        with self.lock:
            self.plan.forced.extend(faults)

    def set_rate(self, rate: float) -> None:
        with self.lock:
            self.plan.rate = rate

    def counts(self) -> Counter[str]:
        """Requests seen per fault (``ok`` for the ones forwarded and answered)."""
        with self.lock:
            return Counter(d.fault or "ok" for d in self.log)

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the handler ---------------------------------------------------------------------------

    def _decide(self, method: str, path: str) -> Fault | None:
        with self.lock:
            fault = self.plan.draw(method, path)
            self.log.append(Decision(method, path, fault))
            return fault

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reset(self) -> None:
                """Abort the connection: SO_LINGER 0 makes close() send a RST."""
                self.close_connection = True
                try:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                except OSError:
                    pass

            def _forward(
                self,
                body: bytes,
                command: str | None = None,
                headers: list[tuple[str, str]] | None = None,
            ) -> tuple[int, str, list[tuple[str, str]], bytes]:
                command = command or self.command
                upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=60
                )
                try:
                    # Host is forwarded as the client signed it (SigV4 signs the Host header).
                    upstream.putrequest(
                        command, self.path, skip_host=True, skip_accept_encoding=True
                    )
                    for name, value in headers if headers is not None else self.headers.items():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            upstream.putheader(name, value)
                    if body or command in ("PUT", "POST"):
                        upstream.putheader("Content-Length", str(len(body)))
                    upstream.endheaders(body or None)
                    response = upstream.getresponse()
                    data = response.read()
                    return response.status, response.reason, response.getheaders(), data
                finally:
                    upstream.close()

            def _handle(self) -> None:
                body = self._read_body()
                fault = proxy._decide(self.command, self.path)
                if self.command in _WRITES:
                    with proxy.lock:
                        late = proxy._late.pop(self.path, [])
                    for command, headers, late_body in late:
                        self._forward(late_body, command, headers)  # the late write lands now
                if fault == "late_write" and self.command in _WRITES:
                    with proxy.lock:
                        proxy._late.setdefault(self.path, []).append(
                            (self.command, list(self.headers.items()), body)
                        )
                    self._reset()
                    return
                if fault in ("reset", "late_write"):
                    self._reset()
                    return
                if fault == "slowdown":
                    self.send_response(503, "Slow Down")
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN_BODY)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(SLOW_DOWN_BODY)
                    self.close_connection = True
                    return
                try:
                    status, reason, headers, data = self._forward(body)
                except OSError:
                    self._reset()  # upstream down: the client sees a dead connection
                    return
                if fault == "lost_reply":
                    # The request landed and was answered; the answer never reaches the client.
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response_only(status, reason)
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                if self.command == "HEAD":
                    length = dict((k.lower(), v) for k, v in headers).get("content-length", "0")
                    self.send_header("Content-Length", length)
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD" and data:
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler
