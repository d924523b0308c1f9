"""A new lead arrives: create the contact, a deal for it, and a follow-up task."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from enact_proxy.models import ActionResult, WorkflowContext


def new_lead_workflow(context: WorkflowContext) -> Iterator[ActionResult]:
    hubspot = context.systems["hubspot"]
    email = context.payload["email"]
    company = context.payload.get("company", "")

    contact = hubspot.create_contact(email=email, properties={"company": company})
    yield ActionResult(action="create_contact", system="hubspot", success=True,
                       output={"id": contact["id"], "email": email})

    deal = hubspot.create_deal(properties={"dealname": f"{company or email} - new lead", "dealstage":
                                           "appointmentscheduled", "pipeline": "default"},
                               contact_ids=[contact["id"]])
    yield ActionResult(action="create_deal", system="hubspot", success=True, output={"id": deal["id"]})

    due = context.now + timedelta(days=1)
    task = hubspot.create_task(properties={"hs_task_subject": f"Follow up with {email}",
                                           "hs_timestamp": due.isoformat().replace("+00:00", "Z")},
                               contact_ids=[contact["id"]])
    yield ActionResult(action="create_task", system="hubspot", success=True, output={"id": task["id"]})
