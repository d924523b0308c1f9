"""The shared domain objects: what front doors and policies rely on."""

from __future__ import annotations

from datetime import UTC, datetime

from enact_proxy.models import WorkflowContext


def _ctx() -> WorkflowContext:
    return WorkflowContext(workflow="w", actor_email="agent@company.com", system="postgres",
                           action="select_rows", payload={}, now=datetime.now(UTC))


def test_each_context_starts_with_its_own_empty_claims() -> None:
    # The claims list is not a default_factory (pydantic inspects a factory's signature on every
    # construction, see models.py): whatever replaces it, one request's claims must never leak into
    # the next.
    first, second = _ctx(), _ctx()
    first.claim("a claim")
    assert first._claims == [("", "a claim")]
    assert not second._claims
    assert not _ctx()._claims
