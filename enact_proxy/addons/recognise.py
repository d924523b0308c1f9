"""What a request to a guarded system does: its connector names the actions (or a refusal)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mitmproxy import http

from connectors.base import HttpCall, Refusal
from enact_proxy.addons._common import ACTIONS, CALL, PASSTHROUGH, REFUSAL, WIRE
from enact_proxy.httpcall import call_from_flow, normalise_host, normalise_path

if TYPE_CHECKING:
    from enact_proxy.addons.enact import Enact


class Recognise:
    def __init__(self, root: Enact):
        self.root = root

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.metadata.get(PASSTHROUGH) or REFUSAL in flow.metadata:
            return  # answered, tunnelled, or refused before recognition (hygiene)
        sidecar = self.root.state
        wire = sidecar.by_host.get(normalise_host(flow.request.host))
        if wire is None:
            return
        flow.metadata[WIRE] = wire
        try:
            call = call_from_flow(flow, sidecar.max_body_bytes)
            flow.metadata[CALL] = call
            # Recognising may look things up (a git push fetches objects): then keep the event loop free.
            if getattr(wire, "recognition_may_block", _always)(call):
                flow.metadata[ACTIONS] = await asyncio.to_thread(wire.recognise, call)
            else:
                flow.metadata[ACTIONS] = wire.recognise(call)
        except Refusal as refusal:
            flow.metadata[REFUSAL] = refusal
        except Exception as exc:  # noqa: BLE001 - a recogniser bug refuses the request, never forwards it
            flow.metadata[REFUSAL] = Refusal(f"request could not be recognised: {type(exc).__name__}: {exc}")
        if CALL not in flow.metadata:
            # The request could not be read (body too large or undecodable, override header, ...):
            # the refusal still goes out in the vendor's error shape, which needs the method and path.
            flow.metadata[CALL] = bare_call(flow)


def bare_call(flow: http.HTTPFlow) -> HttpCall:
    """The call without its body, for shaping a refusal only (never judged or forwarded)."""
    request = flow.request
    raw_path = request.path.split("?", 1)[0]
    try:
        path = normalise_path(raw_path)
    except Refusal:
        path = "/"
    return HttpCall(method=request.method.upper(), host=normalise_host(request.host), path=path, raw_path=raw_path)


def _always(call: HttpCall) -> bool:
    return True
