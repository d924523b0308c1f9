"""enact_proxy/client.py: library mode with a fake HubSpot and the reference new_lead workflow."""

from __future__ import annotations

import os
from typing import Any

import pytest

from enact_proxy import EnactClient
from enact_proxy.models import Decision
from enact_proxy.receipts.store import ReceiptError
from policies.crm import no_duplicate_contacts
from tests.conftest import independent_verify, spec_receipts
from workflows.new_lead import new_lead_workflow


class FakeHubSpot:
    def __init__(self, fail_on: str | None = None):
        self.contacts: dict[str, str] = {}
        self.calls: list[str] = []
        self.fail_on = fail_on

    def _record(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail_on:
            raise RuntimeError(f"{name} answered 500")

    def find_contact_by_email(self, email: str) -> dict[str, Any] | None:
        self.calls.append("find_contact_by_email")
        cid = self.contacts.get(email)
        return {"id": cid, "properties": {"email": email}} if cid else None

    def create_contact(self, email: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
        self._record("create_contact")
        self.contacts[email] = str(100 + len(self.contacts))
        return {"id": self.contacts[email]}

    def create_deal(self, properties: dict[str, Any], contact_ids: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
        self._record("create_deal")
        return {"id": "D1"}

    def create_task(self, properties: dict[str, Any], contact_ids: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
        self._record("create_task")
        return {"id": "T1"}

    @property
    def writes(self) -> list[str]:
        return [c for c in self.calls if c != "find_contact_by_email"]


@pytest.fixture
def hubspot() -> FakeHubSpot:
    return FakeHubSpot()


@pytest.fixture
def client(hubspot, receipt_dir, receipt_key):
    with EnactClient(systems={"hubspot": hubspot}, policies=[no_duplicate_contacts], workflows=[new_lead_workflow],
                     receipts_dir=receipt_dir, receipt_key=receipt_key) as made:
        yield made


LEAD = {"email": "jane@acme.com", "company": "Acme Inc"}


def _files(receipt_dir) -> dict[str, dict]:
    return spec_receipts(receipt_dir)


def test_pass_runs_three_steps_and_the_receipt_has_them(client, hubspot, receipt_dir, receipt_key):
    result, receipt = client.run(workflow="new_lead_workflow", actor_email="agent@company.com", payload=LEAD)
    assert result.decision is Decision.PASS
    assert result.passed
    assert hubspot.writes == ["create_contact", "create_deal", "create_task"]
    assert [a.action for a in result.actions_taken] == ["create_contact", "create_deal", "create_task"]
    assert [a.action for a in receipt.actions_taken] == ["create_contact", "create_deal", "create_task"]
    assert all(a.success is True for a in receipt.actions_taken)
    assert receipt.run_id == result.run_id
    assert receipt.workflow == "new_lead_workflow"
    assert receipt.actor_email == "agent@company.com"
    assert receipt.payload == LEAD
    client.close()
    on_disk = _files(receipt_dir)[receipt.run_id]
    assert on_disk["decision"] == "PASS"
    assert [a["action"] for a in on_disk["actions_taken"]] == ["create_contact", "create_deal", "create_task"]
    assert independent_verify(receipt_dir, receipt_key.secret) == []


def test_duplicate_is_blocked_and_executes_nothing(client, hubspot, receipt_dir, receipt_key):
    client.run(workflow="new_lead_workflow", actor_email="agent@company.com", payload=LEAD)
    hubspot.calls.clear()
    result, receipt = client.run(workflow="new_lead_workflow", actor_email="agent@company.com",
                                 payload={"email": " JANE@acme.com ", "company": "Acme Inc"})
    assert result.decision is Decision.BLOCK
    assert "no_duplicate_contacts" in result.reason
    assert "already exists (id 100)" in result.reason
    assert hubspot.writes == []
    assert result.actions_taken == [] and receipt.actions_taken == []
    assert receipt.decision is Decision.BLOCK
    client.close()
    assert len(_files(receipt_dir)) == 2
    assert independent_verify(receipt_dir, receipt_key.secret) == []


def test_unregistered_workflow_is_blocked(client, hubspot):
    result, receipt = client.run(workflow="delete_all_contacts", actor_email="agent@company.com", payload=LEAD)
    assert result.decision is Decision.BLOCK
    assert "delete_all_contacts is not registered" in result.reason
    assert receipt.workflow == "delete_all_contacts"
    assert hubspot.calls == []


def test_a_raising_step_stops_the_workflow_and_the_receipt_keeps_what_was_done(receipt_dir, receipt_key):
    hubspot = FakeHubSpot(fail_on="create_deal")
    with EnactClient(systems={"hubspot": hubspot}, policies=[no_duplicate_contacts], workflows=[new_lead_workflow],
                     receipts_dir=receipt_dir, receipt_key=receipt_key) as client:
        result, receipt = client.run(workflow="new_lead_workflow", actor_email="agent@company.com", payload=LEAD)
    assert hubspot.writes == ["create_contact", "create_deal"]  # create_task never ran
    assert [(a.action, a.success) for a in receipt.actions_taken] == [("create_contact", True),
                                                                      ("workflow_error", False)]
    assert "RuntimeError: create_deal answered 500" in receipt.actions_taken[1].output["error"]
    on_disk = _files(receipt_dir)[receipt.run_id]
    assert [a["action"] for a in on_disk["actions_taken"]] == ["create_contact", "workflow_error"]


def test_a_policy_that_raises_blocks_and_runs_nothing(receipt_dir, receipt_key):
    class BrokenLookup(FakeHubSpot):
        def find_contact_by_email(self, email: str) -> dict[str, Any] | None:
            raise TimeoutError("search timed out")

    hubspot = BrokenLookup()
    with EnactClient(systems={"hubspot": hubspot}, policies=[no_duplicate_contacts], workflows=[new_lead_workflow],
                     receipts_dir=receipt_dir, receipt_key=receipt_key) as client:
        result, _ = client.run(workflow="new_lead_workflow", actor_email="agent@company.com", payload=LEAD)
    assert result.decision is Decision.BLOCK
    assert "TimeoutError" in result.reason
    assert hubspot.writes == []


def test_receipt_that_cannot_be_written_runs_nothing(monkeypatch, client, hubspot):
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    # Neither the intent nor the BLOCK receipt can be written: run refuses by raising, having run nothing.
    with pytest.raises(ReceiptError):
        client.run(workflow="new_lead_workflow", actor_email="agent@company.com", payload=LEAD)
    assert hubspot.writes == []


def test_receipt_failure_for_the_intent_alone_becomes_a_block(monkeypatch, client, hubspot, receipt_dir):
    real_fsync = os.fsync
    failures = iter([True])

    def fsync_failing_once(fd: int) -> None:
        if next(failures, False):
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_failing_once)
    result, receipt = client.run(workflow="new_lead_workflow", actor_email="agent@company.com", payload=LEAD)
    assert result.decision is Decision.BLOCK
    assert "receipt could not be written" in result.reason
    assert hubspot.writes == []
    assert receipt.decision is Decision.BLOCK and receipt.actions_taken == []


def test_key_from_certs_dir_when_none_is_given(tmp_path, hubspot):
    with EnactClient(systems={"hubspot": hubspot}, workflows=[new_lead_workflow], receipts_dir=tmp_path / "r",
                     certs_dir=tmp_path / "certs") as client:
        client.run(workflow="new_lead_workflow", actor_email="a@b.c", payload=LEAD)
    key = (tmp_path / "certs" / "receipt.key").read_text().strip().encode()
    assert independent_verify(tmp_path / "r", key) == []


class LaggingHubSpot(FakeHubSpot):
    """HubSpot's search is eventually consistent: it never finds what was just created."""

    def find_contact_by_email(self, email: str) -> dict[str, Any] | None:
        self.calls.append("find_contact_by_email")
        return None


class Refusing(FakeHubSpot):
    """Answers the contact creation with a 400, as HubSpot does for an invalid property."""

    def create_contact(self, email: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append("create_contact")
        error = RuntimeError("HubSpot POST /crm/v3/objects/contacts answered 400")
        error.status = 400  # type: ignore[attr-defined]
        raise error


def test_library_mode_remembers_contacts_it_created_in_the_shared_store(receipt_dir, receipt_key, tmp_path):
    state = f"sqlite:///{tmp_path}/shared.sqlite"
    for hubspot, expected in ((LaggingHubSpot(), Decision.PASS), (LaggingHubSpot(), Decision.BLOCK)):
        with EnactClient(systems={"hubspot": hubspot}, policies=[no_duplicate_contacts],
                         workflows=[new_lead_workflow], receipts_dir=receipt_dir, receipt_key=receipt_key,
                         state=state) as enact:
            result, receipt = enact.run("new_lead_workflow", "agent@company.com", {"email": "Jane\u200b@acme.com"})
        assert result.decision is expected, result.reason
    assert "jane@acme.com was already created through Enact" in result.reason


def test_library_mode_releases_the_claim_when_the_system_refused_the_run(receipt_dir, receipt_key, tmp_path):
    state = f"sqlite:///{tmp_path}/s.sqlite"
    with EnactClient(systems={"hubspot": Refusing()}, policies=[no_duplicate_contacts],
                     workflows=[new_lead_workflow], receipts_dir=receipt_dir, receipt_key=receipt_key,
                     state=state) as enact:
        refused, _ = enact.run("new_lead_workflow", "agent@company.com", {"email": "bob@acme.com"})
    assert refused.decision is Decision.PASS and refused.actions_taken[-1].output["status"] == 400
    with EnactClient(systems={"hubspot": LaggingHubSpot()}, policies=[no_duplicate_contacts],
                     workflows=[new_lead_workflow], receipts_dir=receipt_dir, receipt_key=receipt_key,
                     state=state) as enact:
        again, _ = enact.run("new_lead_workflow", "agent@company.com", {"email": "bob@acme.com"})
    assert again.decision is Decision.PASS, again.reason
