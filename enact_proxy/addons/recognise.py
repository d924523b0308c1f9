"""What a request to a guarded system does: its connector names the actions (or a refusal)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mitmproxy import http

from connectors.base import Refusal
from enact_proxy.addons._common import ACTIONS, CALL, PASSTHROUGH, REFUSAL, WIRE
from enact_proxy.httpcall import call_from_flow, normalise_host

if TYPE_CHECKING:
    from enact_proxy.addons.enact import Enact


class Recognise:
    def __init__(self, root: Enact):
        self.root = root

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.metadata.get(PASSTHROUGH):
            return
        sidecar = self.root.state
        wire = sidecar.by_host.get(normalise_host(flow.request.host))
        if wire is None:
            return
        flow.metadata[WIRE] = wire
        try:
            call = call_from_flow(flow, sidecar.max_body_bytes)
            flow.metadata[CALL] = call
            # Recognising a git push may fetch objects from the upstream: keep the event loop free.
            flow.metadata[ACTIONS] = await asyncio.to_thread(wire.recognise, call)
        except Refusal as refusal:
            flow.metadata[REFUSAL] = refusal
        except Exception as exc:  # noqa: BLE001 - a recogniser bug refuses the request, never forwards it
            flow.metadata[REFUSAL] = Refusal(f"request could not be recognised: {type(exc).__name__}: {exc}")
