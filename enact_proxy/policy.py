"""Running policies: every policy runs, and anything but a clean pass is a failure (fail closed)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import validate_call

from enact_proxy.models import CLAIMS, ClaimSink, PolicyResult, WorkflowContext

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


SHARED_REASON_CHARS = 200  # longer reasons (an exception's text, a payload quoted) are not kept


@lru_cache(maxsize=4096)
def _shared(policy: str, ok: bool, reason: str) -> PolicyResult:
    return PolicyResult(policy=policy, passed=ok, reason=reason)


def _result(policy: str, ok: bool, reason: str) -> PolicyResult:
    # Most reasons are fixed texts ("not a git action"): one frozen result each, shared by every decision.
    if type(policy) is str and type(reason) is str and len(reason) <= SHARED_REASON_CHARS:
        return _shared(policy, ok, reason)
    return PolicyResult(policy=policy, passed=ok, reason=reason)


def passed(policy: str, reason: str) -> PolicyResult:
    return _result(policy, True, reason)


def failed(policy: str, reason: str) -> PolicyResult:
    return _result(policy, False, reason)


class PolicySet:
    """Policies in order, with what running them needs worked out once (names, who asks a person)."""

    def __init__(self, policies: Iterable[Policy]):
        self.policies = tuple(policies)
        self.names = tuple(policy_name(p) for p in self.policies)
        self.pairs = tuple((p, policy_name(p)) for p in self.policies)
        self._asks = tuple(bool(getattr(p, "asks_a_person", False)) for p in self.policies)
        self._later: dict[str | None, tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self.policies)

    def later(self, action: str | None) -> tuple[int, ...]:
        """The policies that ask a person about ``action`` (they run last). For other actions such a
        policy runs like any other (and passes)."""
        found = self._later.get(action)
        if found is None:
            found = self._later[action] = tuple(
                i for i, p in enumerate(self.policies)
                if self._asks[i] and action is not None and may_block(p, action))
        return found


def evaluate(policies: Iterable[Policy] | PolicySet, ctx: WorkflowContext) -> list[PolicyResult]:
    """Every policy's result, in order; the claims a policy stated (``ctx.claim``) are kept only when it
    passed. Policies that ask a person run last, and only when every other policy passed."""
    plan = policies if isinstance(policies, PolicySet) else PolicySet(policies)
    sink = ClaimSink()
    later = plan.later(ctx.full_action)
    token = CLAIMS.set(sink)
    try:
        if not later:
            results = [_run(policy, name, ctx, sink) for policy, name in plan.pairs]
        else:
            slots: list[PolicyResult | None] = [
                None if i in later else _run(policy, name, ctx, sink)
                for i, (policy, name) in enumerate(plan.pairs)]
            refused = [r.policy for r in slots if r is not None and not r.passed]
            for i in later:
                slots[i] = _run(plan.policies[i], plan.names[i], ctx, sink) if not refused else failed(
                    plan.names[i], f"not put to a person (refused by {', '.join(refused)})")
            results = [r for r in slots if r is not None]
    finally:
        CLAIMS.reset(token)
    if sink.claims:
        ctx._claims = sink.claims
    return results


def _run(policy: Policy, name: str, ctx: WorkflowContext, sink: ClaimSink) -> PolicyResult:
    claims = sink.claims
    before = len(claims)
    sink.policy = name
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
