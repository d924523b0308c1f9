"""A user's own policies, referenced from enact.yaml as ``tests.custom_policies:<name>``."""

from __future__ import annotations

from enact_proxy.models import PolicyResult, WorkflowContext
from enact_proxy.policy import factory, failed, passed


def no_friday_deploys(ctx: WorkflowContext) -> PolicyResult:
    if ctx.action == "push_commit" and ctx.now.weekday() == 4:
        return failed("no_friday_deploys", "no pushes on a Friday")
    return passed("no_friday_deploys", "not a Friday push")


@factory
def max_commits(limit: int):  # type: ignore[no-untyped-def]
    def max_commits(ctx: WorkflowContext) -> PolicyResult:
        count = len(ctx.payload.get("commits") or [])
        if count > limit:
            return failed("max_commits", f"{count} commits (max {limit})")
        return passed("max_commits", f"{count} commits")

    return max_commits


NOT_CALLABLE = 42


@factory
def loads_unless(marker: str):  # type: ignore[no-untyped-def]
    """Allows everything; refuses to be *loaded* while the file ``marker`` exists (a start-up that fails)."""
    from pathlib import Path

    if Path(marker).exists():
        raise ValueError(f"loads_unless: {marker} exists")

    def loads_unless(ctx: WorkflowContext) -> PolicyResult:
        return passed("loads_unless", "loaded")

    return loads_unless
