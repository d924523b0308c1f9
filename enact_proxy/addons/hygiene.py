"""HTTP hygiene before recognition: a request an upstream could read differently from us is refused.

Request smuggling needs two parsers that disagree about where a request ends. Enact is one parser
(mitmproxy's HTTP/1 and HTTP/2 readers); the vendor behind it is the other. What the agent sends
is judged as mitmproxy parsed it, so every byte mitmproxy forwards must mean the same to any
upstream, however lenient. How Enact guarantees that (read against mitmproxy 11.0.2):

- **Framing is mitmproxy's, strictly.** ``validate_inbound_headers`` (on by default; this addon
  turns it back on if something turned it off) makes mitmproxy answer 400 and close the agent's
  connection, before any addon hook that could forward, for: a header name that is not an RFC 9110
  token (so no control character or space in a name), Content-Length together with
  Transfer-Encoding, several Content-Length or Transfer-Encoding fields, an invalid Content-Length,
  and a request Transfer-Encoding that does not end in ``chunked``; its HTTP/2 layer (h2) resets a
  stream whose DATA disagree with its Content-Length. Those flows reach only the
  ``error`` hook, where this addon writes the refusal's receipt (mitmproxy has already answered,
  with its own 400 page, not the vendor's shape). A head mitmproxy cannot parse at all (a header
  line without a colon, so also a bare LF inside a value; a bad request line) and HTTP/2 frames h2
  rejects before the request is complete never become a flow: mitmproxy answers 400 or resets and
  logs, no hook runs, so there is no receipt -- and nothing is forwarded. (A chunked body with
  trailer fields makes mitmproxy 11.0.2 raise NotImplementedError: the agent gets no answer at all,
  and again nothing is forwarded.)
- **What mitmproxy lets through, this addon refuses** (400 with a receipt, in the vendor's error
  shape on a guarded host): any control character (CR, LF, NUL, ... anything below 0x20 but HTAB,
  and DEL) in a header name or value. mitmproxy splits header lines on LF only, so a bare CR stays
  inside a value and would be forwarded byte for byte; an upstream that ends lines at a bare CR
  would then read the rest as a new request, completed by the agent's next one with the credential
  the sidecar injects. HTTP/2 requests need the same check: mitmproxy's h2 layer passes CR, LF and
  NUL in values on to an HTTP/1 upstream (checked with raw frames). An obs-fold line (a header
  line starting with space or tab) is kept by mitmproxy as a value holding CRLF and would be re-sent
  folded: refused too. Also refused: control
  characters or spaces in the method or request target, a Transfer-Encoding other than exactly
  ``chunked`` (mitmproxy accepts ``gzip, chunked``), a body on GET or HEAD (an upstream ignoring
  bodies there would read the body as the next request), and ``Upgrade`` (WebSocket, h2c) or
  ``HTTP2-Settings`` on a guarded host: after a 101 the connection is a tunnel nobody judges
  (mitmproxy's own DisableH2C addon silently strips an h2c upgrade in its ``request`` hook, so the
  upgrade is noted in ``requestheaders``, before it can).
- **The body is re-framed by mitmproxy.** It reads the whole body (never streamed on guarded
  hosts), then sends exactly those bytes: with the agent's Content-Length (which this addon checks
  equals the body's length, whatever the agent's HTTP version), or re-chunked.
- **Upstream connections are never shared between agent connections.** mitmproxy keeps upstream
  connections in the ``HttpLayer`` of one client connection; a second agent connection opens its
  own. Within one agent connection an HTTP/1 upstream connection is reused for that connection's
  next request (mitmproxy's HTTP/1 server does not pipeline: it waits for the response before
  reading the next request). Reuse is safe because of the two points above: each forwarded
  request is re-serialised from parsed, checked fields, so an upstream sees exactly the requests
  that were judged; and data an upstream sends with no request waiting closes that connection
  (mitmproxy: "Unexpected data from server"), so a desynchronised upstream cannot answer the next
  request with a stale response. A refused request's connection is closed (``Connection: close``)
  so no byte after it is read as another request.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from mitmproxy import ctx, http

from connectors.base import Refusal
from enact_proxy.addons._common import CALL, PASSTHROUGH, REFUSAL, VERDICTS, WIRE, decision_headers
from enact_proxy.addons.recognise import bare_call
from enact_proxy.httpcall import normalise_host
from enact_proxy.models import ActionRequest, RequestSummary
from enact_proxy.receipts.waiting import durable

if TYPE_CHECKING:
    from enact_proxy.addons.enact import Enact

#: Set (to the reason) on a flow this addon refused.
HYGIENE = "enact.hygiene"
#: The upgrade a request asked for ("" for none), noted before mitmproxy's DisableH2C addon strips an h2c one.
UPGRADE = "enact.upgrade"

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Every C0 control but HTAB, and DEL: never part of a header value a server should accept.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TARGET_BAD = re.compile(rb"[\x00-\x20\x7f]")
_NAMES = {0x00: "NUL", 0x0A: "LF", 0x0D: "CR", 0x7F: "DEL"}
_NO_BODY_METHODS = frozenset({b"GET", b"HEAD"})
# mitmproxy's own refusals of a request's framing (validate_headers, the HTTP/1 head and body readers).
_MITMPROXY_REFUSALS = ("from client, refusing to prevent request smuggling", "HTTP/1 protocol error",
                       "HTTP/2 protocol error", "Bad HTTP request line", "Invalid header",
                       "invalid content-length", "transfer-encoding")


class Hygiene:
    def __init__(self, root: Enact):
        self.root = root

    def configure(self, updated: set[str]) -> None:
        options = getattr(ctx, "options", None)
        if options is not None and getattr(options, "validate_inbound_headers", True) is False:
            options.update(validate_inbound_headers=True)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.metadata[UPGRADE] = requested_upgrade(flow.request.headers) or ""

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        sidecar = self.root.state
        wire = sidecar.by_host.get(normalise_host(flow.request.host))
        if wire is None and not flow.metadata.get(PASSTHROUGH):
            return  # egress has refused it already (or will): nothing reaches such a host
        try:
            reason = malformed(flow.request, guarded=wire is not None, upgrade=flow.metadata.get(UPGRADE))
        except Exception as exc:  # noqa: BLE001 - a request this check cannot read is not let past it
            reason = f"could not be checked ({type(exc).__name__})"
        if reason is None:
            return
        flow.metadata[HYGIENE] = reason
        if wire is not None:
            # Decide answers it like any refusal found before policies: the vendor's shape, a receipt.
            flow.metadata[WIRE] = wire
            flow.metadata[CALL] = bare_call(flow)
            flow.metadata[REFUSAL] = Refusal(f"malformed request: {reason}", status=400)
            return
        await self._refuse_plain(flow, f"malformed request: {reason}")

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(HYGIENE) and flow.response is not None:
            flow.response.headers["connection"] = "close"

    async def error(self, flow: http.HTTPFlow) -> None:
        """mitmproxy refused the request's framing itself (400, connection closed): write the receipt."""
        message = flow.error.msg if flow.error else ""
        if flow.response is not None or flow.metadata.get(VERDICTS) or flow.metadata.get(HYGIENE):
            return
        if flow.request.method == "CONNECT" or not any(m in message for m in _MITMPROXY_REFUSALS):
            return
        # mitmproxy refuses before it fills in the host of a request inside a TLS tunnel: use the
        # tunnel's target then (SNI, the CONNECT address), and the Host header last.
        server = flow.server_conn.address[0] if flow.server_conn and flow.server_conn.address else ""
        by_host = self.root.state.by_host
        candidates = [flow.request.host, flow.client_conn.sni or "", str(server), flow.request.host_header or ""]
        host = next((h for h in map(normalise_host, candidates) if h in by_host), None)
        if host is None:
            return
        wire = by_host[host]
        flow.metadata[HYGIENE] = message
        engine = self.root.state.engine
        path = flow.request.path.split("?", 1)[0]
        action = ActionRequest(system=wire.system, action="unknown",
                               payload={"method": flow.request.method, "path": path},
                               request=RequestSummary(method=flow.request.method, host=host, path=path))
        verdict = engine.refuse(action, f"malformed request: {_short(message)}")
        flow.metadata[VERDICTS] = [verdict]
        try:
            await durable(engine.record(verdict))
        except Exception as exc:  # noqa: BLE001 - refused already; the store reports its own failures
            logging.warning("receipt of a refused malformed request could not be written: %s", type(exc).__name__)

    async def _refuse_plain(self, flow: http.HTTPFlow, reason: str) -> None:
        """A passthrough host reached over plain HTTP: refused in plain text, with a receipt."""
        engine = self.root.state.engine
        host = normalise_host(flow.request.host)
        path = flow.request.path.split("?", 1)[0]
        action = ActionRequest(system="egress", action="request", payload={"host": host, "path": path},
                               request=RequestSummary(method=flow.request.method, host=host, path=path))
        verdict = engine.refuse(action, reason)
        headers: dict[str, Any] = {"content-type": "text/plain; charset=utf-8", **decision_headers([verdict])}
        try:
            await durable(engine.record(verdict))
        except Exception as exc:  # noqa: BLE001 - refused either way; say the receipt is missing
            headers["X-Enact-Receipt-Error"] = type(exc).__name__
        flow.metadata[VERDICTS] = [verdict]
        flow.response = http.Response.make(400, (verdict.message + "\n").encode(), headers)


