"""End to end with the clients agents really use, configured only the way their docs say:
PyGithub and requests through ``HTTPS_PROXY``/``REQUESTS_CA_BUNDLE``, httpx through ``SSL_CERT_FILE``,
the official HubSpot SDK through ``proxy=``/``ssl_ca_cert=``, curl through ``CURL_CA_BUNDLE``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator

import httpx
import pytest

from enact_proxy.sandbox import SandboxGitHub, SandboxHubSpot
from tests.e2e.harness import RunningSidecar

GITHUB = "https://api.github.com"


@pytest.fixture
def public_github() -> Iterator[SandboxGitHub]:
    """A GitHub sandbox whose answers carry the public API URL, as PyGithub follows them."""
    with SandboxGitHub(public_url=GITHUB) as server:
        server.add_repo("acme", "app")
        yield server


@pytest.fixture
def both(sidecar_factory: Callable[..., RunningSidecar], hubspot: SandboxHubSpot,
         public_github: SandboxGitHub) -> RunningSidecar:
    return sidecar_factory(systems={"hubspot": {"upstream": hubspot.url},
                                    "github": {"upstream": public_github.url, "git_upstream": public_github.url}})


@pytest.fixture
def agent_env(both: RunningSidecar, monkeypatch: pytest.MonkeyPatch) -> RunningSidecar:
    """The agent's environment, set only after the sidecar process has started."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    for name, value in both.agent_env().items():
        if name.lower().endswith("_proxy") or name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
            monkeypatch.setenv(name, value)
    return both


def test_pygithub_read_branch_and_refused_push_to_main(agent_env: RunningSidecar,
                                                        public_github: SandboxGitHub) -> None:
    from github import Auth, Github, GithubException

    gh = Github(base_url=GITHUB, auth=Auth.Token("agent-token"), seconds_between_requests=None,
                seconds_between_writes=None)
    repo = gh.get_repo("acme/app")
    main_sha = repo.get_branch("main").commit.sha
    ref = repo.create_git_ref("refs/heads/agent/feature", main_sha)
    assert ref.ref == "refs/heads/agent/feature"
    assert public_github.branch_sha("acme", "app", "agent/feature") == main_sha

    main = repo.get_git_ref("heads/main")
    with pytest.raises(GithubException) as refused:
        main.edit(main_sha, force=True)
    assert refused.value.status == 403
    assert refused.value.data["message"].startswith("Blocked by Enact:")
    assert "no_push_to_main" in refused.value.data["message"]
    assert not [r for r in public_github.received if r.method == "PATCH"]
    blocks = [r for r in agent_env.receipts() if r["decision"] == "BLOCK"]
    assert [r["action"] for r in blocks] == ["github.push_commit"]  # one refusal: PyGithub did not retry
    assert blocks[0]["payload"]["force"] is True
    passed = [r for r in agent_env.receipts() if r["action"] == "github.create_branch"]
    assert passed and passed[0]["actions_taken"][0]["success"] is True


def test_hubspot_sdk_create_then_duplicate_raises_forbidden(both: RunningSidecar, hubspot: SandboxHubSpot) -> None:
    from hubspot import HubSpot
    from hubspot.crm.contacts import SimplePublicObjectInputForCreate
    from hubspot.crm.contacts.exceptions import ForbiddenException

    client = HubSpot(access_token="agent-token", proxy=both.proxy_url, ssl_ca_cert=str(both.ca))
    created = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "sdk@acme.com", "firstname": "Sam"}))
    stored = hubspot.find_contact("sdk@acme.com")
    assert created.id and stored is not None and stored["id"] == created.id
    with pytest.raises(ForbiddenException) as refused:
        client.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "SDK@acme.com "}))
    assert refused.value.status == 403
    body = json.loads(refused.value.body)
    assert body["message"].startswith("Blocked by Enact:") and "no_duplicate_contacts" in body["message"]
    assert refused.value.headers["X-Enact-Decision"] == "BLOCK"
    creates = [r for r in hubspot.received if r.method == "POST" and r.path == "/crm/v3/objects/contacts"]
    assert len(creates) == 1
    receipts = [r for r in both.receipts() if r["action"] == "hubspot.create_contact"]
    assert [r["decision"] for r in receipts] == ["PASS", "BLOCK"]  # no retry of the refusal
    assert receipts[0]["actions_taken"][0]["output"]["id"] == created.id


def test_httpx_with_ssl_cert_file(agent_env: RunningSidecar, public_github: SandboxGitHub) -> None:
    with httpx.Client(trust_env=True) as client:  # reads HTTPS_PROXY and SSL_CERT_FILE
        read = client.get(f"{GITHUB}/repos/acme/app", headers={"authorization": "token agent"})
        assert read.status_code == 200 and read.json()["full_name"] == "acme/app"
        assert read.headers["x-enact-decision"] == "PASS"
        refused = client.post(f"{GITHUB}/graphql", headers={"authorization": "token agent"}, json={
            "query": 'mutation { deleteRef(input: {refId: "REF_x"}) { clientMutationId } }'})
    assert refused.status_code == 200 and refused.headers["x-enact-decision"] == "BLOCK"
    assert refused.json()["errors"][0]["type"] == "FORBIDDEN"
    assert not [r for r in public_github.received if b"deleteRef" in r.body]


def test_curl_with_curl_ca_bundle(agent_env: RunningSidecar, hubspot: SandboxHubSpot) -> None:
    hubspot.add_contact("curl@acme.com")
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", "-X", "POST",
         "-H", "authorization: Bearer agent", "-H", "content-type: application/json",
         "--data", '{"properties": {"email": "Curl@acme.com"}}', "https://api.hubapi.com/crm/v3/objects/contacts"],
        capture_output=True, text=True, timeout=30, env=dict(os.environ))
    body, _, status = result.stdout.rpartition("\n")
    assert status == "403", result.stdout + result.stderr
    assert json.loads(body)["message"].startswith("Blocked by Enact: no_duplicate_contacts")
    assert not [r for r in hubspot.received if r.method == "POST" and not r.path.endswith("/search")]
