"""policies/crm.py: duplicate contacts (asks the connector) and tasks per contact (sliding window)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from enact_proxy.engine import Engine
from enact_proxy.models import ActionRequest, Decision
from enact_proxy.receipts.store import ReceiptStore
from enact_proxy.state import SqliteStateStore
from policies.crm import limit_tasks_per_contact, no_duplicate_contacts
from tests.conftest import make_context


class FakeHubSpot:
    """Answers find_contact_by_email from a dict; records every lookup."""

    def __init__(self, contacts: dict[str, str] | None = None, error: Exception | None = None):
        self.contacts = contacts or {}
        self.error = error
        self.lookups: list[str] = []

    def find_contact_by_email(self, email: str) -> dict[str, Any] | None:
        self.lookups.append(email)
        if self.error is not None:
            raise self.error
        if email in self.contacts:
            return {"id": self.contacts[email], "properties": {"email": email}}
        return None


def _create_contact(email: Any, hubspot: Any) -> Any:
    systems = {"hubspot": hubspot} if hubspot is not None else {}
    return no_duplicate_contacts(make_context("hubspot.create_contact", {"email": email, "properties": {}},
                                              systems=systems))


def test_existing_contact_fails_naming_its_id():
    hubspot = FakeHubSpot({"jane@acme.com": "501"})
    result = _create_contact("jane@acme.com", hubspot)
    assert not result.passed
    assert "jane@acme.com already exists" in result.reason
    assert "id 501" in result.reason


def test_new_contact_passes():
    hubspot = FakeHubSpot({"jane@acme.com": "501"})
    result = _create_contact("bob@acme.com", hubspot)
    assert result.passed
    assert hubspot.lookups == ["bob@acme.com"]


@pytest.mark.parametrize("raw", ["  JANE@ACME.COM ", "Jane@Acme.Com", "\tjane@acme.com\n",
                                 "\uff2a\uff21\uff2e\uff25@ACME.COM"])  # the last is full-width JANE
def test_email_is_trimmed_casefolded_and_nfkc_normalised_before_lookup(raw):
    hubspot = FakeHubSpot({"jane@acme.com": "501"})
    result = _create_contact(raw, hubspot)
    assert hubspot.lookups == ["jane@acme.com"]
    assert not result.passed
    assert "id 501" in result.reason


def test_lookup_that_raises_propagates_so_the_engine_fails_closed():
    hubspot = FakeHubSpot(error=TimeoutError("hubspot did not answer"))
    with pytest.raises(TimeoutError):
        _create_contact("jane@acme.com", hubspot)


def test_engine_turns_a_raising_lookup_into_a_failed_result(store: ReceiptStore, clock):
    hubspot = FakeHubSpot(error=ConnectionError("hubspot unreachable"))
    engine = Engine(policies=[no_duplicate_contacts], workflows={"wf": ["hubspot.create_contact"]},
                    actor_email="agent@company.com", receipts=store, clock=clock)
    verdict = engine.judge(ActionRequest(system="hubspot", action="create_contact",
                                         payload={"email": "jane@acme.com"}), {"hubspot": hubspot})
    assert verdict.decision is Decision.BLOCK
    (result,) = verdict.policy_results
    assert not result.passed
    assert "ConnectionError" in result.reason
    assert "hubspot unreachable" in result.reason


def test_intercepted_create_without_connector_fails_closed():
    result = _create_contact("jane@acme.com", None)
    assert not result.passed
    assert "no HubSpot connector" in result.reason


def test_intercepted_create_without_email_fails():
    result = no_duplicate_contacts(make_context("hubspot.create_contact", {"properties": {"firstname": "J"}},
                                                systems={"hubspot": FakeHubSpot()}))
    assert not result.passed
    assert "no email" in result.reason


def test_other_actions_are_not_checked():
    hubspot = FakeHubSpot({"jane@acme.com": "501"})
    result = no_duplicate_contacts(make_context("hubspot.create_deal", {"email": "jane@acme.com"},
                                                systems={"hubspot": hubspot}))
    assert result.passed
    assert hubspot.lookups == []


def test_library_run_checks_the_workflow_payload():
    hubspot = FakeHubSpot({"jane@acme.com": "501"})
    result = no_duplicate_contacts(make_context(None, {"email": "JANE@acme.com"}, systems={"hubspot": hubspot}))
    assert not result.passed
    assert hubspot.lookups == ["jane@acme.com"]


# -- limit_tasks_per_contact -------------------------------------------------------------------

def _task() -> ActionRequest:
    return ActionRequest(system="hubspot", action="create_task",
                         payload={"properties": {"hs_task_subject": "call"}, "contact_ids": ["101"]})


@pytest.fixture
def task_engine(store: ReceiptStore, clock, tmp_path):
    state = SqliteStateStore(tmp_path / "state.sqlite")
    engine = Engine(policies=[limit_tasks_per_contact(max_tasks=3, window_minutes=60)],
                    workflows={"crm": ["hubspot.create_task"]}, actor_email="agent@company.com",
                    receipts=store, clock=clock, state=state)
    yield engine
    state.close()


def _attempt(engine: Engine, *actions: ActionRequest) -> Any:
    judgement = engine.judge_request(list(actions) or [_task()])
    for verdict in judgement.verdicts if judgement.forwards else []:
        ticket = engine.open(verdict).result(timeout=10)
        engine.close(ticket, []).result(timeout=10)
    return judgement.verdicts[0] if len(judgement.verdicts) == 1 else judgement


def test_three_tasks_pass_then_the_fourth_fails(task_engine, clock):
    for _ in range(3):
        assert _attempt(task_engine).decision is Decision.PASS
        clock.advance(minutes=1)
    fourth = _attempt(task_engine)
    assert fourth.decision is Decision.BLOCK
    assert "contact 101 already has 3 tasks in the last 60 minutes (max 3)" in fourth.reason


def test_window_slides(task_engine, clock):
    start = clock.now
    for _ in range(3):
        assert _attempt(task_engine).decision is Decision.PASS
        clock.advance(minutes=10)  # tasks at +0, +10, +20
    clock.now = start + timedelta(minutes=59)
    assert _attempt(task_engine).decision is Decision.BLOCK
    clock.now = start + timedelta(minutes=61)  # the +0 task left the window
    assert _attempt(task_engine).decision is Decision.PASS
    assert _attempt(task_engine).decision is Decision.BLOCK  # +10, +20, +61 are in it now


def test_a_refused_request_claims_nothing(store, clock, tmp_path):
    state = SqliteStateStore(tmp_path / "state.sqlite")
    engine = Engine(policies=[limit_tasks_per_contact(max_tasks=1, window_minutes=60)],
                    workflows={"crm": ["hubspot.create_task"]}, actor_email="agent@company.com",
                    receipts=store, clock=clock, state=state)
    unknown = ActionRequest(system="hubspot", action="delete_everything", payload={})
    refused = engine.judge_request([_task(), unknown])  # the second action has no workflow
    assert not refused.forwards and refused.claim_owner is None
    assert _attempt(engine).decision is Decision.PASS  # the first request took nothing
    state.close()


def test_a_batch_counts_every_task_toward_the_limit(task_engine):
    judgement = _attempt(task_engine, *[_task() for _ in range(4)])
    assert not judgement.forwards
    assert "contact 101 already has 3 tasks in the last 60 minutes (max 3) (counting this request)" in \
        judgement.verdicts[3].reason
    assert all(v.decision is Decision.BLOCK for v in judgement.verdicts)
    assert _attempt(task_engine, *[_task() for _ in range(3)]).forwards  # nothing of the refused batch counted


def test_a_task_naming_one_contact_twice_counts_once(task_engine):
    twice = ActionRequest(system="hubspot", action="create_task", payload={"contact_ids": ["101", "101"]})
    for _ in range(3):
        assert _attempt(task_engine, twice).decision is Decision.PASS


def test_contacts_are_counted_separately(task_engine):
    for _ in range(3):
        assert _attempt(task_engine).decision is Decision.PASS
    other = ActionRequest(system="hubspot", action="create_task", payload={"contact_ids": ["202"]})
    assert task_engine.judge(other).decision is Decision.PASS


def test_other_actions_are_not_counted(tmp_path, clock):
    state = SqliteStateStore(tmp_path / "s.sqlite")
    policy = limit_tasks_per_contact(max_tasks=0)
    result = policy(make_context("hubspot.create_contact", {"contact_ids": ["1"]}, state=state))
    assert result.passed
    assert "not a task creation" in result.reason
    state.close()
