"""Library mode: the same engine, in-process, running registered workflow functions."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from enact_proxy.engine import Engine, Judgement, Mode, Verdict
from enact_proxy.models import ActionResult, Decision, Receipt, RunResult, WorkflowContext
from enact_proxy.receipts import ReceiptError, ReceiptKey, ReceiptStore
from enact_proxy.state import SqliteStateStore, StateStore, open_store

Workflow = Callable[[WorkflowContext], Any]


class EnactClient:
    """``EnactClient(systems, policies, workflows).run(workflow, actor_email, payload)``.

    A workflow is a function of a :class:`WorkflowContext` that yields (or returns a list of)
    :class:`ActionResult`; it runs only when registered here and every policy passes. A step that
    fails or raises stops the workflow; the receipt keeps what was done before it.
    """

    def __init__(
        self,
        systems: Mapping[str, Any],
        policies: Sequence[Any] = (),
        workflows: Iterable[Workflow] = (),
        *,
        actor_roles: Sequence[str] = (),
        receipts_dir: Path | str = "receipts",
        certs_dir: Path | str = "certs",
        mode: Mode = "enforce",
        receipt_key: ReceiptKey | None = None,
        state: StateStore | str | None = None,
    ):
        self.systems = dict(systems)
        self.workflows = {getattr(w, "workflow_name", w.__name__): w for w in workflows}
        self.receipts_dir = Path(receipts_dir)
        # One writer per receipts folder: a second one (a sidecar, another client) refuses (WriterBusy).
        self.receipts = ReceiptStore(self.receipts_dir, receipt_key or ReceiptKey.load(certs_dir),
                                     certs_dir=certs_dir).start()
        self.engine = Engine(policies=policies, workflows={}, actor_email="", actor_roles=actor_roles,
                             receipts=self.receipts, mode=mode,
                             state=_state_store(state, self.receipts_dir))

    def run(self, workflow: str, actor_email: str, payload: Mapping[str, Any],
            actor_roles: Sequence[str] | None = None) -> tuple[RunResult, Receipt]:
        engine = self.engine
        ctx = WorkflowContext(workflow=workflow, actor_email=actor_email,
                              actor_roles=tuple(engine.actor_roles if actor_roles is None else actor_roles),
                              payload=dict(payload), systems=self.systems, now=engine.clock(), state=engine.state)
        function = self.workflows.get(workflow)
        if function is None:
            verdict = engine.refuse(None, f"workflow {workflow} is not registered")
            verdict.workflow, verdict.actor_email, verdict.context = workflow, actor_email, ctx
            judgement = Judgement([verdict])
        else:
            judgement = engine.judge_run(ctx)
            verdict = judgement.verdicts[0]
        actions: list[ActionResult] = []
        if verdict.forwards and function is not None:
            try:
                ticket = engine.open(verdict).result()
            except ReceiptError as exc:
                engine.unclaim(judgement)
                verdict.blocked(f"receipt could not be written: {exc}")
            else:
                actions = run_steps(function, ctx)
                engine.settle(judgement, refused_status(actions))
                return self._result(verdict, actions, engine.close(ticket, actions).result())
        return self._result(verdict, actions, engine.record(verdict).result())

    def close(self) -> None:
        self.receipts.close()

    def __enter__(self) -> EnactClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _result(verdict: Verdict, actions: list[ActionResult], signed: Receipt) -> tuple[RunResult, Receipt]:
        result = RunResult(workflow=verdict.workflow, decision=verdict.decision, reason=verdict.reason,
                           policy_results=verdict.policy_results, actions_taken=actions, run_id=verdict.run_id)
        return result, signed


def _state_store(state: StateStore | str | None, receipts_dir: Path) -> StateStore:
    """A store, a ``state.url`` (``postgresql://...`` to share a fleet's), or the default file beside the receipts."""
    if state is None:
        return SqliteStateStore(receipts_dir / ".state.sqlite")
    if isinstance(state, str):
        return open_store(state, base_dir=Path.cwd(), password=os.environ.get("ENACT_STATE_PASSWORD"))
    return state


def refused_status(actions: Sequence[ActionResult]) -> int | None:
    """The status that refused a run in which no step succeeded (its claims are then released,
    like a request the upstream answered 4xx); None when anything may have been done."""
    if any(a.success is not False for a in actions):
        return None
    status = actions[-1].output.get("status") if actions else None
    return status if isinstance(status, int) else None


def run_steps(function: Workflow, ctx: WorkflowContext) -> list[ActionResult]:
    """Run a workflow, keeping every step it finished; stop at the first failed or raising step."""
    done: list[ActionResult] = []
    try:
        steps = function(ctx)
        for step in steps if inspect.isgenerator(steps) or isinstance(steps, list) else [steps]:
            if not isinstance(step, ActionResult):
                raise TypeError(f"workflow step yielded {type(step).__name__}, not an ActionResult")
            done.append(step)
            if step.success is False:
                break
    except Exception as exc:  # noqa: BLE001 - the receipt records the failure; nothing is hidden
        output: dict[str, Any] = {"error": f"{type(exc).__name__}: {exc}"}
        if isinstance(getattr(exc, "status", None), int):  # a connector's HTTP error says what the system answered
            output["status"] = exc.status  # type: ignore[attr-defined]
        done.append(ActionResult(action="workflow_error", success=False, output=output))
    return done


__all__ = ["Decision", "EnactClient", "run_steps"]
