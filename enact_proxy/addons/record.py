"""What happened after a pass: the outcome joins the receipt, the agent sees the decision headers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mitmproxy import http

from enact_proxy.addons._common import CALL, JUDGEMENT, TICKETS, VERDICTS, WIRE, decision_headers
from enact_proxy.models import ActionResult

if TYPE_CHECKING:
    from enact_proxy.addons.enact import Enact


class Record:
    def __init__(self, root: Enact):
        self.root = root

    def response(self, flow: http.HTTPFlow) -> None:
        verdicts = flow.metadata.get(VERDICTS)
        if not verdicts or flow.response is None:
            return
        flow.response.headers.update(decision_headers(verdicts))
        tickets = flow.metadata.pop(TICKETS, None)
        if tickets:
            outcome = _outcome(flow)
            success = flow.response.status_code < 400 and outcome.pop("success", True) is not False
            self._close(tickets, verdicts, success, outcome)
        judgement = flow.metadata.pop(JUDGEMENT, None)
        if judgement is not None:
            # The claims a request took stay unless the upstream refused it (SPEC §7).
            self.root.state.engine.settle(judgement, flow.response.status_code)

    def error(self, flow: http.HTTPFlow) -> None:
        tickets = flow.metadata.pop(TICKETS, None)
        if tickets:
            message = flow.error.msg if flow.error else "connection failed"
            self._close(tickets, flow.metadata[VERDICTS], False, {"error": message})
        flow.metadata.pop(JUDGEMENT, None)  # no answer: the action may have happened, claims stay

    def _close(self, tickets: list[Any], verdicts: list[Any], success: bool, output: dict[str, Any]) -> None:
        engine = self.root.state.engine
        for ticket, verdict in zip(tickets, verdicts, strict=False):
            action = verdict.action
            engine.close(ticket, [ActionResult(action=action.full_name if action else "forward",
                                               system=action.system if action else None,
                                               success=success, output=output)])


def _outcome(flow: http.HTTPFlow) -> dict[str, Any]:
    """Status plus what the upstream created: ``id`` fields, or the wire's own reading of the body."""
    assert flow.response is not None
    out: dict[str, Any] = {"status": flow.response.status_code}
    wire = flow.metadata.get(WIRE)
    reader = getattr(wire, "outcome", None)
    if reader is not None:  # it returns None for calls it has no reading of its own for
        try:
            special = reader(flow.metadata.get(CALL), flow.response.status_code, flow.response.content or b"")
        except Exception as exc:  # noqa: BLE001 - the outcome is informative; the status still stands
            out["outcome_error"] = f"{type(exc).__name__}: {exc}"
            return out
        if special is not None:
            out.update(special)
            return out
    content_type = flow.response.headers.get("content-type", "")
    if "json" in content_type and flow.response.content:
        try:
            body = json.loads(flow.response.content)
        except ValueError:
            return out
        if isinstance(body, dict):
            ids = [r.get("id") for r in body.get("results", []) if isinstance(r, dict)] if "results" in body else []
            if body.get("id") is not None:
                out["id"] = body["id"]
            elif ids:
                out["ids"] = ids
            for key in ("number", "sha", "ref", "merged"):
                if key in body and not isinstance(body[key], (dict, list)):
                    out[key] = body[key]
    return out
