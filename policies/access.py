"""Who may do what: roles, and contractors kept away from personal data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from enact_proxy.models import PolicyResult, WorkflowContext
from enact_proxy.policy import factory, failed, passed, pure
from policies._util import READ_ACTIONS

DEFAULT_PII_FIELDS = ("email", "phone", "ssn", "date_of_birth")


@factory
def require_actor_role(roles: list[str]):  # type: ignore[no-untyped-def]
    """The actor must hold at least one of ``roles``."""
    required = tuple(roles)

    @pure
    def require_actor_role(ctx: WorkflowContext) -> PolicyResult:
        held = [r for r in ctx.actor_roles if r in required]
        if held:
            return passed("require_actor_role", f"actor holds role {held[0]}")
        return failed("require_actor_role", f"actor {ctx.actor_email} has roles {list(ctx.actor_roles)}; "
                                            f"one of {list(required)} is required")

    return require_actor_role


# Payload keys that name the object an update targets, not a field it writes: updating the contact
# named by ``email`` writes no email (the email it writes is ``properties.email``).
_TARGET_KEYS = {
    "hubspot.update_contact": frozenset({"contact_id", "email", "id", "id_property"}),
    "hubspot.update_deal": frozenset({"deal_id"}),
}


def _written_fields(payload: dict[str, Any], action: str | None = None) -> Iterable[str]:
    """Field names a write touches: top-level payload keys (but those naming an update's target),
    HubSpot properties, SQL columns, and a library-mode workflow's ``row``/``values`` mappings."""
    targets = _TARGET_KEYS.get(action or "", frozenset())
    yield from (k for k in payload if k not in targets)
    for nested in ("properties", "row", "values"):
        fields = payload.get(nested)
        if isinstance(fields, dict):
            yield from fields.keys()
    # A named HubSpot batch operation (post-/crm/objects/companies/batch/create) keeps its inputs whole.
    inputs = payload.get("inputs")
    for item in inputs if isinstance(inputs, list) else []:
        if isinstance(item, dict) and isinstance(item.get("properties"), dict):
            yield from item["properties"].keys()
    columns = payload.get("columns")
    if isinstance(columns, (list, tuple)):
        yield from (c for c in columns if isinstance(c, str))


@factory
def contractor_cannot_write_pii(pii_fields: list[str] = list(DEFAULT_PII_FIELDS)):  # type: ignore[no-untyped-def]  # noqa: B006
    """A contractor may not write any PII field (HubSpot property or SQL column alike).

    Every write counts, ``hubspot.update_contact`` (an upsert of an existing contact included) as
    much as a create: its ``properties`` are what it writes."""
    pii = frozenset(f.casefold() for f in pii_fields)

    @pure
    def contractor_cannot_write_pii(ctx: WorkflowContext) -> PolicyResult:
        name = "contractor_cannot_write_pii"
        if not ctx.is_contractor:
            return passed(name, "actor is not a contractor")
        if ctx.action in READ_ACTIONS:
            return passed(name, "a read writes no field")
        touched = sorted({f for f in _written_fields(ctx.payload, ctx.full_action) if f.casefold() in pii})
        if ctx.payload.get("columns") == ["*"] or "*" in (ctx.payload.get("columns") or []):
            touched = touched or ["*"]
        if touched:
            return failed(name, f"contractor may not write PII field(s) {', '.join(touched)}")
        return passed(name, "no PII field written")

    return contractor_cannot_write_pii
