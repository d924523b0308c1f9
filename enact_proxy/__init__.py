"""Enact: an action firewall for AI agents."""

from enact_proxy.client import EnactClient
from enact_proxy.models import (
    ActionRequest,
    ActionResult,
    Decision,
    PolicyResult,
    Receipt,
    RunResult,
    WorkflowContext,
)

__all__ = ["ActionRequest", "ActionResult", "Decision", "EnactClient", "PolicyResult", "Receipt", "RunResult",
           "WorkflowContext"]
