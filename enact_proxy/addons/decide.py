"""Allowlist and policies decide; a pass is made durable and forwarded, a refusal answered in the
vendor's own error shape."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from mitmproxy import http

from connectors.base import HttpCall, Refusal
from enact_proxy.addons._common import (
    ACTIONS,
    CALL,
    REFUSAL,
    TICKETS,
    VERDICTS,
    WIRE,
    decision_headers,
    strip_enact_headers,
)
from enact_proxy.engine import Engine, Verdict, block_message
from enact_proxy.models import ActionRequest, ActionResult, Decision, RequestSummary
from enact_proxy.receipts.waiting import durable

if TYPE_CHECKING:
    from enact_proxy.addons.enact import Enact

NOT_FORWARDED = {"outcome": "not forwarded"}


class Decide:
    def __init__(self, root: Enact):
        self.root = root

    async def request(self, flow: http.HTTPFlow) -> None:
        wire = flow.metadata.get(WIRE)
        if flow.response is not None or wire is None:
            return
        try:
            await self._decide(flow, wire)
        except Exception as exc:  # noqa: BLE001 - mitmproxy would log a hook error and forward: refuse instead
            engine = self.root.state.engine
            for ticket in flow.metadata.pop(TICKETS, None) or []:
                engine.close(ticket, [ActionResult(action="forward", success=False, output=NOT_FORWARDED)])
            message = f"Blocked by Enact: internal error while deciding ({type(exc).__name__})"
            flow.response = http.Response.make(403, (message + "\n").encode(),
                                               {"content-type": "text/plain; charset=utf-8",
                                                "X-Enact-Decision": "BLOCK"})

    async def _decide(self, flow: http.HTTPFlow, wire: Any) -> None:
        engine = self.root.state.engine
        call: HttpCall | None = flow.metadata.get(CALL)
        refusal: Refusal | None = flow.metadata.get(REFUSAL)
        if refusal is not None:
            verdicts = [engine.refuse(refusal.action or _unrecognised(wire.system, flow), refusal.reason)]
            status = refusal.status
        elif call is not None:
            actions = flow.metadata[ACTIONS]
            if engine.needs_systems(actions):  # a policy may ask the system: keep the event loop free
                verdicts = await asyncio.to_thread(_judge_all, engine, wire, call, actions, True)
            else:
                verdicts = _judge_all(engine, wire, call, actions, False)
            status = 403
        else:  # recognised without a call cannot happen; refuse rather than guess
            verdicts = [engine.refuse(_unrecognised(wire.system, flow), "request was not recognised")]
            status = 403
        flow.metadata[VERDICTS] = verdicts
        if all(v.forwards for v in verdicts):
            await self._forward(flow, engine, wire, call, verdicts)
        else:
            await self._refuse(flow, engine, wire, call, verdicts, status)

    async def _forward(self, flow: http.HTTPFlow, engine: Engine, wire: Any, call: HttpCall | None,
                       verdicts: list[Verdict]) -> None:
        tickets = []
        try:
            for verdict in verdicts:
                tickets.append(await durable(engine.open(verdict)))
        except Exception as exc:  # noqa: BLE001 - no receipt, no action
            for ticket in tickets:
                engine.close(ticket, [ActionResult(action="forward", success=False, output=NOT_FORWARDED)])
            reason = f"receipt could not be written: {exc}"
            await self._refuse(flow, engine, wire, call, [v.blocked(reason) for v in verdicts[len(tickets):]], 403)
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
                      verdicts: list[Verdict], status: int) -> None:
        flow.metadata[VERDICTS] = verdicts
        message = block_message(verdicts)
        headers = decision_headers(verdicts)
        try:
            for verdict in verdicts:
                await durable(engine.record(verdict))
        except Exception as exc:  # noqa: BLE001 - refused either way
            headers["X-Enact-Receipt-Error"] = type(exc).__name__
        if call is not None:
            # A wire may answer with each action's own verdict (a git push names every ref's reason).
            refuse_verdicts = getattr(wire, "refuse_verdicts", None)
            answer = (refuse_verdicts(call, verdicts, status) if refuse_verdicts is not None
                      else wire.refuse(call, message, status))
            flow.response = http.Response.make(answer.status, answer.body, {**answer.headers, **headers})
        else:
            flow.response = http.Response.make(status, (message + "\n").encode(),
                                               {"content-type": "text/plain; charset=utf-8", **headers})


def _judge_all(engine: Engine, wire: Any, call: HttpCall, actions: list[ActionRequest],
               with_systems: bool) -> list[Verdict]:
    """Judge every action; in enforce mode one refusal refuses the whole request."""
    systems: dict[str, Any] = {}
    try:
        if with_systems:
            systems = wire.lookup_systems(call)
    except Exception as exc:  # noqa: BLE001 - no lookup, no pass
        return [engine.refuse(a, f"system lookup unavailable: {exc}") for a in actions]
    verdicts = [engine.judge(a, systems) for a in actions]
    refused = [v for v in verdicts if v.decision is Decision.BLOCK]
    if refused and engine.mode == "enforce" and len(verdicts) > 1:
        first = refused[0]
        for v in verdicts:
            if v.decision is Decision.PASS:
                v.blocked(f"refused with the rest of this request ({first.action.full_name if first.action else '?'}"
                          f" was refused: {first.reason})")
    return verdicts


def _unrecognised(system: str, flow: http.HTTPFlow) -> ActionRequest:
    request = flow.request
    path = request.path.split("?", 1)[0]
    return ActionRequest(system=system, action="unknown", payload={"method": request.method, "path": path},
                         request=RequestSummary(method=request.method, host=request.pretty_host, path=path))
