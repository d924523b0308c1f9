"""Mirror a CRM record into the application database."""

from __future__ import annotations

from collections.abc import Iterator

from enact_proxy.models import ActionResult, WorkflowContext


def crm_sync_workflow(context: WorkflowContext) -> Iterator[ActionResult]:
    db = context.systems["postgres"]
    table = context.payload.get("table", "crm_contacts")
    row = dict(context.payload["row"])
    key = context.payload.get("key", "email")

    existing = db.select_rows(table, where={key: row[key]})
    yield ActionResult(action="select_rows", system="postgres", success=True, output={"rows": len(existing)})
    if existing:
        count = db.update_row(table, values=row, where={key: row[key]})
        yield ActionResult(action="update_row", system="postgres", success=True, output={"rowcount": count})
    else:
        inserted = db.insert_row(table, row)
        yield ActionResult(action="insert_row", system="postgres", success=True, output={"row": inserted})