def requested_upgrade(headers: http.Headers) -> str | None:
    """The protocol switch a request asks for (``websocket``, ``h2c``), or None."""
    upgrade: bytes | None = None
    settings = asks = False
    for name, value in headers.fields:  # one pass: mitmproxy's header lookups scan the fields each time
        lower = name.lower()
        if lower == b"upgrade":
            upgrade = value
        elif lower == b"http2-settings":
            settings = True
        elif lower == b"connection" and b"upgrade" in value.lower():
            asks = asks or b"upgrade" in {t.strip() for t in value.lower().split(b",")}
    if upgrade is not None or asks:
        return _printable(upgrade or b"") or "Connection: upgrade"
    return "HTTP2-Settings" if settings else None


def malformed(request: http.Request, *, guarded: bool, upgrade: str | None = None) -> str | None:
    """Why ``request`` could be read differently by an upstream, or None when it cannot.

    ``upgrade`` is what :func:`requested_upgrade` found when the headers arrived (another addon may
    have removed them since): ``""`` for none, None when nobody looked."""
    method = request.data.method
    if not _TOKEN.match(method):
        return "the method is not a token"
    target = request.data.path
    if _TARGET_BAD.search(target):
        return f"the request target holds {_describe(target)}"
    content_lengths: list[bytes] = []
    transfer_encodings: list[bytes] = []
    for name, value in request.headers.fields:
        if not _TOKEN.match(name):
            return f"a header name holds {_describe(name) if _CONTROL.search(name) else 'a character outside a token'}"
        if _CONTROL.search(value):
            if b"\n " in value or b"\n\t" in value:
                return f"header {_printable(name)} is folded over several lines (obs-fold)"
            return f"header {_printable(name)} holds {_describe(value)}"
        lower = name.lower()
        if lower == b"content-length":
            content_lengths.append(value.strip())
        elif lower == b"transfer-encoding":
            transfer_encodings.append(value.strip())
    if content_lengths and transfer_encodings:
        return "both Content-Length and Transfer-Encoding are set"
    if len(set(content_lengths)) > 1:
        return "several differing Content-Length values"
    if any(not cl.isdigit() for cl in content_lengths) or any(b"," in cl for cl in content_lengths):
        return "Content-Length is not one decimal number"
    if transfer_encodings and [te.lower() for te in transfer_encodings] != [b"chunked"]:
        return "a Transfer-Encoding other than chunked"
    body = request.raw_content or b""
    if content_lengths and int(content_lengths[0]) != len(body):
        # mitmproxy forwards the agent's Content-Length with the body it read: they must agree, or an
        # HTTP/1 upstream would frame the request differently (HTTP/2's h2 checks this today; we do
        # not rely on it).
        return f"Content-Length {int(content_lengths[0])} does not match the {len(body)}-byte body"
    has_body = bool(transfer_encodings or any(int(cl) for cl in content_lengths) or body)
    if has_body and method.upper() in _NO_BODY_METHODS:
        return f"a body on {method.decode()}"
    if upgrade is None:  # not noted when the headers arrived (a flow built by hand): look now
        upgrade = requested_upgrade(request.headers)
    if guarded and upgrade:
        return f"protocol upgrade ({upgrade}) is not allowed on a guarded host"
    return None


def _describe(raw: bytes) -> str:
    found = _CONTROL.search(raw) or _TARGET_BAD.search(raw)
    if found is None:
        return "a forbidden character"
    code = found.group()[0]
    return f"a control character ({_NAMES.get(code, f'0x{code:02x}')})" if code != 0x20 else "a space"


def _printable(raw: bytes) -> str:
    """A header name (or value) fit for a message: bounded, control characters escaped."""
    text = raw[:64].decode("latin-1")
    return "".join(c if 0x20 < ord(c) < 0x7F else f"\\x{ord(c):02x}" for c in text)


def _short(message: str) -> str:
    text = message.split(", refusing to prevent request smuggling")[0].removeprefix("Received ")
    return text[:200]
