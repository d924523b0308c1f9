"""The decision core every front door shares: allowlist, policies, verdict, receipt.

A front door (library client, HTTP addon, git, Postgres listener) turns what it saw into
:class:`ActionRequest` objects and then, for each:

    verdict = engine.judge(action, systems)          # or engine.refuse(action, reason)
    if verdict.forwards:
        ticket = engine.open(verdict).result()       # durable before anything is forwarded
        ...forward...
        ticket.close([ActionResult(...).model_dump(mode="json")])
    else:
        engine.record(verdict).result()              # the BLOCK receipt

The engine names no vendor: systems are whatever connectors were configured.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from enact_proxy.models import (
    RECEIPT_VERSION,
    ActionRequest,
    ActionResult,
    Decision,
    PolicyResult,
    Receipt,
    RequestSummary,
    WorkflowContext,
)
from enact_proxy.policy import Policy, after_pass, evaluate, instantiate, may_block
from enact_proxy.receipts.store import ReceiptError, StoreFront, Ticket
from enact_proxy.redact import Redactor

Mode = Literal["enforce", "shadow"]
BLOCK_PREFIX = "Blocked by Enact: "


@dataclass
class Verdict:
    """The canonical decision record, before it becomes a receipt."""

    run_id: str
    timestamp: datetime
    action: ActionRequest | None
    workflow: str | None
    decision: Decision
    reason: str
    mode: Mode
    actor_email: str = ""
    policy_results: list[PolicyResult] = field(default_factory=list)
    context: WorkflowContext | None = None

    @property
    def forwards(self) -> bool:
        """Whether the action goes ahead: a PASS, or anything at all in shadow mode."""
        return self.decision is Decision.PASS or self.mode == "shadow"

    @property
    def message(self) -> str:
        return BLOCK_PREFIX + self.reason

    def blocked(self, reason: str) -> Verdict:
        """The same action refused after all (a sibling in its batch was refused, a receipt failed)."""
        self.decision, self.reason = Decision.BLOCK, reason
        return self


def block_reason(results: Sequence[PolicyResult]) -> str:
    return "; ".join(f"{r.policy}: {r.reason}" for r in results if not r.passed)


def block_message(verdicts: Sequence[Verdict]) -> str:
    """One ``Blocked by Enact: ...`` line naming every distinct reason a request was refused for."""
    reasons: list[str] = []
    for verdict in verdicts:
        if verdict.decision is Decision.BLOCK and verdict.reason not in reasons:
            reasons.append(verdict.reason)
    return BLOCK_PREFIX + "; ".join(reasons)


class Engine:
    def __init__(
        self,
        *,
        policies: Sequence[Any],
        workflows: Mapping[str, Collection[str]],
        actor_email: str,
        actor_roles: Collection[str] = (),
        receipts: StoreFront,
        mode: Mode = "enforce",
        state: Any = None,
        config_sha256: str | None = None,
        redactor: Redactor | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        self.policies: list[Policy] = [instantiate(p) for p in policies]
        self.workflows = {name: frozenset(actions) for name, actions in workflows.items()}
        self.actor_email = actor_email
        self.actor_roles = tuple(actor_roles)
        self.receipts = receipts
        self.mode: Mode = mode
        self.state = state
        self.config_sha256 = config_sha256
        self.redactor = redactor or Redactor()
        self.clock = clock or (lambda: datetime.now(UTC))

    # -- deciding ----------------------------------------------------------------------------
    def workflow_for(self, action: ActionRequest) -> str | None:
        for name, actions in self.workflows.items():
            if action.full_name in actions:
                return name
        return None

    def needs_systems(self, actions: Sequence[ActionRequest]) -> bool:
        """Whether judging these actions may call a system (I/O): then judge off the event loop,
        with the connectors policies may ask."""
        return any(may_block(p, a.full_name) for p in self.policies for a in actions)

    def judge(self, action: ActionRequest, systems: Mapping[str, Any] | None = None) -> Verdict:
        now = self.clock()
        workflow = self.workflow_for(action)
        if workflow is None:
            return self._verdict(action, None, Decision.BLOCK,
                                 f"no registered workflow allows {action.full_name}", now)
        ctx = WorkflowContext(
            workflow=workflow, actor_email=self.actor_email, actor_roles=self.actor_roles, system=action.system,
            action=action.action, payload=action.payload, systems=systems or {}, now=now, state=self.state)
        return self.judge_context(ctx, action)

    def judge_context(self, ctx: WorkflowContext, action: ActionRequest | None = None) -> Verdict:
        results = evaluate(self.policies, ctx)
        failing = block_reason(results)
        if failing:
            verdict = self._verdict(action, ctx.workflow, Decision.BLOCK, failing, ctx.now, results)
        else:
            verdict = self._verdict(action, ctx.workflow, Decision.PASS,
                                    f"allowed by workflow {ctx.workflow}; {_count(len(results))} passed",
                                    ctx.now, results)
        verdict.context = ctx
        verdict.actor_email = ctx.actor_email
        return verdict

    def refuse(self, action: ActionRequest | None, reason: str) -> Verdict:
        """A refusal before policies run (unparseable body, egress to an unguarded host, ...)."""
        workflow = self.workflow_for(action) if action is not None else None
        return self._verdict(action, workflow, Decision.BLOCK, reason, self.clock())

    def _verdict(self, action: ActionRequest | None, workflow: str | None, decision: Decision, reason: str,
                 now: datetime, results: list[PolicyResult] | None = None) -> Verdict:
        return Verdict(run_id=str(uuid.uuid4()), timestamp=now, action=action, workflow=workflow,
                       decision=decision, reason=reason, mode=self.mode, actor_email=self.actor_email,
                       policy_results=results or [])

    # -- recording ---------------------------------------------------------------------------
    def open(self, verdict: Verdict) -> Future[Ticket]:
        """Durably record that ``verdict``'s action is about to run. Forward only once this resolves."""
        if verdict.context is not None and verdict.decision is Decision.PASS:
            try:
                after_pass(self.policies, verdict.context)
            except Exception as exc:  # noqa: BLE001 - a counter that cannot count refuses
                verdict.blocked(f"policy state could not be updated: {exc}")
                failed: Future[Ticket] = Future()
                failed.set_exception(ReceiptError(verdict.reason))
                return failed
        return self.receipts.open_intent(self.draft(verdict))

    def record(self, verdict: Verdict, actions_taken: Sequence[ActionResult] = ()) -> Future[Receipt]:
        """Chain, sign and durably write the receipt of a decision that ran nothing (or finished)."""
        return self.receipts.write(self.draft(verdict, actions_taken))

    def close(self, ticket: Ticket, actions_taken: Sequence[ActionResult]) -> Future[Receipt]:
        """Finish an opened action with what was done; its receipt joins the log."""
        taken, masked = self.redactor.redact([a.model_dump(mode="json") for a in actions_taken], "actions_taken")
        redacted = sorted(set(ticket.draft.redacted) | set(masked)) if masked else None
        return ticket.close([ActionResult.model_construct(**a) for a in taken], redacted)

    def draft(self, verdict: Verdict, actions_taken: Sequence[ActionResult] = ()) -> Receipt:
        """The receipt of ``verdict`` before the log numbers and signs it (its intent is the same
        without ``actions_taken``). Built from already-typed parts, so it is constructed, not re-validated."""
        action = verdict.action
        raw_payload = action.payload if action else (verdict.context.payload if verdict.context else {})
        payload, masked_payload = self.redactor.redact(raw_payload, "payload")
        request = action.request.model_dump(mode="json") if action and action.request else None
        request, masked_request = self.redactor.redact(request, "request")
        taken, masked_taken = self.redactor.redact(
            [a.model_dump(mode="json") for a in actions_taken], "actions_taken")
        scrub = self.redactor.scrub_text
        return Receipt.model_construct(
            receipt_version=RECEIPT_VERSION,
            run_id=verdict.run_id,
            timestamp=verdict.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            actor_email=verdict.actor_email,
            workflow=verdict.workflow,
            system=action.system if action else None,
            action=action.full_name if action else None,
            payload=payload,
            request=RequestSummary.model_construct(**request) if request is not None else None,
            policy_results=[PolicyResult.model_construct(policy=r.policy, passed=r.passed, reason=scrub(r.reason))
                            for r in verdict.policy_results],
            decision=verdict.decision,
            reason=scrub(verdict.reason),
            mode=verdict.mode,
            actions_taken=[ActionResult.model_construct(**a) for a in taken],
            redacted=sorted(set(masked_payload + masked_request + masked_taken)),
            config_sha256=self.config_sha256,
            approval=None,
            seq=None,
            prev_hash=None,
            signature=None,
            kind="receipt",
        )


def _count(n: int) -> str:
    return f"{n} policy" if n == 1 else f"{n} policies"


