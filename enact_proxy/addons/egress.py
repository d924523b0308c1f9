"""Who may be reached at all: guarded systems are intercepted, passthrough hosts tunnelled
untouched, and every other host refused before any connection to it is opened."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mitmproxy import http, tls
from mitmproxy.proxy import server_hooks

from enact_proxy.addons._common import PASSTHROUGH, decision_headers
from enact_proxy.httpcall import normalise_host
from enact_proxy.models import ActionRequest, RequestSummary
from enact_proxy.receipts.waiting import durable

if TYPE_CHECKING:
    from enact_proxy.addons.enact import Enact


class Egress:
    def __init__(self, root: Enact):
        self.root = root

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

    async def request(self, flow: http.HTTPFlow) -> None:
        """Plain-HTTP proxy requests (no CONNECT) to hosts that are neither guarded nor passthrough."""
        if flow.response is not None or flow.metadata.get(PASSTHROUGH):
            return
        host = normalise_host(flow.request.host)
        kind = self._allowed(host)
        if kind is None:
            await self._refuse(flow, host, flow.request.method)
        elif kind == "passthrough":
            flow.metadata[PASSTHROUGH] = True

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        server = data.context.server.address
        names = {normalise_host(data.client_hello.sni or "")}
        if server:
            names.add(normalise_host(str(server[0])))
        passthrough = self.root.state.passthrough
        if names & passthrough and not names & set(self.root.state.by_host):
            data.ignore_connection = True

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        address = data.server.address
        if address is None:
            return
        host, port = normalise_host(str(address[0])), int(address[1])
        sidecar = self.root.state
        if (host, port) in sidecar.upstream_addresses or host in sidecar.passthrough or sidecar.engine.mode == "shadow":
            return
        data.server.error = f"Blocked by Enact: egress to {host}:{port} is not allowed"

    async def _refuse(self, flow: http.HTTPFlow, host: str, method: str) -> None:
        engine = self.root.state.engine
        action = ActionRequest(system="egress", action="connect",
                               payload={"host": host, "port": flow.request.port},
                               request=RequestSummary(method=method, host=host, path=None))
        verdict = engine.refuse(action, f"egress to {host} is not allowed (not a guarded system or passthrough host)")
        if verdict.forwards:  # shadow mode: recorded, tunnelled untouched
            flow.metadata[PASSTHROUGH] = True
            await durable(engine.record(verdict))
            return
        headers: dict[str, Any] = {"content-type": "text/plain; charset=utf-8", **decision_headers([verdict])}
        try:
            await durable(engine.record(verdict))
        except Exception as exc:  # noqa: BLE001 - refused either way; say the receipt is missing
            headers["X-Enact-Receipt-Error"] = type(exc).__name__
        flow.response = http.Response.make(403, (verdict.message + "\n").encode(), headers)
