"""The sandbox GitHub API, driven by plain requests and PyGithub."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from github import Auth, Github, GithubException

from enact_proxy.sandbox.github import SandboxGitHub

TOKEN = "ghp_sandbox"


@pytest.fixture
def github() -> Iterator[SandboxGitHub]:
    with SandboxGitHub(token=TOKEN) as server:
        server.add_repo("acme", "widgets")
        yield server


@pytest.fixture
def api(github: SandboxGitHub) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers["Authorization"] = f"token {TOKEN}"
        s.base_url = f"{github.url}/repos/acme/widgets"  # type: ignore[attr-defined]
        yield s


@pytest.fixture
def gh(github: SandboxGitHub) -> Iterator[Github]:
    client = Github(
        base_url=github.url,
        auth=Auth.Token(TOKEN),
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    yield client
    client.close()


def test_pygithub_refs_pull_issue_and_contents(github, gh):
    repo = gh.get_repo("acme/widgets")
    assert repo.default_branch == "main"
    main_sha = github.branch_sha("acme", "widgets", "main")

    ref = repo.create_git_ref("refs/heads/agent/feature", main_sha)
    assert ref.object.sha == main_sha
    assert github.refs("acme", "widgets")["refs/heads/agent/feature"] == main_sha

    readme = repo.get_contents("README.md", ref="agent/feature")
    assert readme.decoded_content == b"# widgets\n"
    result = repo.update_file("README.md", "Edit", "new text\n", readme.sha, branch="agent/feature")
    new_sha = result["commit"].sha
    assert github.branch_sha("acme", "widgets", "agent/feature") == new_sha
    assert github.branch_sha("acme", "widgets", "main") == main_sha
    assert github.file("acme", "widgets", "README.md", "agent/feature") == b"new text\n"

    created = repo.create_file("docs/guide.md", "Add guide", "guide")  # no branch: the default branch
    assert github.branch_sha("acme", "widgets", "main") == created["commit"].sha

    pull = repo.create_pull(base="main", head="agent/feature", title="Feature")
    assert pull.number == 1 and pull.head.sha == new_sha
    issue = repo.create_issue(title="Bug", body="It broke")
    assert issue.number == 2
    assert [i["title"] for i in github.issues("acme", "widgets")] == ["Bug"]

    status = pull.merge()
    assert status.merged
    assert github.file("acme", "widgets", "README.md", "main") == b"new text\n"
    assert gh.get_user().login == "enact-sandbox"


def test_pygithub_sees_github_errors(github, gh):
    repo = gh.get_repo("ACME/Widgets")  # owner and repo are case-insensitive
    main_sha = github.branch_sha("acme", "widgets", "main")
    with pytest.raises(GithubException) as exists:
        repo.create_git_ref("refs/heads/main", main_sha)
    assert exists.value.status == 422
    assert exists.value.data["message"] == "Reference already exists"
    assert "documentation_url" in exists.value.data
    with pytest.raises(GithubException) as missing:
        gh.get_repo("acme/nope")
    assert missing.value.status == 404 and missing.value.data["message"] == "Not Found"


def test_token_is_required_when_configured(github):
    anonymous = requests.get(f"{github.url}/repos/acme/widgets")
    wrong = requests.get(f"{github.url}/repos/acme/widgets", headers={"Authorization": "Bearer nope"})
    bearer = requests.get(f"{github.url}/repos/acme/widgets", headers={"Authorization": f"Bearer {TOKEN}"})
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.json()["message"] == "Bad credentials"
    assert bearer.status_code == 200


def test_ref_moves_fast_forward_force_and_delete(github, api):
    main_sha = github.branch_sha("acme", "widgets", "main")
    assert api.post(f"{api.base_url}/git/refs", json={"ref": "refs/heads/dev", "sha": main_sha}).status_code == 201
    bad = api.post(f"{api.base_url}/git/refs", json={"ref": "refs/heads/x", "sha": "f" * 40})
    assert bad.status_code == 422 and bad.json()["message"] == "Object does not exist"

    put = api.put(f"{api.base_url}/contents/a.txt", json={"message": "a", "content": "YQ==", "branch": "dev"})
    assert put.status_code == 201
    dev_sha = put.json()["commit"]["sha"]
    assert put.json()["commit"]["parents"][0]["sha"] == main_sha

    backwards = api.patch(f"{api.base_url}/git/refs/heads/dev", json={"sha": main_sha})
    assert backwards.status_code == 422 and backwards.json()["message"] == "Update is not a fast forward"
    forced = api.patch(f"{api.base_url}/git/refs/heads/dev", json={"sha": main_sha, "force": True})
    assert forced.status_code == 200 and forced.json()["object"]["sha"] == main_sha
    forward = api.patch(f"{api.base_url}/git/refs/heads%2Fdev", json={"sha": dev_sha})  # Octokit-style %2F
    assert forward.status_code == 200
    assert api.get(f"{api.base_url}/git/ref/heads/dev").json()["object"]["sha"] == dev_sha

    assert api.delete(f"{api.base_url}/git/refs/heads/dev").status_code == 204
    assert "refs/heads/dev" not in github.refs("acme", "widgets")
    gone = api.delete(f"{api.base_url}/git/refs/heads/dev")
    assert gone.status_code == 422 and gone.json()["message"] == "Reference does not exist"


def test_contents_require_the_current_blob_sha(github, api):
    stale = api.put(f"{api.base_url}/contents/README.md", json={"message": "m", "content": "eA=="})
    assert stale.status_code == 422
    wrong = api.put(f"{api.base_url}/contents/README.md", json={"message": "m", "content": "eA==", "sha": "0" * 40})
    assert wrong.status_code == 409
    assert github.file("acme", "widgets", "README.md") == b"# widgets\n"


def test_merges_api_and_branch_listing(github, api):
    main_sha = github.branch_sha("acme", "widgets", "main")
    api.post(f"{api.base_url}/git/refs", json={"ref": "refs/heads/topic", "sha": main_sha})
    api.put(f"{api.base_url}/contents/t.txt", json={"message": "t", "content": "dA==", "branch": "topic"})
    merged = api.post(f"{api.base_url}/merges", json={"base": "main", "head": "topic"})
    assert merged.status_code == 201
    assert len(merged.json()["parents"]) == 2
    assert github.file("acme", "widgets", "t.txt") == b"t"
    again = api.post(f"{api.base_url}/merges", json={"base": "main", "head": "topic"})
    assert again.status_code == 204
    missing = api.post(f"{api.base_url}/merges", json={"base": "main", "head": "nope"})
    assert missing.status_code == 404
    names = [b["name"] for b in api.get(f"{api.base_url}/branches").json()]
    assert names == ["main", "topic"]


def test_pull_request_validation_and_double_merge(github, api):
    bad = api.post(f"{api.base_url}/pulls", json={"title": "x", "head": "ghost", "base": "main"})
    assert bad.status_code == 422 and bad.json()["message"] == "Validation Failed"
    assert bad.json()["errors"][0]["field"] == "head"
    main_sha = github.branch_sha("acme", "widgets", "main")
    api.post(f"{api.base_url}/git/refs", json={"ref": "refs/heads/f", "sha": main_sha})
    number = api.post(f"{api.base_url}/pulls", json={"title": "x", "head": "f", "base": "main"}).json()["number"]
    assert api.put(f"{api.base_url}/pulls/{number}/merge").status_code == 200
    again = api.put(f"{api.base_url}/pulls/{number}/merge", json={})
    assert again.status_code == 405


def test_api_v3_prefix_and_response_urls_follow_the_host_header(github, api):
    response = api.get(f"{github.url}/api/v3/repos/acme/widgets", headers={"Host": "api.github.com"})
    assert response.status_code == 200
    assert response.json()["url"] == "http://api.github.com/api/v3/repos/acme/widgets"


def test_graphql_viewer_repository_and_create_ref(github, api):
    url = f"{github.url}/graphql"
    viewer = api.post(url, json={"query": "{ viewer { login } }"})
    assert viewer.json() == {"data": {"viewer": {"login": "enact-sandbox"}}}
    repo = api.post(
        url,
        json={
            "query": 'query { repository(owner: "acme", name: "widgets") '
            "{ id defaultBranchRef { name target { oid } } } }"
        },
    ).json()["data"]
    oid = repo["repository"]["defaultBranchRef"]["target"]["oid"]
    assert oid == github.branch_sha("acme", "widgets", "main")
    mutation = "mutation($input: CreateRefInput!) { a: createRef(input: $input) { ref { name prefix } } }"
    variables = {"input": {"repositoryId": repo["repository"]["id"], "name": "refs/heads/gql", "oid": oid}}
    created = api.post(url, json={"query": mutation, "variables": variables}).json()
    assert created["data"]["a"]["ref"] == {"name": "gql", "prefix": "refs/heads/"}
    assert github.refs("acme", "widgets")["refs/heads/gql"] == oid
    duplicate = api.post(url, json={"query": mutation, "variables": variables})
    assert duplicate.status_code == 200
    assert duplicate.json()["errors"][0]["type"] == "UNPROCESSABLE"


def test_received_log_records_what_arrived(github, api):
    github.clear_received()
    api.post(f"{api.base_url}/issues", json={"title": "Logged"})
    [seen] = github.received
    assert (seen.method, seen.path) == ("POST", "/repos/acme/widgets/issues")
    assert seen.headers["Authorization"] == f"token {TOKEN}"
    assert b"Logged" in seen.body
