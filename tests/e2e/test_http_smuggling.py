"""Request smuggling through a real ``enact-proxy run``: raw bytes in, raw bytes logged upstream.

The agent side is a plain socket, either speaking to the proxy directly (absolute-form requests) or
through ``CONNECT`` and TLS with the sidecar's CA. The upstream is a tiny TCP server that logs every
byte it receives and answers each request it can frame. Each trick hides a second request (a push to
``main``) inside the first; the attack succeeds if those bytes ever reach the upstream, where a
lenient parser could run them with the credential the sidecar injects.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.harness import RunningSidecar, wait_until

TOKEN = "ghp_sidecarcredential000000000000000000"
HIDDEN = b"PATCH /repos/acme/app/git/refs/heads/main HTTP/1.1"
HIDDEN_BODY = b'{"sha": "' + b"b" * 40 + b'", "force": true}'
HOST = b"api.github.com"


class LoggingUpstream:
    """Answers every request it can frame with ``200 {}``; keeps every received byte per connection."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.connections: list[bytearray] = []
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def received(self) -> bytes:
        with self.lock:
            return b"".join(bytes(c) for c in self.connections)

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would leave the port listening.
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        with self.lock:
            open_connections, self.open = list(self.open), []
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            log = bytearray()
            with self.lock:
                self.connections.append(log)
                self.open.append(conn)
            threading.Thread(target=self._serve, args=(conn, log), daemon=True).start()

    def _serve(self, conn: socket.socket, log: bytearray) -> None:
        pending = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                with self.lock:
                    log += data
                pending += data
                while True:
                    head, sep, rest = pending.partition(b"\r\n\r\n")
                    if not sep:
                        break
                    length = 0
                    chunked = False
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip() or b"0")
                        if name.strip().lower() == b"transfer-encoding":
                            chunked = True
                    if chunked:
                        end = rest.find(b"0\r\n\r\n")
                        if end < 0:
                            break
                        pending = rest[end + 5:]
                    elif len(rest) >= length:
                        pending = rest[length:]
                    else:
                        break
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")


@pytest.fixture
def upstream() -> Iterator[LoggingUpstream]:
    server = LoggingUpstream()
    yield server
    server.close()


@pytest.fixture
def smuggling_sidecar(sidecar_factory: Callable[..., RunningSidecar], upstream: LoggingUpstream) -> RunningSidecar:
    url = f"http://127.0.0.1:{upstream.port}"
    return sidecar_factory(systems={"github": {"upstream": url, "git_upstream": url, "token_env": "GH_TOKEN"}},
                           env={"GH_TOKEN": TOKEN},
                           workflows={"agent_git": ["github.read", "github.create_issue"]})


