"""End to end: a workflow allows one documented operation by its generated name, and nothing beside it.

A real ``enact-proxy run`` between plain ``requests`` and the sandbox upstreams (see test_http_sidecar.py).
"""

from __future__ import annotations

from collections.abc import Callable

import requests

from enact_proxy.sandbox import SandboxGitHub, SandboxHubSpot
from tests.e2e.harness import RunningSidecar
from tests.e2e.test_http_sidecar import (
    AGENT_AUTH,
    GITHUB,
    HUBSPOT,
    agent,
    assert_github_refusal,
    assert_hubspot_refusal,
    enact_headers,
    writes,
)


def test_a_workflow_allows_a_single_github_operation(sidecar_factory: Callable[..., RunningSidecar],
                                                     github: SandboxGitHub) -> None:
    requests.post(f"{github.url}/repos/acme/app/issues", json={"title": "Bug"}, timeout=5).raise_for_status()
    github.clear_received()
    sidecar = sidecar_factory(systems={"github": {"upstream": github.url, "git_upstream": github.url}},
                              workflows={"triage": ["github.read", "github.issues/create-comment"]})
    client = agent(sidecar)

    ok = client.post(f"{GITHUB}/repos/Acme/App/issues/1/comments", json={"body": "Looking into it"},
                     headers=AGENT_AUTH)
    assert ok.status_code == 201, ok.text
    decision, run_id = enact_headers(ok)
    assert decision == "PASS"
    receipt = sidecar.receipt(run_id)
    assert receipt["action"] == "github.issues/create-comment" and receipt["workflow"] == "triage"
    assert receipt["payload"] == {"owner": "acme", "repo": "app", "issue_number": "1", "body": "Looking into it"}
    (issue,) = github.issues("acme", "app")
    assert [c["body"] for c in issue["comments_list"]] == ["Looking into it"]

    # Its siblings are other actions, refused by name; so is the semantic action beside it.
    comment_id = ok.json()["id"]
    for method, path, body, action in [
        ("PATCH", f"/repos/acme/app/issues/comments/{comment_id}", {"body": "edited"}, "github.issues/update-comment"),
        ("POST", "/repos/acme/app/issues/1/labels", {"labels": ["bug"]}, "github.issues/add-labels"),
        ("POST", "/repos/acme/app/issues", {"title": "Another"}, "github.create_issue"),
        ("POST", "/repos/acme/app/issues/1/comments/extra", {"body": "x"}, "github.unknown"),
    ]:
        refused = client.request(method, f"{GITHUB}{path}", json=body, headers=AGENT_AUTH)
        assert_github_refusal(refused, action)
        blocked = sidecar.receipt(refused.headers["X-Enact-Receipt"])
        assert blocked["action"] == action and blocked["decision"] == "BLOCK"
    assert [(r.method, r.path) for r in writes(github)] == [("POST", "/repos/Acme/App/issues/1/comments")]


def test_a_workflow_allows_a_single_hubspot_operation(sidecar_factory: Callable[..., RunningSidecar],
                                                      hubspot: SandboxHubSpot) -> None:
    created = requests.post(f"{hubspot.url}/crm/v3/objects/deals", json={"properties": {"dealname": "D"}},
                            headers=AGENT_AUTH, timeout=5)
    created.raise_for_status()
    deal_id = created.json()["id"]
    contact_id = hubspot.add_contact("keep@acme.com")
    hubspot.clear_received()
    sidecar = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}},
                              workflows={"cleanup": ["hubspot.delete-/crm/objects/deals/*"]})
    client = agent(sidecar)

    # The dated form and the object type id are the same operation, under the same name.
    ok = client.delete(f"{HUBSPOT}/crm/objects/2026-03/0-3/{deal_id}", headers=AGENT_AUTH)
    assert ok.status_code == 204, ok.text
    receipt = sidecar.receipt(ok.headers["X-Enact-Receipt"])
    assert receipt["action"] == "hubspot.delete-/crm/objects/deals/*" and receipt["decision"] == "PASS"
    assert receipt["payload"] == {"dealId": deal_id}

    refused = client.delete(f"{HUBSPOT}/crm/v3/objects/contacts/{contact_id}", headers=AGENT_AUTH)
    assert_hubspot_refusal(refused, "hubspot.delete-/crm/objects/contacts/*")
    assert [(r.method, r.path) for r in writes(hubspot)] == [("DELETE", f"/crm/objects/2026-03/0-3/{deal_id}")]
    assert hubspot.find_contact("keep@acme.com") is not None
