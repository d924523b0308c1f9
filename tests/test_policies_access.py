"""policies/access.py: actor roles, and contractors kept away from PII fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from policies.access import contractor_cannot_write_pii, require_actor_role
from tests.conftest import make_context

CONTRACTOR = ("contractor",)
PII_CASES = [
    # (action, payload, roles, passed, reason substring)
    ("hubspot.create_contact", {"email": "j@acme.com", "properties": {}}, CONTRACTOR, False, "PII field(s) email"),
    ("hubspot.create_contact", {"properties": {"phone": "+49 1"}}, CONTRACTOR, False, "PII field(s) phone"),
    ("hubspot.create_contact", {"properties": {"Phone": "+49 1"}}, CONTRACTOR, False, "PII field(s) Phone"),
    ("hubspot.update_deal", {"deal_id": "1", "properties": {"ssn": "x", "date_of_birth": "y"}}, CONTRACTOR, False,
     "date_of_birth, ssn"),
    ("hubspot.create_deal", {"properties": {"dealname": "big"}}, CONTRACTOR, True, "no PII field written"),
    ("hubspot.update_contact", {"contact_id": "101", "email": "j@acme.com", "properties": {"email": "x@evil.io"}},
     CONTRACTOR, False, "PII field(s) email"),
    ("hubspot.update_contact", {"contact_id": None, "email": "j@acme.com", "properties": {"PHONE": "1"}},
     CONTRACTOR, False, "PII field(s) PHONE"),
    ("hubspot.update_contact", {"contact_id": "101", "email": "j@acme.com", "properties": {"lifecyclestage": "lead"}},
     CONTRACTOR, True, "no PII field written"),
    ("hubspot.update_contact", {"contact_id": None, "email": None, "id_property": "ssn", "id": "1",
                                "properties": {"ssn": "2"}}, CONTRACTOR, False, "PII field(s) ssn"),
    ("postgres.insert_row", {"table": "people", "columns": ["name", "email"]}, CONTRACTOR, False,
     "PII field(s) email"),
    ("postgres.update_row", {"table": "people", "columns": ["SSN"], "has_where": True}, CONTRACTOR, False,
     "PII field(s) SSN"),
    ("postgres.insert_row", {"table": "people", "columns": ["*"]}, CONTRACTOR, False, "PII field(s) *"),
    ("postgres.update_row", {"table": "people", "columns": ["name", "*"]}, CONTRACTOR, False, "PII field(s) *"),
    ("postgres.insert_row", {"table": "people", "columns": ["name", "city"]}, CONTRACTOR, True,
     "no PII field written"),
    ("postgres.select_rows", {"table": "people", "columns": ["email", "ssn"]}, CONTRACTOR, True, "a read"),
    ("postgres.select_rows", {"table": "people", "columns": ["*"]}, CONTRACTOR, True, "a read"),
    ("hubspot.get_contact", {"email": "j@acme.com"}, CONTRACTOR, True, "a read"),
    ("github.read", {"owner": "o", "repo": "r", "path": "email"}, CONTRACTOR, True, "a read"),
    ("hubspot.create_contact", {"email": "j@acme.com"}, ("sales_agent",), True, "not a contractor"),
    ("postgres.insert_row", {"table": "people", "columns": ["*"]}, (), True, "not a contractor"),
    (None, {"email": "j@acme.com", "company": "Acme"}, ("sales_agent", "contractor"), False, "PII field(s) email"),
]


@pytest.mark.parametrize(("action", "payload", "roles", "ok", "reason"), PII_CASES)
def test_contractor_cannot_write_pii(action, payload, roles, ok, reason):
    policy = contractor_cannot_write_pii(pii_fields=["email", "phone", "ssn", "date_of_birth"])
    result = policy(make_context(action, payload, roles=roles))
    assert result.passed is ok
    assert reason in result.reason
    assert result.policy == "contractor_cannot_write_pii"


def test_pii_fields_are_configurable():
    policy = contractor_cannot_write_pii(pii_fields=["salary"])
    assert not policy(make_context("postgres.update_row", {"columns": ["salary"]}, roles=CONTRACTOR)).passed
    assert policy(make_context("postgres.update_row", {"columns": ["email"]}, roles=CONTRACTOR)).passed


ROLE_CASES = [
    (("sales_agent",), True, "actor holds role sales_agent"),
    (("viewer", "engineer"), True, "actor holds role engineer"),
    (("viewer",), False, "one of ['sales_agent', 'engineer'] is required"),
    ((), False, "has roles []"),
    (("Sales_Agent",), False, "is required"),
]


@pytest.mark.parametrize(("roles", "ok", "reason"), ROLE_CASES)
def test_require_actor_role(roles, ok, reason):
    policy = require_actor_role(roles=["sales_agent", "engineer"])
    result = policy(make_context("hubspot.create_contact", {"email": "x@y.z"}, roles=roles))
    assert result.passed is ok
    assert reason in result.reason


def test_require_actor_role_names_the_actor():
    result = require_actor_role(roles=["admin"])(make_context("github.read", {}, actor_email="bot@corp.io"))
    assert "bot@corp.io" in result.reason


def test_require_actor_role_validates_its_parameter():
    with pytest.raises(ValidationError):
        require_actor_role(roles="admin-but-not-a-list")  # type: ignore[arg-type]
