"""A test-only policy for the cursor tests: refuses whatever runs through the cursor named ``forbidden``.

It lets a test show that a FETCH / MOVE is judged by itself (with the ``cursor`` payload key), even when
the statement the cursor runs passed when it was prepared and bound.
"""

from __future__ import annotations

from enact_proxy.models import PolicyResult, WorkflowContext
from enact_proxy.policy import failed, passed, pure


@pure
def no_runs_through_forbidden_cursor(ctx: WorkflowContext) -> PolicyResult:
    name = "no_runs_through_forbidden_cursor"
    if ctx.payload.get("cursor") == "forbidden":
        return failed(name, f"{ctx.payload.get('fetch')} runs through the cursor 'forbidden'")
    return passed(name, "not run through the cursor 'forbidden'")
