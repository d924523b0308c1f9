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


def test_built_models_equal_validated_ones() -> None:
    # models.built skips validation for values the engine typed itself: the result must be the same
    # object a validating constructor makes, field for field, dump for dump.
    from enact_proxy.models import ActionResult, PolicyResult, RequestSummary, built

    cases = [
        (RequestSummary, {"method": "POST", "host": "api.hubapi.com", "path": "/crm/v3/objects/contacts"}),
        (PolicyResult, {"policy": "p", "passed": True, "reason": "fine"}),
        (ActionResult, {"action": "hubspot.create_contact", "system": "hubspot", "success": True,
                        "output": {"status": 201}}),
    ]
    for cls, fields in cases:
        made, validated = built(cls, dict(fields)), cls(**fields)
        assert made == validated
        assert made.model_dump() == validated.model_dump()
        assert made.model_fields_set == validated.model_fields_set


def test_built_context_keeps_its_claims_private() -> None:
    from enact_proxy.models import built

    fields = {"workflow": "w", "actor_email": "a@b.c", "actor_roles": (), "system": "postgres",
              "action": "select_rows", "payload": {}, "systems": {}, "now": datetime.now(UTC), "state": None}
    made = built(WorkflowContext, dict(fields), {"_claims": None})
    assert made == WorkflowContext(**fields)
    made.claim("c")
    assert made._claims == [("", "c")]
    assert not built(WorkflowContext, dict(fields), {"_claims": None})._claims
