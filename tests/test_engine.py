"""enact_proxy/engine.py: allowlist, every policy runs, fail closed, shadow mode, receipts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from enact_proxy.engine import BLOCK_PREFIX, Engine
from enact_proxy.models import ActionRequest, ActionResult, Decision, PolicyResult, RequestSummary
from enact_proxy.policy import failed, passed
from enact_proxy.receipts.store import ReceiptStore
from tests.conftest import spec_records

CONTACT = ActionRequest(system="hubspot", action="create_contact", payload={"email": "jane@acme.com"},
                        request=RequestSummary(method="POST", host="api.hubapi.com", path="/crm/v3/objects/contacts"))


def ok_policy(ctx):
    return passed("ok_policy", "fine")


def refusing_policy(ctx):
    return failed("refusing_policy", "never allowed")


def raising_policy(ctx):
    raise KeyError("missing_field")


def _engine(store: ReceiptStore, clock, policies, mode="enforce", **kw: Any) -> Engine:
    return Engine(policies=policies, workflows={"new_lead_workflow": ["hubspot.create_contact"]},
                  actor_email="agent@company.com", actor_roles=["sales_agent"], receipts=store, mode=mode,
                  clock=clock, **kw)


def _receipt_files(directory: Path) -> list[dict[str, Any]]:
    return [r for r in spec_records(directory) if r["kind"] == "receipt"]


def test_default_deny_without_a_workflow(store, clock):
    calls = []
    engine = _engine(store, clock, [lambda ctx: calls.append(ctx) or passed("x", "y")])
    verdict = engine.judge(ActionRequest(system="hubspot", action="create_task", payload={}))
    assert verdict.decision is Decision.BLOCK
    assert verdict.reason == "no registered workflow allows hubspot.create_task"
    assert not verdict.forwards
    assert verdict.message == BLOCK_PREFIX + "no registered workflow allows hubspot.create_task"
    assert calls == []  # no policy is consulted for an action no workflow names


def test_allowed_action_passes_and_names_its_workflow(store, clock):
    verdict = _engine(store, clock, [ok_policy]).judge(CONTACT)
    assert verdict.decision is Decision.PASS
    assert verdict.forwards
    assert verdict.workflow == "new_lead_workflow"
    assert [r.policy for r in verdict.policy_results] == ["ok_policy"]


def test_every_policy_runs_even_after_one_fails(store, clock):
    seen = []

    def last(ctx):
        seen.append("last")
        return passed("last", "ran")

    verdict = _engine(store, clock, [refusing_policy, raising_policy, ok_policy, last]).judge(CONTACT)
    assert verdict.decision is Decision.BLOCK
    assert [r.policy for r in verdict.policy_results] == ["refusing_policy", "raising_policy", "ok_policy", "last"]
    assert [r.passed for r in verdict.policy_results] == [False, False, True, True]
    assert seen == ["last"]
    assert "refusing_policy: never allowed" in verdict.reason
    assert "raising_policy: policy raised KeyError" in verdict.reason
    assert "ok_policy" not in verdict.reason


def test_raising_policy_is_a_failed_result_naming_the_exception(store, clock):
    verdict = _engine(store, clock, [raising_policy]).judge(CONTACT)
    (result,) = verdict.policy_results
    assert not result.passed
    assert "KeyError" in result.reason
    assert "missing_field" in result.reason
    assert verdict.decision is Decision.BLOCK


@pytest.mark.parametrize("garbage", [None, {"passed": True, "reason": "ok"}, True, "PASS", 1])
def test_policy_returning_garbage_fails(store, clock, garbage):
    def sloppy(ctx):
        return garbage

    verdict = _engine(store, clock, [sloppy]).judge(CONTACT)
    (result,) = verdict.policy_results
    assert result.policy == "sloppy"
    assert not result.passed
    assert type(garbage).__name__ in result.reason
    assert verdict.decision is Decision.BLOCK


def test_result_is_renamed_to_the_policy_that_produced_it(store, clock):
    def impostor(ctx):
        return PolicyResult(policy="someone_else", passed=False, reason="no")

    (result,) = _engine(store, clock, [impostor]).judge(CONTACT).policy_results
    assert result.policy == "impostor"


def test_no_policies_means_the_workflow_alone_decides(store, clock):
    verdict = _engine(store, clock, []).judge(CONTACT)
    assert verdict.decision is Decision.PASS
    assert "0 policies passed" in verdict.reason


def test_shadow_mode_records_block_but_forwards(store, clock, receipt_dir):
    engine = _engine(store, clock, [refusing_policy], mode="shadow")
    verdict = engine.judge(CONTACT)
    assert verdict.decision is Decision.BLOCK
    assert verdict.forwards
    ticket = engine.open(verdict).result(timeout=10)
    signed = engine.close(ticket, [ActionResult(action="create_contact", system="hubspot", success=True)]
                          ).result(timeout=10).record_dict()
    assert signed["decision"] == "BLOCK"
    assert signed["mode"] == "shadow"
    store.close()
    (on_disk,) = _receipt_files(receipt_dir)
    assert on_disk["decision"] == "BLOCK" and on_disk["mode"] == "shadow"
    assert on_disk["actions_taken"][0]["success"] is True


def test_enforce_mode_block_does_not_forward(store, clock):
    assert not _engine(store, clock, [refusing_policy]).judge(CONTACT).forwards


def test_block_receipt_holds_decision_reason_and_policy_results(store, clock, receipt_dir):
    engine = _engine(store, clock, [ok_policy, refusing_policy], config_sha256="ab" * 32)
    verdict = engine.judge(CONTACT)
    signed = engine.record(verdict).result(timeout=10).record_dict()
    store.close()
    (on_disk,) = _receipt_files(receipt_dir)
    assert on_disk == signed
    assert on_disk["decision"] == "BLOCK"
    assert on_disk["reason"] == "refusing_policy: never allowed"
    assert on_disk["policy_results"] == [
        {"policy": "ok_policy", "passed": True, "reason": "fine"},
        {"policy": "refusing_policy", "passed": False, "reason": "never allowed"},
    ]
    assert on_disk["run_id"] == verdict.run_id
    assert on_disk["action"] == "hubspot.create_contact"
    assert on_disk["system"] == "hubspot"
    assert on_disk["workflow"] == "new_lead_workflow"
    assert on_disk["actor_email"] == "agent@company.com"
    assert on_disk["payload"] == {"email": "jane@acme.com"}
    assert on_disk["request"] == {"method": "POST", "host": "api.hubapi.com", "path": "/crm/v3/objects/contacts"}
    assert on_disk["timestamp"] == "2024-01-15T10:00:00Z"
    assert on_disk["config_sha256"] == "ab" * 32
    assert on_disk["mode"] == "enforce"
    assert on_disk["actions_taken"] == []
    assert on_disk["prev_hash"] is None
    assert on_disk["signature"]["alg"] == "HMAC-SHA256"


def test_pass_receipt_holds_what_was_done(store, clock, receipt_dir):
    engine = _engine(store, clock, [ok_policy])
    verdict = engine.judge(CONTACT)
    ticket = engine.open(verdict).result(timeout=10)
    engine.close(ticket, [ActionResult(action="create_contact", system="hubspot", success=True,
                                       output={"status": 201})]).result(timeout=10)
    store.close()
    (on_disk,) = _receipt_files(receipt_dir)
    assert on_disk["decision"] == "PASS"
    assert on_disk["actions_taken"] == [{"action": "create_contact", "system": "hubspot", "success": True,
                                         "output": {"status": 201}}]


def test_refuse_records_a_reason_without_running_policies(store, clock):
    calls = []
    engine = _engine(store, clock, [lambda ctx: calls.append(1) or passed("p", "r")])
    verdict = engine.refuse(CONTACT, "body is not valid JSON")
    assert verdict.decision is Decision.BLOCK
    assert verdict.reason == "body is not valid JSON"
    assert verdict.workflow == "new_lead_workflow"
    assert calls == []
    signed = engine.record(verdict).result(timeout=10).record_dict()
    assert signed["reason"] == "body is not valid JSON"


def test_a_state_store_that_raises_refuses_every_claiming_action_naming_the_store(store, clock):
    from enact_proxy.state import StateStoreError, Unique

    class DownStore:
        url = "postgresql://enact@db.internal:5432/enact"

        def claim(self, claims, *, owner, now, enforce=True):
            raise StateStoreError(f"state store {self.url} unavailable: connection refused")

    def claiming(ctx):
        ctx.claim(Unique("k"))
        return passed("claiming", "fine")

    def plain(ctx):
        return passed("plain", "fine")

    engine = Engine(policies=[claiming, plain], workflows={"new_lead_workflow": ["hubspot.create_contact"]},
                    actor_email="agent@company.com", receipts=store, clock=clock, state=DownStore())
    judgement = engine.judge_request([CONTACT])
    verdict = judgement.verdicts[0]
    assert verdict.decision is Decision.BLOCK and not judgement.forwards
    assert "state store postgresql://enact@db.internal:5432/enact unavailable" in verdict.reason
    assert [(r.policy, r.passed) for r in verdict.policy_results] == [("claiming", False), ("plain", True)]
    assert judgement.claim_owner is None


def test_a_claim_without_a_state_store_refuses(store, clock):
    from enact_proxy.state import Unique

    def claiming(ctx):
        ctx.claim(Unique("k"))
        return passed("claiming", "fine")

    engine = Engine(policies=[claiming], workflows={"new_lead_workflow": ["hubspot.create_contact"]},
                    actor_email="agent@company.com", receipts=store, clock=clock)
    verdict = engine.judge_request([CONTACT]).verdicts[0]
    assert verdict.decision is Decision.BLOCK
    assert "no state store is configured" in verdict.reason


def test_uncalled_factory_gets_its_defaults(store, clock):
    from policies.git import max_files_per_commit

    engine = Engine(policies=[max_files_per_commit], workflows={"g": ["github.push_commit"]},
                    actor_email="a@b.c", receipts=store, clock=clock)
    big = ActionRequest(system="github", action="push_commit", payload={"branch": "agent/x",
                                                                        "files": [str(i) for i in range(21)]})
    verdict = engine.judge(big)
    assert verdict.decision is Decision.BLOCK
    assert "max 20" in verdict.reason


def test_run_ids_are_version_4_uuids():
    import uuid

    from enact_proxy.engine import new_run_id

    ids = {new_run_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in list(ids)[:200]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


def test_a_policy_setting_a_payload_key_does_not_change_what_the_receipt_records(store, clock):
    def meddling(ctx):
        ctx.payload["email"] = "someone-else@acme.com"
        return passed("meddling", "changed its own view")

    action = ActionRequest(system="hubspot", action="create_contact", payload={"email": "jane@acme.com"})
    engine = _engine(store, clock, [meddling])
    verdict = engine.judge(action)
    assert action.payload == {"email": "jane@acme.com"}
    assert engine.draft(verdict).payload == {"email": "jane@acme.com"}
