"""enact_proxy/models.py receipt records: the typed Intent/Receipt the engine, store, CLI and verifier share."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from enact_proxy.models import LOG_FIELDS, Approval, Intent, Receipt, parse_record
from tests.conftest import draft


def _receipt(**fields: object) -> Receipt:
    body = draft(1, request={"method": "POST", "host": "api.hubapi.com", "path": "/crm/v3/objects/contacts"},
                 actions_taken=[{"action": "create_contact", "system": "hubspot", "success": True,
                                 "output": {"status": 201, "id": "7"}}])
    body.update(fields)
    return Receipt.model_validate(body)


@pytest.mark.parametrize("approval", [None, {"id": "ap-1", "approved_by": "alice@company.com"}])
def test_hand_written_body_equals_the_generic_dump(approval):
    receipt = _receipt(approval=approval)
    generic = receipt.model_dump(mode="json", exclude=set(LOG_FIELDS))
    if approval is None:
        generic.pop("approval")  # present only when an approval let the action through
    assert receipt.body() == generic
    intent = receipt.intent_body()
    assert "actions_taken" not in intent and intent == {k: v for k, v in generic.items() if k != "actions_taken"}


def test_records_parse_by_kind_and_round_trip():
    receipt = _receipt(approval=Approval(id="ap-1", approved_by="alice@company.com"))
    as_logged = {**receipt.body(), "kind": "receipt", "seq": 4, "prev_hash": "ab" * 32,
                 "signature": {"alg": "HMAC-SHA256", "key_id": "0" * 16, "value": "1" * 64}}
    parsed = parse_record(as_logged)
    assert isinstance(parsed, Receipt) and parsed.record_dict() == as_logged
    intent = {k: v for k, v in as_logged.items() if k != "actions_taken"} | {"kind": "intent"}
    parsed_intent = parse_record(intent)
    assert isinstance(parsed_intent, Intent) and parsed_intent.record_dict() == intent
    with pytest.raises(ValidationError):
        parse_record({**as_logged, "kind": "something-else"})
    with pytest.raises(ValidationError):
        parse_record({**as_logged, "decision": "MAYBE"})
