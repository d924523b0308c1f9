import base64
import json

import pytest
import requests
import responses
from responses import matchers

from connectors.github import GitHubConnector, GitHubError

BASE = "https://github.test/api/v3"
REPO = f"{BASE}/repos/octo/demo"


@pytest.fixture
def github():
    return GitHubConnector(token="ghp_secret", base_url=BASE + "/", timeout=2)


def _sent(index: int = -1) -> dict:
    return json.loads(responses.calls[index].request.body)


@responses.activate
def test_get_default_branch(github):
    responses.get(REPO, json={"default_branch": "trunk"},
                  match=[matchers.header_matcher({"authorization": "Bearer ghp_secret"})])
    assert github.get_default_branch("octo", "demo") == "trunk"


@responses.activate
def test_get_default_branch_fails_closed(github):
    responses.get(REPO, json={"name": "demo"})
    with pytest.raises(GitHubError, match="default_branch"):
        github.get_default_branch("octo", "demo")


@responses.activate
def test_errors_carry_status_not_token(github):
    responses.get(REPO, status=404, json={"message": "Not Found"})
    with pytest.raises(GitHubError) as caught:
        github.get_repo("octo", "demo")
    assert caught.value.status == 404
    assert "Not Found" in str(caught.value)
    assert "ghp_secret" not in str(caught.value)


@responses.activate
def test_timeout_is_an_error(github):
    responses.get(REPO, body=requests.ConnectTimeout("slow"))
    with pytest.raises(GitHubError, match="timed out"):
        github.get_repo("octo", "demo")


@responses.activate
def test_get_repo_by_id(github):
    responses.get(f"{BASE}/repositories/42", json={"full_name": "Octo/Demo"})
    assert github.get_repo_by_id("42") == ("Octo", "Demo")


@responses.activate
def test_create_branch_from_default(github):
    responses.get(REPO, json={"default_branch": "main"})
    responses.get(f"{REPO}/git/ref/heads/main", json={"object": {"sha": "a" * 40}})
    responses.post(f"{REPO}/git/refs", json={"ref": "refs/heads/agent/x"}, status=201)
    github.create_branch("octo", "demo", "agent/x")
    assert _sent() == {"ref": "refs/heads/agent/x", "sha": "a" * 40}


@responses.activate
def test_create_branch_with_sha(github):
    responses.post(f"{REPO}/git/refs", json={}, status=201)
    github.create_branch("octo", "demo", "agent/x", sha="b" * 40)
    assert len(responses.calls) == 1
    assert _sent()["sha"] == "b" * 40


@responses.activate
def test_push_commit_new_existing_and_deleted_files(github):
    responses.get(f"{REPO}/contents/docs/new.md", status=404, json={"message": "Not Found"},
                  match=[matchers.query_param_matcher({"ref": "agent/x"})])
    responses.put(f"{REPO}/contents/docs/new.md", json={"commit": {"sha": "c1"}}, status=201)
    responses.get(f"{REPO}/contents/README.md", json={"sha": "old1"})
    responses.put(f"{REPO}/contents/README.md", json={"commit": {"sha": "c2"}})
    responses.get(f"{REPO}/contents/gone.txt", json={"sha": "old2"})
    responses.delete(f"{REPO}/contents/gone.txt", json={"commit": {"sha": "c3"}})
    result = github.push_commit("octo", "demo", "agent/x",
                                {"docs/new.md": "hello", "README.md": b"bytes", "gone.txt": None}, "msg")
    assert result == {"branch": "agent/x", "files": ["docs/new.md", "README.md", "gone.txt"],
                      "commits": ["c1", "c2", "c3"]}
    put_new = json.loads(responses.calls[1].request.body)
    assert put_new == {"message": "msg", "branch": "agent/x", "content": base64.b64encode(b"hello").decode()}
    put_existing = json.loads(responses.calls[3].request.body)
    assert put_existing["sha"] == "old1"
    deleted = json.loads(responses.calls[5].request.body)
    assert deleted == {"message": "msg", "branch": "agent/x", "sha": "old2"}


@responses.activate
def test_push_commit_delete_missing_file_fails(github):
    responses.get(f"{REPO}/contents/nope", status=404, json={})
    with pytest.raises(GitHubError, match="does not exist"):
        github.push_commit("octo", "demo", "agent/x", {"nope": None}, "msg")


@responses.activate
def test_delete_branch(github):
    responses.delete(f"{REPO}/git/refs/heads/agent/x", status=204)
    assert github.delete_branch("octo", "demo", "agent/x") == {}


@responses.activate
def test_create_pr(github):
    responses.post(f"{REPO}/pulls", json={"number": 5}, status=201)
    assert github.create_pr("octo", "demo", "agent/x", "main", "Title")["number"] == 5
    assert _sent() == {"head": "agent/x", "base": "main", "title": "Title", "body": ""}


@responses.activate
def test_merge_pr(github):
    responses.put(f"{REPO}/pulls/5/merge", json={"merged": True})
    assert github.merge_pr("octo", "demo", 5, merge_method="squash") == {"merged": True}
    assert _sent() == {"merge_method": "squash"}


@responses.activate
def test_create_issue(github):
    responses.post(f"{REPO}/issues", json={"number": 9}, status=201)
    github.create_issue("octo", "demo", "Bug", "details")
    assert _sent() == {"title": "Bug", "body": "details"}


@responses.activate
def test_get_pull(github):
    responses.get(f"{REPO}/pulls/5", json={"base": {"ref": "main"}})
    assert github.get_pull("octo", "demo", 5)["base"]["ref"] == "main"


def test_repr_hides_token(github):
    assert "ghp_secret" not in repr(github)
