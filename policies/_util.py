"""Small helpers the built-in policies share."""

from __future__ import annotations

from enact_proxy.models import WorkflowContext

READ_ACTIONS = frozenset({"read", "get_contact", "select_rows"})




def is_action(ctx: WorkflowContext, *names: str) -> bool:
    """True for one of ``names`` (``hubspot.create_contact``); library runs (no action) match too."""
    return ctx.full_action is None or ctx.full_action in names


def branch_name(ref: str | None) -> str | None:
    if not ref:
        return None
    ref = ref.split(":", 1)[-1]  # "owner:branch" in a pull request head
    return ref.removeprefix("refs/heads/")
