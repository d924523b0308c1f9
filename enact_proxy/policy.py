"""Running policies: every policy runs, and anything but a clean pass is a failure (fail closed)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import validate_call

from enact_proxy.models import CLAIMS, PolicyResult, WorkflowContext

Policy = Callable[[WorkflowContext], PolicyResult]
F = TypeVar("F", bound=Callable[..., Any])


def policy_name(policy: Any) -> str:
    return str(getattr(policy, "policy_name", None) or getattr(policy, "__name__", type(policy).__name__))


def factory(fn: F) -> F:
    """Mark a parameterised policy: ``fn(**params)`` returns the policy. Parameters are validated."""
    checked = validate_call(fn)
    checked.is_policy_factory = True  # type: ignore[attr-defined]
    return checked  # type: ignore[return-value]


def pure(fn: F) -> F:
    """Mark a policy that never calls a system (no I/O): it may be judged on the event loop."""
    fn.lookup_actions = frozenset()  # type: ignore[attr-defined]
    return fn


def looks_up(*actions: str) -> Callable[[F], F]:
    """Mark a policy that calls a system (I/O) only when judging these actions (``hubspot.create_contact``)."""

    def mark(fn: F) -> F:
        fn.lookup_actions = frozenset(actions)  # type: ignore[attr-defined]
        return fn

    return mark


def stateful(*actions: str) -> Callable[[F], F]:
    """Mark a policy that states claims (``ctx.claim(Limit(...))``) when judging these actions.

    Claiming is I/O on the state store, so such actions are judged off the event loop, like lookups.
    """
    return looks_up(*actions)


def asks_a_person(fn: F) -> F:
    """Mark a policy that puts the action to a person (``require_approval``): it runs only once every
    other policy passed, so nobody is asked to approve what would be refused anyway."""
    fn.asks_a_person = True  # type: ignore[attr-defined]
    return fn


def may_block(policy: Any, action: str | None) -> bool:
    """Whether judging ``action`` may make ``policy`` wait on I/O; unmarked policies are assumed to."""
    lookups = getattr(policy, "lookup_actions", None)
    return lookups is None or action is None or action in lookups


def instantiate(policy: Any) -> Policy:
    """A factory handed over uncalled (``policies=[max_files_per_commit]``) gets its defaults."""
    if getattr(policy, "is_policy_factory", False):
        made: Policy = policy()
        return made
    return policy  # type: ignore[no-any-return]


def passed(policy: str, reason: str) -> PolicyResult:
    return PolicyResult(policy=policy, passed=True, reason=reason)


def failed(policy: str, reason: str) -> PolicyResult:
    return PolicyResult(policy=policy, passed=False, reason=reason)


def evaluate(policies: Iterable[Policy], ctx: WorkflowContext) -> list[PolicyResult]:
    """Every policy's result, in order; the claims a policy stated (``ctx.claim``) are kept only when it
    passed. Policies that ask a person run last, and only when every other policy passed."""
    policies = list(policies)
    results: list[PolicyResult | None] = [None] * len(policies)
    claims: list[tuple[str, Any]] = []
    # Only for actions such a policy would hold: for the rest it runs like any other (and passes).
    later = [i for i, p in enumerate(policies) if getattr(p, "asks_a_person", False)
             and ctx.full_action is not None and may_block(p, ctx.full_action)]
    try:
        for i, policy in enumerate(policies):
            if i not in later:
                results[i] = _run(policy, ctx, claims)
        refused = [r.policy for r in results if r is not None and not r.passed]
        for i in later:
            results[i] = _run(policies[i], ctx, claims) if not refused else failed(
                policy_name(policies[i]), f"not put to a person (refused by {', '.join(refused)})")
    finally:
        CLAIMS.set(None)
    if claims:
        ctx._claims = claims
    return [r for r in results if r is not None]


def _run(policy: Policy, ctx: WorkflowContext, claims: list[tuple[str, Any]]) -> PolicyResult:
    name = policy_name(policy)
    before = len(claims)
    CLAIMS.set((name, claims))
    try:
        outcome = policy(ctx)
    except Exception as exc:  # noqa: BLE001 - a raising policy is a failed check, never a crash
        outcome = failed(name, f"policy raised {type(exc).__name__}: {exc}")
    else:
        if not isinstance(outcome, PolicyResult) or not isinstance(outcome.passed, bool):
            outcome = failed(name, f"policy returned {type(outcome).__name__}, not a PolicyResult")
        elif outcome.policy != name:
            outcome = outcome.model_copy(update={"policy": name})
    if not outcome.passed:
        del claims[before:]
    return outcome
