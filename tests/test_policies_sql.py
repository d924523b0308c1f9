"""policies/sql.py: UPDATE and DELETE must be bounded by a WHERE clause."""

from __future__ import annotations

import pytest

from policies.sql import no_unbounded_write
from tests.conftest import make_context

CASES = [
    ("postgres.update_row", {"table": "crm", "columns": ["name"], "has_where": True}, True,
     "UPDATE of crm is bounded by WHERE"),
    ("postgres.update_row", {"table": "crm", "columns": ["name"], "has_where": False}, False,
     "UPDATE of crm has no WHERE clause"),
    ("postgres.update_row", {"table": "crm", "columns": ["name"]}, False, "UPDATE of crm has no WHERE clause"),
    ("postgres.delete_row", {"table": "crm", "has_where": True}, True, "DELETE of crm is bounded"),
    ("postgres.delete_row", {"table": "crm", "has_where": False}, False, "DELETE of crm has no WHERE clause"),
    ("postgres.delete_row", {"table": "crm", "has_where": True, "where_constant_true": True}, False,
     "DELETE of crm has a WHERE clause that is always true"),
    ("postgres.delete_row", {}, False, "DELETE of ? has no WHERE clause"),
    ("postgres.insert_row", {"table": "crm", "columns": ["name"]}, True, "not an UPDATE or DELETE"),
    ("postgres.select_rows", {"table": "crm", "has_where": False}, True, "not an UPDATE or DELETE"),
    ("hubspot.update_deal", {"deal_id": "1"}, True, "not an UPDATE or DELETE"),
]


@pytest.mark.parametrize(("action", "payload", "ok", "reason"), CASES)
def test_no_unbounded_write(action, payload, ok, reason):
    result = no_unbounded_write(make_context(action, payload))
    assert result.passed is ok
    assert reason in result.reason
