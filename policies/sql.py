"""SQL policies."""

from __future__ import annotations

from enact_proxy.models import PolicyResult, WorkflowContext
from enact_proxy.policy import failed, passed, pure


@pure
def no_unbounded_write(ctx: WorkflowContext) -> PolicyResult:
    """UPDATE or DELETE (or a row-locking read) must have a WHERE clause that is not constant true.

    A row-locking read (``SELECT ... FOR UPDATE``) counts as bounded by a LIMIT too (see the classifier).
    """
    name = "no_unbounded_write"
    if ctx.full_action not in ("postgres.update_row", "postgres.delete_row"):
        return passed(name, "not an UPDATE or DELETE")
    table = ctx.payload.get("table") or "?"
    verb = "UPDATE" if ctx.action == "update_row" else "DELETE"
    if ctx.payload.get("locking"):  # a row-locking read is an update_row of each locked table
        verb = f"SELECT ... {ctx.payload['locking']}"
    if ctx.payload.get("where_constant_true"):
        return failed(name, f"{verb} of {table} has a WHERE clause that is always true")
    if not ctx.payload.get("has_where"):
        return failed(name, f"{verb} of {table} has no WHERE clause")
    return passed(name, f"{verb} of {table} is bounded by WHERE")