def open_agent(sidecar: RunningSidecar, tls: bool) -> socket.socket | ssl.SSLSocket:
    host, port = sidecar.http.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    if not tls:
        return sock
    sock.sendall(b"CONNECT api.github.com:443 HTTP/1.1\r\nHost: api.github.com:443\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    context = ssl.create_default_context(cafile=str(sidecar.ca))
    context.set_alpn_protocols(["http/1.1"])
    return context.wrap_socket(sock, server_hostname="api.github.com")


def target(path: bytes, tls: bool) -> bytes:
    return path if tls else b"http://api.github.com" + path


def read_response(sock: Any) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed(sock: Any) -> bool:
    """Whether the sidecar has closed the agent's connection (nothing more will be read from it)."""
    try:
        return sock.recv(65536) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True


def smuggle_case(name: str, tls: bool) -> bytes:
    """The first request's bytes: a harmless-looking read or issue, hiding a push to main."""
    hidden = HIDDEN + b"\r\nHost: api.github.com\r\nContent-Length: " + str(len(HIDDEN_BODY)).encode() + \
        b"\r\n\r\n" + HIDDEN_BODY
    read = b"GET " + target(b"/repos/acme/app", tls) + b" HTTP/1.1\r\nHost: api.github.com\r\n"
    post = b"POST " + target(b"/repos/acme/app/issues", tls) + b" HTTP/1.1\r\nHost: api.github.com\r\n"
    issue = b'{"title": "t"}'
    cr_hidden = hidden.replace(b"\r\n", b"\r")
    cases = {
        # An upstream ending lines at a bare CR sees the hidden request after the first one's head.
        "bare CR in a header value": read + b"X-Note: a\r\r" + cr_hidden + b"\r\n\r\n",
        "bare LF in a header value": read + b"X-Note: a\n" + HIDDEN + b"\r\n\r\n",
        "obs-fold": read + b"X-Note: a\r\n " + HIDDEN + b"\r\n\r\n",
        "NUL in a header value": read + b"X-Note: a\x00" + HIDDEN + b"\r\n\r\n",
        "CR in a header name": read + b"X-No\rte: a\r\n\r\n" + hidden,
        "Content-Length and Transfer-Encoding": post + b"Content-Length: " + str(len(issue) + 5 + len(hidden)).encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + b"e\r\n" + issue + b"\r\n0\r\n\r\n" + hidden,
        "Transfer-Encoding and Content-Length": post + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        + b"%x\r\n" % len(hidden) + hidden + b"\r\n0\r\n\r\n",
        "two differing Content-Length": post + b"Content-Length: " + str(len(issue)).encode() + b"\r\nContent-Length: "
        + str(len(issue) + len(hidden)).encode() + b"\r\n\r\n" + issue + hidden,
        "Transfer-Encoding gzip, chunked": post + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
        + b"%x\r\n" % len(hidden) + hidden + b"\r\n0\r\n\r\n",
        "Transfer-Encoding with a space before the colon": post + b"Transfer-Encoding : chunked\r\nContent-Length: "
        + str(len(issue)).encode() + b"\r\n\r\n" + issue + hidden,
        "Transfer-Encoding xchunked": post + b"Transfer-Encoding: xchunked\r\n\r\n" + hidden,
        "a quoted chunk extension holding CRLF": post + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"e;x=\"\r\n\"\r\n" + issue + b"\r\n0\r\n\r\n",
        "a trailer": post + b"Transfer-Encoding: chunked\r\n\r\n" + b"e\r\n" + issue + b"\r\n0\r\nX-Trailer: "
        + HIDDEN + b"\r\n\r\n",
        "a bad chunk size": post + b"Transfer-Encoding: chunked\r\n\r\n" + b"0x5\r\n" + hidden + b"\r\n0\r\n\r\n",
        "a body on GET": read + b"Content-Length: " + str(len(hidden)).encode() + b"\r\n\r\n" + hidden,
        "a body on HEAD": read.replace(b"GET ", b"HEAD ", 1) + b"Content-Length: " + str(len(hidden)).encode()
        + b"\r\n\r\n" + hidden,
        "WebSocket upgrade": read + b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" + hidden,
        "h2c upgrade": read + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n" + hidden,
    }
    return cases[name]


#: Each case and the reason its receipt gives. mitmproxy refuses some itself (its 400 page, the
#: receipt written from the ``error`` hook); a head it cannot parse at all never becomes a flow, so
#: no hook sees it and there is no receipt (None) -- nothing of it is forwarded either.
CASES: dict[str, tuple[str, str | None]] = {
    # name: (what the agent gets, the receipt's reason or None when no flow ever exists)
    "bare CR in a header value": ("400", "header X-Note holds a control character (CR)"),
    "bare LF in a header value": ("400", None),
    "obs-fold": ("400", "header X-Note is folded over several lines (obs-fold)"),
    "NUL in a header value": ("400", "header X-Note holds a control character (NUL)"),
    "CR in a header name": ("400", "invalid header name: b'X-No\\rte'"),
    "Content-Length and Transfer-Encoding": ("400", "both transfer-encoding and content-length"),
    "Transfer-Encoding and Content-Length": ("400", "both transfer-encoding and content-length"),
    "two differing Content-Length": ("400", "multiple content-length headers"),
    "Transfer-Encoding gzip, chunked": ("400", "a Transfer-Encoding other than chunked"),
    "Transfer-Encoding with a space before the colon": ("400", "invalid header name: b'Transfer-Encoding '"),
    "Transfer-Encoding xchunked": ("400", "unknown transfer-encoding header"),
    # Errors inside a chunked body: mitmproxy (h11) drops the connection without an answer.
    "a quoted chunk extension holding CRLF": ("dropped", "HTTP/1 protocol error"),
    "a bad chunk size": ("dropped", "HTTP/1 protocol error"),
    # mitmproxy 11.0.2 raises NotImplementedError on HTTP/1 trailers: no answer, the connection stays
    # open until the agent gives up; nothing is forwarded and no hook runs.
    "a trailer": ("no answer", None),
    "a body on GET": ("400", "a body on GET"),
    "a body on HEAD": ("400", "a body on HEAD"),
    "WebSocket upgrade": ("400", "protocol upgrade (websocket) is not allowed on a guarded host"),
    "h2c upgrade": ("400", "protocol upgrade (h2c) is not allowed on a guarded host"),
}


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_no_framing_trick_gets_a_hidden_request_to_the_upstream(smuggling_sidecar: RunningSidecar,
                                                                 upstream: LoggingUpstream, tls: bool) -> None:
    sidecar = smuggling_sidecar
    for case, (outcome, _reason) in CASES.items():
        with open_agent(sidecar, tls) as sock:
            sock.settimeout(2 if outcome == "no answer" else 10)
            sock.sendall(smuggle_case(case, tls))
            if outcome == "400":
                status, headers, body = read_response(sock)
                assert status == 400, (case, status, body)
                # The attack's second half: the agent's next request on the same connection. The
                # sidecar has closed it, so nothing can complete a prefix left anywhere.
                assert closed(sock), case
            elif outcome == "dropped":
                assert closed(sock), case
            else:
                with pytest.raises(TimeoutError):
                    sock.recv(65536)
        assert b"refs/heads/main" not in upstream.received, (case, upstream.received)
        assert b"PATCH" not in upstream.received, case
        assert not upstream.received, (case, upstream.received)  # nothing of a refused request went up

    # Every refusal that became a flow left a receipt (those mitmproxy answered itself included).
    def refusals() -> list[str]:
        return [r["reason"] for r in sidecar.receipts() if r["reason"].startswith("malformed request: ")]

    expected = [reason for _outcome, reason in CASES.values() if reason is not None]
    wait_until(lambda: len(refusals()) == len(expected), what="a receipt per refused request")
    for reason in expected:
        assert len([r for r in refusals() if reason in r]) == expected.count(reason), (reason, refusals())
    refused = [r for r in sidecar.receipts() if r["reason"].startswith("malformed request: ")]
    assert {r["decision"] for r in refused} == {"BLOCK"}
    assert {r["action"] for r in refused} == {"github.unknown"}
    assert TOKEN not in repr(refused)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_refusal_in_the_vendor_shape_for_what_enact_refuses_itself(smuggling_sidecar: RunningSidecar,
                                                                     upstream: LoggingUpstream, tls: bool) -> None:
    with open_agent(smuggling_sidecar, tls) as sock:
        sock.sendall(smuggle_case("bare CR in a header value", tls))
        status, headers, body = read_response(sock)
    assert status == 400 and headers["x-enact-decision"] == "BLOCK" and headers["connection"] == "close"
    assert body.startswith(b'{"message": "Blocked by Enact: malformed request: header X-Note holds a control '
                           b'character (CR)"'), body
    receipt = smuggling_sidecar.receipt(headers["x-enact-receipt"])
    assert receipt["decision"] == "BLOCK" and receipt["request"]["path"] == "/repos/acme/app"


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_well_formed_keep_alive_requests_reach_the_upstream_exactly_as_judged(
        smuggling_sidecar: RunningSidecar, upstream: LoggingUpstream, tls: bool) -> None:
    """The positive control: two requests on one agent connection arrive as exactly two requests."""
    issue = b'{"title": "t"}'
    with open_agent(smuggling_sidecar, tls) as sock:
        sock.sendall(b"GET " + target(b"/repos/acme/app", tls) + b" HTTP/1.1\r\nHost: api.github.com\r\n\r\n")
        first = read_response(sock)
        sock.sendall(b"POST " + target(b"/repos/acme/app/issues", tls) + b" HTTP/1.1\r\nHost: api.github.com\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(issue) + issue + b"\r\n0\r\n\r\n")
        second = read_response(sock)
    assert first[0] == 200 and second[0] == 200, (first, second)
    assert first[1]["x-enact-decision"] == second[1]["x-enact-decision"] == "PASS"
    received = upstream.received
    assert received.count(b" HTTP/1.1\r\n") == 2, received
    assert received.startswith(b"GET /repos/acme/app HTTP/1.1\r\n")
    assert b"POST /repos/acme/app/issues HTTP/1.1\r\n" in received
    assert received.count(b"authorization: Bearer " + TOKEN.encode()) == 2
    assert received.endswith(issue + b"\r\n0\r\n\r\n")


def _h2_request(sidecar: RunningSidecar, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> tuple[
        int | None, dict[bytes, bytes], bytes]:
    """One HTTP/2 request over CONNECT + TLS, sent with the h2 library's own checks turned off."""
    import h2.config
    import h2.connection
    import h2.events

    sock = open_agent(sidecar, tls=False)
    sock.sendall(b"CONNECT api.github.com:443 HTTP/1.1\r\nHost: api.github.com:443\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    context = ssl.create_default_context(cafile=str(sidecar.ca))
    context.set_alpn_protocols(["h2"])
    tls = context.wrap_socket(sock, server_hostname="api.github.com")
    assert tls.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False,
        validate_inbound_headers=False))
    conn.initiate_connection()
    conn.send_headers(1, headers, end_stream=not body)
    if body:
        conn.send_data(1, body, end_stream=True)
    tls.sendall(conn.data_to_send())
    status: int | None = None
    response_headers: dict[bytes, bytes] = {}
    data = b""
    with tls:
        while True:
            try:
                chunk = tls.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                break
            if not chunk:
                break
            done = False
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    response_headers = dict(event.headers)
                    status = int(response_headers[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(len(event.data), event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset,
                                        h2.events.ConnectionTerminated)):
                    done = True
            tls.sendall(conn.data_to_send())
            if done:
                break
    return status, response_headers, data


@pytest.mark.parametrize(("name", "value"), [(b"x-note", b"a\r" + HIDDEN), (b"x-note", b"a\n" + HIDDEN),
                                             (b"x-note", b"a\x00b")])
def test_http2_control_characters_never_reach_an_http1_upstream(smuggling_sidecar: RunningSidecar,
                                                                upstream: LoggingUpstream, name: bytes,
                                                                value: bytes) -> None:
    status, headers, body = _h2_request(smuggling_sidecar, [
        (b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"api.github.com"),
        (b":path", b"/repos/acme/app"), (name, value)])
    # mitmproxy's HTTP/2 layer (h2 4.x) lets these through; hygiene is what refuses them.
    assert status == 400, (status, body)
    assert b"Blocked by Enact: malformed request: header x-note holds a control character" in body
    assert headers[b"x-enact-decision"] == b"BLOCK"
    assert not upstream.received, upstream.received


def test_http2_request_passes_and_arrives_as_http1(smuggling_sidecar: RunningSidecar,
                                                   upstream: LoggingUpstream) -> None:
    status, headers, body = _h2_request(smuggling_sidecar, [
        (b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"api.github.com"),
        (b":path", b"/repos/acme/app"), (b"x-note", b"fine")])
    assert status == 200 and headers[b"x-enact-decision"] == b"PASS"
    assert upstream.received.startswith(b"GET /repos/acme/app HTTP/1.1\r\n")
    assert b"x-note: fine\r\n" in upstream.received


@pytest.mark.parametrize("declared", [2, 400])
def test_http2_content_length_that_disagrees_with_the_body_never_reaches_an_http1_upstream(
        smuggling_sidecar: RunningSidecar, upstream: LoggingUpstream, declared: int) -> None:
    """H2.CL: an HTTP/1 upstream would trust the forwarded Content-Length and read the rest as a request."""
    issue = b'{"title": "t"}'
    body = issue + b"POST /repos/acme/app/git/refs HTTP/1.1\r\nHost: api.github.com\r\nContent-Length: 0\r\n\r\n"
    status, headers, answer = _h2_request(smuggling_sidecar, [
        (b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"api.github.com"),
        (b":path", b"/repos/acme/app/issues"), (b"content-type", b"application/json"),
        (b"content-length", str(declared).encode())], body)
    # mitmproxy's h2 layer resets the stream (no response); hygiene would answer 400 if it did not.
    # (With HEADERS and DATA in one read, h2 raises before mitmproxy sees the request: no flow exists,
    # so no hook, and no receipt, as for an HTTP/1 head mitmproxy cannot parse.)
    assert status in (None, 400), (status, answer)
    assert not upstream.received, upstream.received
