"""Just enough WSGI for the sandbox APIs and the callback receiver.

WSGI because the pipeline's client is synchronous: in-process, ``httpx.WSGITransport`` drives an
app with no socket and no thread; ``serve`` puts the same app on a loopback port with the
standard library's threaded server, for curl and the network tests.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson

MAX_BODY_BYTES = 16 * 1024 * 1024

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class BodyTooLarge(Exception):
    pass


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @classmethod
    def from_environ(cls, environ: dict, max_body: int = MAX_BODY_BYTES) -> Request:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > max_body:
            raise BodyTooLarge(length)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        return cls(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=environ.get("PATH_INFO", "/"),
            query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            headers=headers,
            body=body,
        )

    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            login, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return (login, password) if sep else None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, payload: object) -> Response:
        return cls(status, orjson.dumps(payload))


Handler = Callable[[Request], Response]


def wsgi_app(handler: Handler, max_body: int = MAX_BODY_BYTES) -> Callable:
    """Wrap ``handler`` (Request -> Response) as a WSGI application; larger bodies get 413."""

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            request = Request.from_environ(environ, max_body)
        except BodyTooLarge:
            response = Response(413, b"request body too large", "text/plain; charset=utf-8")
        else:
            response = handler(request)
        reason = _REASONS.get(response.status, "Unknown")
        start_response(
            f"{response.status} {reason}",
            [
                ("Content-Type", response.content_type),
                ("Content-Length", str(len(response.body))),
                *response.headers,
            ],
        )
        return [response.body]

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass


def make_loopback_server(app: Callable, port: int = 0, host: str = "127.0.0.1") -> WSGIServer:
    """A threaded server for ``app``, on loopback unless told otherwise; port 0 picks one."""
    return make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)


@contextmanager
def serving(app: Callable) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yields its base URL."""
    server = make_loopback_server(app)
    # A short poll interval: shutdown() waits for it (0.5 s by default).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    assert isinstance(host, str)  # an AF_INET server's address
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
