"""Built-in policies, by the names ``enact.yaml`` uses."""

from __future__ import annotations

from typing import Any

from policies import access, approval, crm, git, sql, time

BUILTIN: dict[str, Any] = {
    "no_duplicate_contacts": crm.no_duplicate_contacts,
    "limit_tasks_per_contact": crm.limit_tasks_per_contact,
    "require_actor_role": access.require_actor_role,
    "contractor_cannot_write_pii": access.contractor_cannot_write_pii,
    "no_push_to_main": git.no_push_to_main,
    "max_files_per_commit": git.max_files_per_commit,
    "require_branch_prefix": git.require_branch_prefix,
    "within_maintenance_window": time.within_maintenance_window,
    "no_unbounded_write": sql.no_unbounded_write,
    "require_approval": approval.require_approval,
}
