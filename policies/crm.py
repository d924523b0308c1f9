"""CRM policies: HubSpot contacts and tasks.

Both hold under batches, races and fleets of sidecars (SPEC §7) because they *claim* instead of
counting: every claim of a request is checked and recorded in one atomic step of the state store.
"""

from __future__ import annotations

from datetime import timedelta

from enact_proxy.identity import canonical_email
from enact_proxy.models import PolicyResult, WorkflowContext
from enact_proxy.policy import factory, failed, looks_up, passed, stateful
from enact_proxy.state import Limit, Unique
from policies._util import is_action


@looks_up("hubspot.create_contact")
def no_duplicate_contacts(ctx: WorkflowContext) -> PolicyResult:
    """Refuse creating a contact whose email already exists in HubSpot, or was already created
    through Enact (HubSpot's search is eventually consistent and misses a contact made a moment ago).

    Emails are compared by :func:`enact_proxy.identity.canonical_email`.
    """
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
    wanted = canonical_email(str(email))
    existing = hubspot.find_contact_by_email(wanted)  # raises on failure or timeout: fail closed
    if existing:
        found = (existing.get("properties") or {}).get("email") or wanted
        return failed(name, f"contact {found} already exists (id {existing.get('id')})")
    # Remembered for good: a second creation is refused even before the search shows the first.
    ctx.claim(Unique(f"contact:{wanted}", message=f"contact {wanted} was already created through Enact"))
    return passed(name, f"no contact with email {wanted}")


@factory
def limit_tasks_per_contact(max_tasks: int = 3, window_minutes: int = 60):  # type: ignore[no-untyped-def]
    """At most ``max_tasks`` tasks per contact within a sliding window of ``window_minutes``."""
    name = "limit_tasks_per_contact"
    window = timedelta(minutes=window_minutes)

    def contacts(ctx: WorkflowContext) -> list[str]:
        ids = [str(c) for c in ctx.payload.get("contact_ids") or []]
        if not ids and ctx.full_action is None and ctx.payload.get("email"):
            ids = [canonical_email(str(ctx.payload["email"]))]
        return list(dict.fromkeys(ids))  # one task for one contact counts once, however often it is named

    @stateful("hubspot.create_task")
    def limit_tasks_per_contact(ctx: WorkflowContext) -> PolicyResult:
        if not is_action(ctx, "hubspot.create_task"):
            return passed(name, "not a task creation")
        for contact in contacts(ctx):
            ctx.claim(Limit(f"tasks:{contact}", max=max_tasks, window=window,
                            message=f"contact {contact} already has {{count}} tasks in the last "
                                    f"{window_minutes} minutes (max {{max}})"))
        return passed(name, f"every contact is under {max_tasks} tasks in {window_minutes} minutes")

    return limit_tasks_per_contact
