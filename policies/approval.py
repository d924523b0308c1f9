"""``require_approval``: a person approves the exact action before it runs (SPEC §8).

The approval is bound to the digest of actor, action and payload, so only the identical retry
passes. Approving grants it once: the grant is spent by ``UseGrant`` in the same atomic step as every
other claim of the request, on whichever sidecar shares the state store, so two retries racing for
one grant cannot both pass.
"""

from __future__ import annotations

import time
from datetime import timedelta

from enact_proxy.models import PolicyResult, WorkflowContext
from enact_proxy.policy import asks_a_person, factory, failed, passed, stateful
from enact_proxy.state import Approval, UseGrant, approval_digest

NAME = "require_approval"
POLL_SECONDS = 0.2  # how often a held request asks the store whether a person decided


@factory
def require_approval(actions: list[str], expires_minutes: int = 60, hold_seconds: float = 0):  # type: ignore[no-untyped-def]
    """Hold ``actions`` for a person; the grant is valid ``expires_minutes`` and used once. With
    ``hold_seconds`` the request waits that long for a decision before it is refused."""
    wanted = frozenset(actions)
    expires = timedelta(minutes=expires_minutes)
    if not 0 <= hold_seconds <= 300:
        raise ValueError("hold_seconds must be between 0 and 300")

    @asks_a_person
    @stateful(*actions)
    def require_approval(ctx: WorkflowContext) -> PolicyResult:
        action = ctx.full_action
        if action not in wanted:
            return passed(NAME, "no approval needed")
        if ctx.state is None:
            return failed(NAME, "no state store to keep approvals in")
        digest = approval_digest(ctx.actor_email, action, ctx.payload)
        started = time.monotonic()
        expired: Approval | None = None
        while True:
            now = ctx.now + timedelta(seconds=time.monotonic() - started)
            latest = ctx.state.latest_approval(digest)  # a store failure raises: the policy fails closed
            seen = latest.as_of(now) if latest is not None else None
            if seen is not None and seen.status == "approved":
                ctx.claim(UseGrant(seen.id, approved_by=seen.decided_by or ""))
                return passed(NAME, f"approval {seen.id} granted by {seen.decided_by}")
            if seen is not None and seen.status == "denied":
                why = seen.reason or "no reason given"
                return failed(NAME, f"approval {seen.id} was denied by {seen.decided_by}: {why}")
            if seen is not None and seen.status == "expired" and latest is not None and latest.status == "approved":
                expired = seen  # granted but never used in time: a new approval is needed
            pending = seen if seen is not None and seen.status == "pending" else ctx.state.request_approval(
                digest=digest, actor=ctx.actor_email, action=action, payload=ctx.payload, now=now, expires=expires)
            left = hold_seconds - (time.monotonic() - started)
            if left <= 0:
                note = f" (approval {expired.id} expired unused)" if expired is not None else ""
                return failed(NAME, f"approval {pending.id} is pending for {action}{note}; "
                                    f"retry the same request once it is approved")
            time.sleep(min(POLL_SECONDS, left))

    return require_approval
