"""The reference workflows in library mode, against real servers: sandbox HubSpot and GitHub, a real
PostgreSQL. Ground truth is what the upstream holds afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from connectors.github import GitHubConnector
from connectors.hubspot import HubSpotConnector
from connectors.postgres import PostgresConnector
from enact_proxy import EnactClient
from enact_proxy.models import Decision
from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.verify import verify_log
from enact_proxy.sandbox import SandboxGitHub, SandboxHubSpot
from policies import BUILTIN
from tests.pg_fixtures import PgServer, pg_server  # noqa: F401 - the fixture
from workflows.agent_git import agent_git_workflow
from workflows.crm_sync import crm_sync_workflow
from workflows.new_lead import new_lead_workflow

KEY = ReceiptKey(b"workflow-tests-key")


def client(tmp_path: Path, systems: dict, policies: list, workflows: list, roles=("sales_agent",)) -> EnactClient:
    return EnactClient(systems=systems, policies=policies, workflows=workflows, actor_roles=roles,
                       receipts_dir=tmp_path / "receipts", receipt_key=KEY)


def test_new_lead_creates_contact_deal_and_task_then_refuses_the_duplicate(tmp_path: Path) -> None:
    with SandboxHubSpot(token="t") as hubspot:
        hs = HubSpotConnector(api_key="t", base_url=hubspot.url)
        with client(tmp_path, {"hubspot": hs}, [BUILTIN["no_duplicate_contacts"]], [new_lead_workflow]) as enact:
            result, receipt = enact.run("new_lead_workflow", "agent@company.com",
                                        {"email": "jane@acme.com", "company": "Acme"})
            assert result.decision is Decision.PASS
            assert [a.action for a in receipt.actions_taken] == ["create_contact", "create_deal", "create_task"]
            assert all(a.success for a in receipt.actions_taken)
            contact_id = receipt.actions_taken[0].output["id"]
            task = hubspot.objects("tasks")[0]
            assert (contact_id, 204) in [(str(t), k) for t, k in hubspot.associations("tasks", task["id"])]

            again, receipt2 = enact.run("new_lead_workflow", "agent@company.com", {"email": " Jane@ACME.com "})
            assert again.decision is Decision.BLOCK
            assert f"already exists (id {contact_id})" in again.reason
            assert receipt2.actions_taken == []
            assert len(hubspot.contacts()) == 1
        assert verify_log(tmp_path / "receipts", KEY, None, live=False).ok


def test_agent_git_branches_commits_and_opens_a_pull_request(tmp_path: Path) -> None:
    with SandboxGitHub(token="g") as github:
        github.add_repo("acme", "app")
        gh = GitHubConnector(token="g", base_url=github.url)
        policies = [BUILTIN["no_push_to_main"], BUILTIN["require_branch_prefix"](prefix="agent/"),
                    BUILTIN["max_files_per_commit"](max_files=2)]
        with client(tmp_path, {"github": gh}, policies, [agent_git_workflow]) as enact:
            payload = {"owner": "acme", "repo": "app", "branch": "agent/docs", "files": {"docs/a.md": "A\n"},
                       "title": "Docs"}
            result, receipt = enact.run("agent_git_workflow", "agent@company.com", payload)
            assert result.decision is Decision.PASS, result.reason
            assert [a.success for a in receipt.actions_taken] == [True, True, True]
            assert github.file("acme", "app", "docs/a.md", branch="agent/docs") == b"A\n"
            assert [p["head"]["ref"] for p in github.pulls("acme", "app")] == ["agent/docs"]

            blocked, _ = enact.run("agent_git_workflow", "agent@company.com", {**payload, "branch": "main"})
            assert blocked.decision is Decision.BLOCK
            assert "push to refs/heads/main is forbidden" in blocked.reason
            assert github.file("acme", "app", "docs/a.md", branch="main") is None


@pytest.fixture
def crm_table(pg_server: PgServer) -> Iterator[str]:  # noqa: F811
    with psycopg.connect(**pg_server.connect_kwargs(), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS wf_contacts")
        conn.execute("CREATE TABLE wf_contacts (email text PRIMARY KEY, company text, phone text)")
    yield "wf_contacts"


def test_crm_sync_inserts_then_updates_and_contractor_pii_is_refused(tmp_path: Path, pg_server: PgServer,  # noqa: F811
                                                                     crm_table: str) -> None:
    with PostgresConnector(pg_server.url()) as db:
        pii = BUILTIN["contractor_cannot_write_pii"](pii_fields=["email", "phone"])
        with client(tmp_path, {"postgres": db}, [pii], [crm_sync_workflow]) as enact:
            row = {"email": "jane@acme.com", "company": "Acme"}
            first, r1 = enact.run("crm_sync_workflow", "agent@company.com", {"table": crm_table, "row": row})
            second, r2 = enact.run("crm_sync_workflow", "agent@company.com",
                                   {"table": crm_table, "row": {**row, "company": "Acme Inc"}})
            assert first.decision is second.decision is Decision.PASS
            assert [a.action for a in r1.actions_taken] == ["select_rows", "insert_row"]
            assert [a.action for a in r2.actions_taken] == ["select_rows", "update_row"]
            assert db.select_rows(crm_table, where={"email": "jane@acme.com"})[0]["company"] == "Acme Inc"

            refused, _ = enact.run("crm_sync_workflow", "contractor@company.com",
                                   {"table": crm_table, "row": {"email": "x@y.z", "phone": "1"}},
                                   actor_roles=["contractor"])
            assert refused.decision is Decision.BLOCK
            assert "contractor may not write PII" in refused.reason
            assert db.select_rows(crm_table, where={"email": "x@y.z"}) == []
