"""CRM policies: HubSpot contacts and tasks."""

from __future__ import annotations

from datetime import timedelta

from enact_proxy.models import PolicyResult, WorkflowContext
from enact_proxy.policy import factory, failed, looks_up, passed, pure
from policies._util import is_action, normalise_email


@looks_up("hubspot.create_contact")
def no_duplicate_contacts(ctx: WorkflowContext) -> PolicyResult:
    """Refuse creating a contact whose email (trimmed, case-folded, NFKC) already exists in HubSpot."""
    name = "no_duplicate_contacts"
    if not is_action(ctx, "hubspot.create_contact"):
        return passed(name, "not a contact creation")
    email = ctx.payload.get("email")
    if not email:
        if ctx.full_action is None:
            return passed(name, "no email in the payload")
        return failed(name, "contact has no email to check for duplicates")
    hubspot = ctx.systems.get("hubspot")
    if hubspot is None:
        if ctx.full_action is None:
            return passed(name, "no HubSpot system in this run")
        return failed(name, "cannot check for duplicates: no HubSpot connector to ask")
    wanted = normalise_email(str(email))
    existing = hubspot.find_contact_by_email(wanted)  # raises on failure or timeout: fail closed
    if existing:
        found = (existing.get("properties") or {}).get("email") or wanted
        return failed(name, f"contact {found} already exists (id {existing.get('id')})")
    return passed(name, f"no contact with email {wanted}")


@factory
def limit_tasks_per_contact(max_tasks: int = 3, window_minutes: int = 60):  # type: ignore[no-untyped-def]
    """At most ``max_tasks`` tasks per contact within a sliding window of ``window_minutes``."""
    name = "limit_tasks_per_contact"
    window = timedelta(minutes=window_minutes)

    def contacts(ctx: WorkflowContext) -> list[str]:
        ids = [str(c) for c in ctx.payload.get("contact_ids") or []]
        if not ids and ctx.full_action is None and ctx.payload.get("email"):
            ids = [normalise_email(str(ctx.payload["email"]))]
        return ids

    @pure
    def limit_tasks_per_contact(ctx: WorkflowContext) -> PolicyResult:
        if not is_action(ctx, "hubspot.create_task"):
            return passed(name, "not a task creation")
        if ctx.state is None:
            return failed(name, "no state store to count tasks in")
        for contact in contacts(ctx):
            count = ctx.state.count(f"tasks:{contact}", ctx.now - window)
            if count >= max_tasks:
                return failed(name, f"contact {contact} already has {count} tasks in the last "
                                    f"{window_minutes} minutes (max {max_tasks})")
        return passed(name, f"every contact is under {max_tasks} tasks in {window_minutes} minutes")

    def on_pass(ctx: WorkflowContext) -> None:
        if is_action(ctx, "hubspot.create_task") and ctx.state is not None:
            for contact in contacts(ctx):
                ctx.state.add(f"tasks:{contact}", ctx.now)

    limit_tasks_per_contact.on_pass = on_pass  # type: ignore[attr-defined]
    return limit_tasks_per_contact
