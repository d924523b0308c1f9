"""Allowlist and policies decide; a pass is made durable and forwarded, a refusal answered in the
vendor's own error shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mitmproxy import http

from connectors.base import HttpCall, Refusal
from enact_proxy import pipeline
from enact_proxy.addons._common import (
    ACTIONS,
    CALL,
    JUDGEMENT,
    PASSTHROUGH,
    REFUSAL,
    TICKETS,
    VERDICTS,
    WIRE,
    decision_headers,
    strip_enact_headers,
)
from enact_proxy.engine import BLOCK_PREFIX, Engine, Judgement, Verdict, block_message
from enact_proxy.models import ActionRequest, RequestSummary
from enact_proxy.pipeline import close_unforwarded

if TYPE_CHECKING:
    from enact_proxy.addons.enact import Enact


class Decide:
    def __init__(self, root: Enact):
        self.root = root

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        wire = flow.metadata.get(WIRE)
        if wire is None:
            if not flow.metadata.get(PASSTHROUGH):
                # Egress refuses every host that is neither guarded nor passthrough, and Recognise names
                # the wire of a guarded one: only an earlier hook that raised (mitmproxy logs it and goes
                # on with the flow) leaves a request here. Refuse it rather than forward it unjudged.
                await self._refuse_unjudged(flow, "request was not judged (an earlier check failed)")
            return
        try:
            await self._decide(flow, wire)
        except Exception as exc:  # noqa: BLE001 - mitmproxy would log a hook error and forward: refuse instead
            engine = self.root.state.engine
            close_unforwarded(engine, flow.metadata.pop(TICKETS, None) or [])
            judgement = flow.metadata.pop(JUDGEMENT, None)
            if judgement is not None:
                engine.unclaim(judgement)
            await self._refuse_unjudged(flow, f"internal error while deciding ({type(exc).__name__})")

    async def _refuse_unjudged(self, flow: http.HTTPFlow, reason: str) -> None:
        """403 in plain text, with a BLOCK receipt when the engine can still write one."""
        flow.response = http.Response.make(403, f"{BLOCK_PREFIX}{reason}\n".encode(),
                                           {"content-type": "text/plain; charset=utf-8",
                                            "X-Enact-Decision": "BLOCK"})
        try:
            engine = self.root.state.engine
            wire = flow.metadata.get(WIRE)
            verdict = engine.refuse(_unrecognised(wire.system if wire is not None else "egress", flow), reason)
            flow.metadata[VERDICTS] = [verdict]
            flow.response.headers.update(decision_headers([verdict]))
            error = await pipeline.record_refusals(engine, [verdict])
        except Exception as exc:  # noqa: BLE001 - refused either way; say the receipt is missing
            error = exc
        if error is not None:
            flow.response.headers["X-Enact-Receipt-Error"] = type(error).__name__

    async def _decide(self, flow: http.HTTPFlow, wire: Any) -> None:
        engine = self.root.state.engine
        call: HttpCall | None = flow.metadata.get(CALL)
        refusal: Refusal | None = flow.metadata.get(REFUSAL)
        status = 403
        if refusal is not None:
            judgement = engine.refuse_request([refusal.action or _unrecognised(wire.system, flow)], refusal.reason)
            status = refusal.status
        elif call is not None:
            judgement = await pipeline.judge(engine, flow.metadata[ACTIONS], lambda: wire.lookup_systems(call))
        else:  # recognised without a call cannot happen; refuse rather than guess
            judgement = engine.refuse_request([_unrecognised(wire.system, flow)], "request was not recognised")
        flow.metadata[JUDGEMENT] = judgement
        flow.metadata[VERDICTS] = judgement.verdicts
        if judgement.forwards:
            await self._forward(flow, engine, wire, call, judgement)
        else:
            await self._refuse(flow, engine, wire, call, judgement.verdicts, status)

    async def _forward(self, flow: http.HTTPFlow, engine: Engine, wire: Any, call: HttpCall | None,
                       judgement: Judgement) -> None:
        try:
            tickets = await pipeline.open_intents(engine, judgement)
        except pipeline.NotDurable as exc:  # no receipt, no action
            await self._refuse(flow, engine, wire, call, judgement.verdicts, 403, skip=exc.opened)
            return
        assert call is not None
        flow.metadata[TICKETS] = tickets
        upstream = wire.upstream(call)
        request = flow.request
        strip_enact_headers(request.headers)
        # The upstream sees the host the agent called, so the URLs it answers with still point there.
        agent_host = request.host_header
        request.scheme, request.host, request.port = upstream.scheme, upstream.host, upstream.port
        request.host_header = agent_host
        if upstream.path_prefix:
            request.path = upstream.path_prefix.rstrip("/") + request.path
        for name, value in wire.credential_headers(call).items():
            request.headers[name] = value
        framed = "content-length" in request.headers or "transfer-encoding" in request.headers
        if request.raw_content and not framed:
            # An HTTP/2 body without content-length (git's chunked push) would reach an HTTP/1 upstream empty.
            request.headers["content-length"] = str(len(request.raw_content))

    async def _refuse(self, flow: http.HTTPFlow, engine: Engine, wire: Any, call: HttpCall | None,
                      verdicts: list[Verdict], status: int, skip: set[str] | frozenset[str] = frozenset()) -> None:
        flow.metadata[VERDICTS] = verdicts
        message = block_message(verdicts)
        headers = decision_headers(verdicts)
        error = await pipeline.record_refusals(engine, verdicts, skip)
        if error is not None:
            headers["X-Enact-Receipt-Error"] = type(error).__name__
        if call is not None:
            # A wire may answer with each action's own verdict (a git push names every ref's reason).
            refuse_verdicts = getattr(wire, "refuse_verdicts", None)
            answer = (refuse_verdicts(call, verdicts, status) if refuse_verdicts is not None
                      else wire.refuse(call, message, status))
            flow.response = http.Response.make(answer.status, answer.body, {**answer.headers, **headers})
        else:
            flow.response = http.Response.make(status, (message + "\n").encode(),
                                               {"content-type": "text/plain; charset=utf-8", **headers})


def _unrecognised(system: str, flow: http.HTTPFlow) -> ActionRequest:
    request = flow.request
    path = request.path.split("?", 1)[0]
    return ActionRequest(system=system, action="unknown", payload={"method": request.method, "path": path},
                         request=RequestSummary(method=request.method, host=request.pretty_host, path=path))
