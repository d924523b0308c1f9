"""Shared plumbing for the sandbox upstreams: a loopback HTTP/1.1 server that logs what it received.

Each sandbox is a :class:`SandboxServer` subclass that answers a parsed :class:`Request` with a
:class:`Response` (or streams its own answer by overriding :meth:`SandboxServer.serve`).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

# An idle keep-alive connection is dropped after this long, so no handler thread lingers forever.
IDLE_TIMEOUT_SECONDS = 60


class Headers(dict[str, str]):
    """Header names are case-insensitive: stored lower-case, looked up in any case."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for name, value in items:
            lowered = name.lower()
            # Repeated headers are joined the way HTTP allows for list-valued fields.
            self[lowered] = f"{self[lowered]}, {value}" if lowered in self else value

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


@dataclass(frozen=True)
class ReceivedRequest:
    """What the upstream actually got: ``path`` is the request target as sent (query included)."""

    method: str
    path: str
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # as sent, query included
    path: str  # percent-decoded, without query
    query: dict[str, list[str]]
    headers: Headers
    body: bytes  # as sent (de-chunked, Content-Encoding still applied)

    def query_one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def decoded_body(self) -> bytes:
        encoding = self.headers.get("content-encoding", "").strip().lower()
        if encoding in ("", "identity"):
            return self.body
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(self.body)
        if encoding == "deflate":
            return zlib.decompress(self.body)
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not valid UTF-8 JSON."""
        raw = self.decoded_body()
        if not raw.strip():
            raise ValueError("empty body")
        return json.loads(raw.decode("utf-8"))


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    body = b"" if payload is None else json.dumps(payload).encode("utf-8")
    extra = list((headers or {}).items())
    content_type = [("Content-Type", "application/json; charset=utf-8")] if payload is not None else []
    return Response(status, body, content_type + extra)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = IDLE_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: tests read ``received`` instead of a log."""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, delayed ACKs add ~40 ms per call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sandbox._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._untrack(self.connection)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self.rfile.readline(65537)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # Trailers (usually none) end with an empty line.
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(65537)

    def _handle_any(self) -> None:
        body = self._read_body()
        headers = Headers(self.headers.items())
        sandbox = self.server.sandbox
        sandbox._record(ReceivedRequest(self.command, self.path, headers, body))
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            target=self.path,
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            body=body,
        )
        sandbox.serve(request, self)

    def send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle_any


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)


class SandboxServer:
    """A loopback HTTP/1.1 server with a thread-safe log of every request it received."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._received: list[ReceivedRequest] = []
        self._log_lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Self:
        """Binds and starts serving; returns once the socket is listening."""
        if self._httpd is not None:
            return self
        self._httpd = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-serve",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._log_lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            # Wakes handler threads parked on an idle keep-alive connection.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what arrived ----------------------------------------------------------------------------
    @property
    def received(self) -> list[ReceivedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._log_lock:
            return list(self._received)

    def clear_received(self) -> None:
        with self._log_lock:
            self._received.clear()

    def _record(self, request: ReceivedRequest) -> None:
        with self._log_lock:
            self._received.append(request)

    def _track(self, connection: socket.socket) -> None:
        with self._log_lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._log_lock:
            self._connections.discard(connection)

    # -- answering -------------------------------------------------------------------------------
    def serve(self, request: Request, handler: _Handler) -> None:
        handler.send(self.handle(request))

    def handle(self, request: Request) -> Response:
        raise NotImplementedError
