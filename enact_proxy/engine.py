"""The decision pipeline every front door shares: allowlist, policies, claims, verdict, receipt.

A front door (library client, HTTP addon, git push, Postgres listener) turns what it saw into
:class:`ActionRequest` objects and hands the engine one request's actions at a time:

    judgement = engine.judge_request(actions, systems)  # may block: off the event loop when
                                                        # engine.may_block(actions) says so
    if judgement.forwards:
        tickets = [engine.open(v) ...]                  # every intent durable, or none (then
                                                        # engine.unclaim(judgement) and refuse)
        ...forward...
        engine.close(ticket, outcome); engine.settle(judgement, status)
    else:
        engine.record(verdict) for each verdict         # the BLOCK receipts

``enact_proxy.pipeline`` holds the async form the sidecar's front doors use. A request's actions
are judged together: one refusal refuses the whole request (enforce mode), and the claims of all
its passes are checked and recorded in one atomic step of the state store (SPEC §7).

The engine names no vendor: systems are whatever connectors were configured.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from enact_proxy.models import (
    RECEIPT_VERSION,
    ActionRequest,
    ActionResult,
    Approval,
    Decision,
    PolicyResult,
    Receipt,
    RequestSummary,
    WorkflowContext,
    built,
)
from enact_proxy.policy import Policy, PolicySet, evaluate, failed, instantiate, may_block
from enact_proxy.receipts.store import StoreFront, Ticket
from enact_proxy.redact import Redactor
from enact_proxy.state import Claim, Limit, StateStoreError, Unique, UseGrant

Mode = Literal["enforce", "shadow"]
BLOCK_PREFIX = "Blocked by Enact: "
log = logging.getLogger("enact_proxy.engine")
# The reason of an action refused only because another action of its request was refused.
COLLATERAL_PREFIX = "refused with the rest of this request"


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
    approval: dict[str, str] | None = None  # {id, approved_by} when a person's grant let it through

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


@dataclass
class Judgement:
    """One request's decision: every action's verdict, and the state claims its passes hold."""

    verdicts: list[Verdict]
    claim_owner: str | None = None  # set while the store holds this request's claims

    @property
    def forwards(self) -> bool:
        return all(v.forwards for v in self.verdicts)

    @property
    def message(self) -> str:
        return block_message(self.verdicts)

    def refuse(self, reason: str) -> Judgement:
        for verdict in self.verdicts:
            verdict.blocked(reason)
        return self


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
        metrics: Any = None,
    ):
        self.policies: list[Policy] = [instantiate(p) for p in policies]
        self._plan = PolicySet(self.policies)
        self.workflows = {name: frozenset(actions) for name, actions in workflows.items()}
        self._workflow_of: dict[str, str] = {}  # action -> the first workflow (in config order) allowing it
        for name, actions in self.workflows.items():
            for allowed in actions:
                self._workflow_of.setdefault(allowed, name)
        self.actor_email = actor_email
        self.actor_roles = tuple(actor_roles)
        self.receipts = receipts
        self.mode: Mode = mode
        self.state = state
        self.config_sha256 = config_sha256
        self.redactor = redactor or Redactor()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.metrics = metrics  # enact_proxy.admin.Metrics, when the sidecar serves /metrics
        self._blocking: dict[str, bool] = {}

    # -- deciding ----------------------------------------------------------------------------
    def workflow_for(self, action: ActionRequest) -> str | None:
        return self._workflow_of.get(action.full_name)

    def may_block(self, actions: Sequence[ActionRequest]) -> bool:
        """Whether judging these actions may wait on I/O (a lookup in a system, the state store):
        then a front door judges them off its event loop."""
        return any(self._blocks(a.full_name) for a in actions)

    def _blocks(self, action: str) -> bool:
        # Per action name, once: the policies are fixed for this engine's life (a reload makes a new one).
        found = self._blocking.get(action)
        if found is None:
            found = self._blocking[action] = any(may_block(p, action) for p in self.policies)
        return found

    def judge_request(self, actions: Sequence[ActionRequest], systems: Mapping[str, Any] | None = None) -> Judgement:
        """Judge a request's actions together, then claim the state its passes take (atomically)."""
        started = time.perf_counter()
        try:
            verdicts = [self.judge(action, systems) for action in actions]
        except Exception as exc:  # noqa: BLE001 - the engine's own fault refuses, never forwards
            verdicts = [self.refuse(action, f"policy evaluation failed: {type(exc).__name__}: {exc}")
                        for action in actions]
        judgement = Judgement(verdicts)
        self._together(judgement)
        self._claim(judgement)
        if self.metrics is not None:
            self.metrics.judged(time.perf_counter() - started)
        return judgement

    def judge_run(self, ctx: WorkflowContext) -> Judgement:
        """Library mode: a workflow run judged as one action, its claims taken like a request's."""
        judgement = Judgement([self.judge_context(ctx)])
        self._claim(judgement)
        return judgement

    def note(self, action: ActionRequest, actor_email: str, reason: str) -> Verdict:
        """A decision a person made through the admin API (``enact.approve`` / ``enact.deny``), to record."""
        verdict = self._verdict(action, None, Decision.PASS, reason, self.clock())
        verdict.actor_email = actor_email
        return verdict

    def refuse_request(self, actions: Sequence[ActionRequest], reason: str) -> Judgement:
        return Judgement([self.refuse(action, reason) for action in actions])

    def judge(self, action: ActionRequest, systems: Mapping[str, Any] | None = None) -> Verdict:
        now = self.clock()
        workflow = self.workflow_for(action)
        if workflow is None:
            return self._verdict(action, None, Decision.BLOCK,
                                 f"no registered workflow allows {action.full_name}", now)
        # Every value is typed already (the action was validated when it was recognised): built, not
        # validated. The payload is copied as validation did (one level): a policy that sets a key in
        # ctx.payload does not change what the receipt says the action was.
        ctx = built(WorkflowContext, {
            "workflow": workflow, "actor_email": self.actor_email, "actor_roles": self.actor_roles,
            "system": action.system, "action": action.action, "payload": dict(action.payload),
            "systems": systems or {}, "now": now, "state": self.state}, {"_claims": None})
        return self.judge_context(ctx, action)

    def judge_context(self, ctx: WorkflowContext, action: ActionRequest | None = None) -> Verdict:
        results = evaluate(self._plan, ctx)
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
        return Verdict(run_id=new_run_id(), timestamp=now, action=action, workflow=workflow,
                       decision=decision, reason=reason, mode=self.mode, actor_email=self.actor_email,
                       policy_results=results or [])

    def _together(self, judgement: Judgement) -> None:
        """In enforce mode one refused action refuses the whole request: nothing of it is forwarded."""
        verdicts = judgement.verdicts
        first = next((v for v in verdicts if v.decision is Decision.BLOCK), None)
        if first is None or self.mode != "enforce" or len(verdicts) < 2:
            return
        name = first.action.full_name if first.action else "?"
        for verdict in verdicts:
            if verdict.decision is Decision.PASS:
                verdict.blocked(f"{COLLATERAL_PREFIX} ({name} was refused: {first.reason})")

    # -- state ---------------------------------------------------------------------------------
    def _claim(self, judgement: Judgement) -> None:
        """Check and record every claim of the request's passes in one step of the state store.

        Keys are scoped by the policy that states them, so two policies never count each other's
        claims. A claim that does not fit fails its policy; a store that cannot answer fails every
        policy that stated a claim (fail closed), naming the store.
        """
        wanted: list[tuple[Verdict, str, Claim]] = []
        for verdict in judgement.verdicts:
            if verdict.forwards and verdict.context is not None:
                wanted.extend((verdict, policy, claim) for policy, claim in verdict.context._claims or ())
        if not wanted:
            return
        if self.state is None:
            self._fail_claims(judgement, wanted, {p for _, p, _ in wanted}, "no state store is configured")
            return
        owner = new_run_id()
        try:
            scoped = [_scoped(policy, claim) for _, policy, claim in wanted]
            conflict = self.state.claim(scoped, owner=owner, now=wanted[0][0].timestamp,
                                        enforce=self.mode == "enforce")
        except Exception as exc:  # noqa: BLE001 - no answer from the store, no pass
            reason = str(exc) if isinstance(exc, StateStoreError) else \
                f"state store {getattr(self.state, 'url', '?')} failed: {type(exc).__name__}: {exc}"
            self._fail_claims(judgement, wanted, {p for _, p, _ in wanted}, reason)
            return
        if conflict is None or self.mode != "enforce":
            judgement.claim_owner = owner  # in shadow mode the claims are recorded: the action runs
            for verdict, _, claim in wanted:
                if isinstance(claim, UseGrant):
                    verdict.approval = {"id": claim.approval_id, "approved_by": claim.approved_by}
        if conflict is not None:
            verdict, policy, claim = wanted[conflict.index]
            self._fail_claims(judgement, [(verdict, policy, claim)], {policy}, conflict.explain(claim))

    def _fail_claims(self, judgement: Judgement, wanted: list[tuple[Verdict, str, Claim]], policies: set[str],
                     reason: str) -> None:
        for verdict in {id(v): v for v, _, _ in wanted}.values():
            verdict.policy_results = [failed(r.policy, reason) if r.policy in policies and r.passed else r
                                      for r in verdict.policy_results]
            verdict.decision, verdict.reason = Decision.BLOCK, block_reason(verdict.policy_results)
        self._together(judgement)

    def settle(self, judgement: Judgement, status: int | None) -> None:
        """The upstream answered: a 4xx other than 409 means nothing was done, so the claims are
        released; a 409 (the object exists), a success, a 5xx or no answer keep them."""
        if status is not None and 400 <= status < 500 and status != 409:
            self.unclaim(judgement)

    def unclaim(self, judgement: Judgement) -> None:
        """Release a request's claims (it was not forwarded after all, or the upstream refused it)."""
        owner, judgement.claim_owner = judgement.claim_owner, None
        if owner is not None and self.state is not None:
            try:
                self.state.release(owner)
            except Exception:  # noqa: BLE001 - a claim kept too long refuses too much, never too little
                log.warning("could not release state claims %s", owner, exc_info=True)

    # -- recording ---------------------------------------------------------------------------
    def open(self, verdict: Verdict) -> Future[Ticket]:
        """Durably record that ``verdict``'s action is about to run. Forward only once this resolves."""
        if self.metrics is not None:
            self.metrics.recorded(verdict)
        return self.receipts.open_intent(self.draft(verdict))

    def record(self, verdict: Verdict, actions_taken: Sequence[ActionResult] = ()) -> Future[Receipt]:
        """Chain, sign and durably write the receipt of a decision that ran nothing (or finished)."""
        if self.metrics is not None:
            self.metrics.recorded(verdict)
        return self.receipts.write(self.draft(verdict, actions_taken))

    def close(self, ticket: Ticket, actions_taken: Sequence[ActionResult]) -> Future[Receipt]:
        """Finish an opened action with what was done; its receipt joins the log."""
        taken, masked = self.redactor.redact([a.model_dump(mode="json") for a in actions_taken], "actions_taken")
        redacted = sorted(set(ticket.draft.redacted) | set(masked)) if masked else None
        return ticket.close([built(ActionResult, a) for a in taken], redacted)

    def draft(self, verdict: Verdict, actions_taken: Sequence[ActionResult] = ()) -> Receipt:
        """The receipt of ``verdict`` before the log numbers and signs it (its intent is the same
        without ``actions_taken``). Built from already-typed parts, so it is constructed, not re-validated."""
        action = verdict.action
        raw_payload = action.payload if action else (verdict.context.payload if verdict.context else {})
        redact = self.redactor.redact
        payload, masked = redact(raw_payload, "payload")
        summary = action.request if action else None
        if summary is not None:
            request, masked_request = redact({"method": summary.method, "host": summary.host, "path": summary.path},
                                             "request")
            masked += masked_request
            summary = built(RequestSummary, request)
        taken: list[ActionResult] = []
        if actions_taken:
            dumped, masked_taken = redact([a.model_dump(mode="json") for a in actions_taken], "actions_taken")
            masked += masked_taken
            taken = [built(ActionResult, a) for a in dumped]
        scrub = self.redactor.scrub_text
        approval = verdict.approval
        return built(Receipt, {
            "receipt_version": RECEIPT_VERSION,
            "run_id": verdict.run_id,
            "timestamp": verdict.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "actor_email": verdict.actor_email,
            "workflow": verdict.workflow,
            "system": action.system if action else None,
            "action": action.full_name if action else None,
            "payload": payload,
            "request": summary,
            "policy_results": [_scrubbed(r, scrub) for r in verdict.policy_results],
            "decision": verdict.decision,
            "reason": scrub(verdict.reason),
            "mode": verdict.mode,
            "redacted": sorted(set(masked)) if masked else [],
            "config_sha256": self.config_sha256,
            "approval": built(Approval, {"id": approval["id"], "approved_by": approval["approved_by"]})
            if approval else None,
            "seq": None,
            "prev_hash": None,
            "signature": None,
            "kind": "receipt",
            "actions_taken": taken,
        })


def _scrubbed(result: PolicyResult, scrub: Callable[[str], str]) -> PolicyResult:
    """The result as a receipt may carry it: the same object unless its reason held a secret
    (results are never changed after judging, and a copy per policy per decision shows in profiles)."""
    reason = scrub(result.reason)
    if reason is result.reason:
        return result
    return built(PolicyResult, {"policy": result.policy, "passed": result.passed, "reason": reason})


def new_run_id() -> str:
    """A random (version 4) UUID as text: ``str(uuid.uuid4())`` in half its time (once per decision)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _scoped(policy: str, claim: Claim) -> Claim:
    key = f"{policy}:{claim.key}"
    if isinstance(claim, Limit):
        return Limit(key=key, max=claim.max, window=claim.window, message=claim.message)
    if isinstance(claim, Unique):
        return Unique(key=key, message=claim.message)
    if isinstance(claim, UseGrant):
        return claim  # an approval's id is global: every sidecar sharing the store spends the same grant
    raise TypeError(f"a policy claimed {type(claim).__name__}, not a Limit or Unique")


def _count(n: int) -> str:
    return f"{n} policy" if n == 1 else f"{n} policies"


