"""Who may be reached at all: guarded systems are intercepted, passthrough hosts tunnelled
untouched, and every other host refused before any connection to it is opened.

Connections the network redirects to the transparent listener (``listen.transparent``) carry no
CONNECT: they are routed by their TLS server name (plain HTTP by its Host), never by the address
they were sent to, which is a redirect target (or unknown, after a DNAT in another namespace)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from mitmproxy import connection, http, tls
from mitmproxy.proxy import mode_specs, server_hooks

from enact_proxy.addons._common import PASSTHROUGH, decision_headers
from enact_proxy.httpcall import normalise_host
from enact_proxy.models import ActionRequest, RequestSummary
from enact_proxy.receipts.waiting import durable

if TYPE_CHECKING:
    from enact_proxy.addons.enact import Enact


NO_SERVER_NAME = "connection without a server name (TLS SNI or HTTP Host) cannot be routed"
DEFAULT_PORTS = {True: 443, False: 80}  # TLS or not, when the original port is unknown


def transparent(client: connection.Client) -> bool:
    return isinstance(client.proxy_mode, mode_specs.TransparentMode)


class Egress:
    def __init__(self, root: Enact):
        self.root = root
        # Transparent connections refused at the ClientHello (their receipt is written): the tunnel
        # mitmproxy then tries to open is refused at server_connect without a second receipt.
        self._refused: set[str] = set()

    def _allowed(self, host: str) -> str | None:
        """``"guarded"``, ``"passthrough"``, or None for a host nobody may reach."""
        sidecar = self.root.state
        if host in sidecar.by_host:
            return "guarded"
        if host in sidecar.passthrough:
            return "passthrough"
        return None

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        host = normalise_host(flow.request.host)
        kind = self._allowed(host)
        if kind == "passthrough":
            flow.metadata[PASSTHROUGH] = True
        elif kind is None:
            await self._refuse(flow, host, "CONNECT")

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """A transparent request names its host by SNI (TLS) or Host, not by the redirected address."""
        client = flow.client_conn
        if not transparent(client):
            return
        request = flow.request
        name = normalise_host(client.sni or "") if client.tls else normalise_host(request.host_header or "")
        port = _port(request.host_header or "") if not client.tls else None
        original_port = int(client.sockname[1]) if client.sockname else 0
        request.data.host = name  # .data: the Host header the agent sent stays as it was
        request.data.port = port or original_port or DEFAULT_PORTS[bool(client.tls)]

    async def request(self, flow: http.HTTPFlow) -> None:
        """Plain-HTTP proxy requests (no CONNECT) to hosts that are neither guarded nor passthrough."""
        if flow.response is not None or flow.metadata.get(PASSTHROUGH):
            return
        if transparent(flow.client_conn) and not flow.request.host:
            await self._refuse(flow, "", flow.request.method, NO_SERVER_NAME)
            return
        host = normalise_host(flow.request.host)
        kind = self._allowed(host)
        if kind is None:
            await self._refuse(flow, host, flow.request.method)
        elif kind == "passthrough":
            flow.metadata[PASSTHROUGH] = True

    def tls_clienthello(self, data: tls.ClientHelloData) -> Awaitable[None] | None:
        # (Not a coroutine function: mitmproxy awaits what a hook returns, and the proxied path stays synchronous.)
        if transparent(data.context.client):
            return self._transparent_hello(data)
        server = data.context.server.address
        names = {normalise_host(data.client_hello.sni or "")}
        if server:
            names.add(normalise_host(str(server[0])))
        passthrough = self.root.state.passthrough
        if names & passthrough and not names & set(self.root.state.by_host):
            data.ignore_connection = True
        return None

    async def _transparent_hello(self, data: tls.ClientHelloData) -> None:
        """Guarded: intercepted. Passthrough: tunnelled untouched to the server *named*, which the
        sidecar dials itself. Unknown or no name: refused with a receipt, no TLS, like a refused CONNECT."""
        client, server = data.context.client, data.context.server
        name = normalise_host(data.client_hello.sni or "")
        kind = self._allowed(name) if name else None
        if kind == "guarded":
            return
        data.ignore_connection = True
        original_port = int(server.address[1]) if server.address else 0
        port = original_port or DEFAULT_PORTS[True]
        if kind == "passthrough":
            server.address = (name, port)
            return
        reason = (f"egress to {name} is not allowed (not a guarded system or passthrough host)" if name
                  else NO_SERVER_NAME)
        tunnel = await self._record_refusal(name or None, port, "TLS", reason)
        if tunnel and name:  # shadow mode: recorded, tunnelled untouched to the name
            server.address = (name, port)
            return
        self._refused.add(client.id)

    def client_disconnected(self, client: connection.Client) -> None:
        self._refused.discard(client.id)

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> Awaitable[Any] | None:
        address = data.server.address
        if address is None:
            return None
        if transparent(data.client) and (data.client.id in self._refused or address == data.client.sockname):
            # Refused at the ClientHello, or about to dial the original destination (not TLS, not HTTP:
            # no name to route by). Never forwarded, also in shadow mode: there is nowhere to route it.
            data.server.error = f"Blocked by Enact: {NO_SERVER_NAME}"
            if data.client.id in self._refused:
                self._refused.discard(data.client.id)
                return None
            return self._record_refusal(None, int(address[1]), "TCP", NO_SERVER_NAME)
        host, port = normalise_host(str(address[0])), int(address[1])
        sidecar = self.root.state
        if (host, port) in sidecar.upstream_addresses or host in sidecar.passthrough or sidecar.engine.mode == "shadow":
            return None
        data.server.error = f"Blocked by Enact: egress to {host}:{port} is not allowed"
        return None

    async def _record_refusal(self, host: str | None, port: int, method: str, reason: str) -> bool:
        """A refused transparent connection's receipt (its refusal is the closed connection).
        True when the connection may go ahead anyway: shadow mode, and the receipt is durable."""
        engine = self.root.state.engine
        action = ActionRequest(system="egress", action="connect", payload={"host": host, "port": port},
                               request=RequestSummary(method=method, host=host or "", path=None))
        verdict = engine.refuse(action, reason)
        try:
            await durable(engine.record(verdict))
        except Exception:  # noqa: BLE001 - refused either way; shadow mode tunnels nothing it cannot record
            return False
        return verdict.forwards

    async def _refuse(self, flow: http.HTTPFlow, host: str, method: str, reason: str | None = None) -> None:
        engine = self.root.state.engine
        action = ActionRequest(system="egress", action="connect",
                               payload={"host": host or None, "port": flow.request.port},
                               request=RequestSummary(method=method, host=host, path=None))
        verdict = engine.refuse(action, reason or
                                f"egress to {host} is not allowed (not a guarded system or passthrough host)")
        headers: dict[str, Any] = {"content-type": "text/plain; charset=utf-8", **decision_headers([verdict])}
        try:
            await durable(engine.record(verdict))
        except Exception as exc:  # noqa: BLE001 - refused, even in shadow mode: no receipt, no action
            headers["X-Enact-Receipt-Error"] = type(exc).__name__
        else:
            if verdict.forwards:  # shadow mode: tunnelled untouched, once its receipt is durable
                flow.metadata[PASSTHROUGH] = True
                return
        flow.response = http.Response.make(403, (verdict.message + "\n").encode(), headers)


def _port(authority: str) -> int | None:
    """The port of a Host header (``example.com:8080``, ``[::1]:8080``), None without one."""
    _, sep, port = authority.rpartition(":")
    if not sep or "]" in port or not port.isdigit():
        return None
    return int(port) if 0 < int(port) < 65536 else None
