"""A fault-injecting HTTP/1.1 proxy on loopback, for tests of what a lossy network does to money.

It stands between a client and an upstream (a WSGI app, driven in-process, or a base URL) and,
by rule, breaks requests the way real networks do:

* before forwarding (the upstream never hears of it): a reset, a status (502, 429 with
  ``Retry-After``...), or a stall until the client gives up;
* after forwarding (the upstream acted, billed, marked fetched...): a reset, a status in place
  of the real answer, a truncated body, or a stall.

Every request is counted, with the fault it met. Real sockets, so resets, truncation and read
timeouts are what the client's HTTP stack really sees.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from socketserver import BaseRequestHandler, ThreadingTCPServer

import httpx

BEFORE = ("reset_before", "status_before", "stall_before")
AFTER = ("reset_after", "status_after", "truncate_after", "stall_after")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
}


@dataclass
class Fault:
    """Break the next ``times`` requests (None: forever) matching ``method`` and ``path`` (a
    prefix of the path, after any ``/v1``) whose query contains ``query``; each one only with
    ``probability`` (the proxy's seeded dice decide)."""

    kind: str
    method: str | None = None
    path: str | None = None
    query: str | None = None
    times: int | None = 1
    probability: float = 1.0
    status: int = 502
    headers: dict[str, str] = field(default_factory=dict)
    injected: int = 0

    def __post_init__(self) -> None:
        if self.kind not in BEFORE + AFTER:
            raise ValueError(f"unknown fault {self.kind!r}; one of {BEFORE + AFTER}")

    def matches(self, method: str, target: str) -> bool:
        path, _, query = target.partition("?")
        return (
            (self.times is None or self.injected < self.times)
            and (self.method is None or self.method == method)
            and (self.path is None or path.removeprefix("/v1").startswith(self.path))
            and (self.query is None or self.query in query)
        )


class _Request:
    def __init__(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes):
        self.method, self.target, self.headers, self.body = method, target, headers, body


def _read_request(conn: socket.socket) -> _Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if line]
    length = int(dict((k.lower(), v) for k, v in headers).get("content-length", 0))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return _Request(method, target, headers, body)


def _write(
    conn: socket.socket,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    send_bytes: int | None = None,
) -> None:
    lines = [f"HTTP/1.1 {status} X"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_BY_HOP]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    conn.sendall("\r\n".join(lines).encode("latin-1") + body[:send_bytes])


def _reset(conn: socket.socket) -> None:
    # SO_LINGER with a zero timeout: close() sends RST, the client sees a reset connection.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class FaultProxy:
    def __init__(self, upstream: Callable | str, seed: int = 0) -> None:
        transport = httpx.WSGITransport(app=upstream) if callable(upstream) else None
        self._upstream = httpx.Client(
            base_url="http://upstream" if transport else upstream, transport=transport, timeout=60
        )
        self.faults: list[Fault] = []
        self._dice = random.Random(seed)
        self.forwarded: Counter[tuple[str, str]] = Counter()  # (method, path) reaching upstream
        self.met: Counter[str] = Counter()  # fault kind -> requests that met it
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        proxy = self

        class Handler(BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        self._server = ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, kind: str, **match) -> Fault:
        fault = Fault(kind, **match)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()

    def _take(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, target) and self._dice.random() < fault.probability:
                    fault.injected += 1
                    self.met[fault.kind] += 1
                    return fault
        return None

    def _stall(self, conn: socket.socket) -> None:
        """Answer nothing until the client hangs up (its read timeout) or the proxy stops."""
        while not self._stopping.is_set():
            readable, _, _ = select.select([conn], [], [], 0.05)
            if readable and not conn.recv(1):
                return

    def _inject(self, conn: socket.socket, fault, moment: str) -> bool:
        """Carry out ``fault`` if it is a reset, status or stall at ``moment`` (``before`` or
        ``after`` the request is forwarded); whether it did (the request is then answered)."""
        kind = fault.kind if fault else None
        if kind == f"reset_{moment}":
            _reset(conn)
        elif kind == f"status_{moment}":
            _write(conn, fault.status, list(fault.headers.items()), b"injected fault")
        elif kind == f"stall_{moment}":
            self._stall(conn)
        else:
            return False
        return True

    def _handle(self, conn: socket.socket) -> None:
        request = _read_request(conn)
        if request is None:
            return
        fault = self._take(request.method, request.target)
        if self._inject(conn, fault, "before"):
            return
        answer = self._upstream.request(
            request.method,
            request.target,
            content=request.body,
            headers=[(k, v) for k, v in request.headers if k.lower() not in _HOP_BY_HOP],
        )
        with self._lock:
            self.forwarded[(request.method, request.target.partition("?")[0])] += 1
        if self._inject(conn, fault, "after"):
            return
        truncate = fault is not None and fault.kind == "truncate_after"
        half = len(answer.content) // 2 if truncate else None
        _write(conn, answer.status_code, list(answer.headers.items()), answer.content, half)
