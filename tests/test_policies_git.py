"""policies/git.py: protected branches, commit size, branch naming (table-driven)."""

from __future__ import annotations

import pytest

from policies.git import max_files_per_commit, no_push_to_main, require_branch_prefix
from tests.conftest import make_context

PUSH_TO_MAIN_CASES = [
    # (action, payload, passed, reason substring)
    ("github.push_commit", {"branch": "main"}, False, "push to refs/heads/main is forbidden"),
    ("github.push_commit", {"branch": "Main"}, False, "push to refs/heads/Main is forbidden"),
    ("github.push_commit", {"branch": "MASTER"}, False, "push to refs/heads/MASTER is forbidden"),
    ("github.push_commit", {"branch": "refs/heads/main"}, False, "push to refs/heads/main is forbidden"),
    ("github.push_commit", {"branch": "refs/heads/master"}, False, "refs/heads/master"),
    ("github.create_branch", {"branch": "main", "sha": "abc"}, False, "push to refs/heads/main"),
    ("github.push_commit", {"branch": "agent/x", "force": True}, False, "force-push to refs/heads/agent/x"),
    ("github.delete_branch", {"branch": "main"}, False, "delete of refs/heads/main is forbidden"),
    ("github.delete_branch", {"branch": "refs/heads/MASTER"}, False, "delete of refs/heads/MASTER"),
    ("github.merge_pr", {"number": 7, "base": "main"}, False, "merge into refs/heads/main is forbidden"),
    ("github.merge_pr", {"number": 7, "base": "refs/heads/Master"}, False, "merge into refs/heads/Master"),
    ("github.push_commit", {"branch": "agent/x"}, True, "no protected branch touched"),
    ("github.push_commit", {"branch": "agent/x", "force": False}, True, "no protected branch touched"),
    ("github.push_commit", {"branch": "maintenance"}, True, "no protected branch touched"),
    ("github.delete_branch", {"branch": "agent/old"}, True, "no protected branch touched"),
    ("github.merge_pr", {"number": 7, "base": "agent/base"}, True, "no protected branch touched"),
    ("github.create_pr", {"head": "agent/x", "base": "main"}, True, "no protected branch touched"),
    ("github.read", {"owner": "o", "repo": "r", "path": "main"}, True, "no protected branch touched"),
    ("hubspot.create_contact", {"branch": "main"}, True, "not a git action"),
    (None, {"branch": "main"}, False, "push to refs/heads/main"),
    (None, {"base": "master"}, False, "merge into refs/heads/master"),
    # fail closed: a move or merge whose branch cannot be told fails, whatever built the payload
    ("github.push_commit", {"owner": "o", "repo": "r"}, False, "cannot tell which branch this push_commit moves"),
    ("github.push_commit", {"branch": None, "ref_id": "REF_kwDO"}, False, "branch is missing"),
    ("github.push_commit", {"branch": ""}, False, "branch is ''"),
    ("github.push_commit", {"branch": "refs/heads/"}, False, "cannot tell which branch"),
    ("github.create_branch", {"branch": ["main"]}, False, "branch is ['main']"),
    ("github.delete_branch", {"branch": 7}, False, "branch is 7"),
    ("github.merge_pr", {"number": 7}, False, "cannot tell which branch this merge writes to: base is missing"),
    ("github.merge_pr", {"number": 7, "base": None, "pull_request_id": "PR_x"}, False, "base is missing"),
    ("github.push_commit", {"branch": "heads/main"}, False, "push to refs/heads/main is forbidden"),
    ("github.push_commit", {"branch": " main "}, False, "push to refs/heads/main is forbidden"),
    ("github.push_commit", {"force": True}, False, "cannot tell which branch"),
    ("github.push_commit", {"branch": "agent/x", "force": "yes"}, False, "cannot tell whether this is a force-push"),
    ("github.push_tag", {"tag": "v1"}, True, "no protected branch touched"),
    ("github.create_pr", {"head": "agent/x"}, True, "no protected branch touched"),
    (None, {"email": "j@acme.com"}, True, "no protected branch touched"),
    (None, {"branch": 5}, False, "cannot tell which branch"),
]


@pytest.mark.parametrize(("action", "payload", "ok", "reason"), PUSH_TO_MAIN_CASES)
def test_no_push_to_main(action, payload, ok, reason):
    result = no_push_to_main(make_context(action, payload))
    assert result.passed is ok
    assert reason in result.reason
    assert result.policy == "no_push_to_main"


MAX_FILES_CASES = [
    ({"branch": "agent/x", "files": ["a", "b", "c"]}, True, "at most 3 files"),
    ({"branch": "agent/x", "files": ["a", "b", "c", "d"]}, False, "changes 4 files (max 3)"),
    ({"branch": "agent/x", "files": {"a": "1", "b": "2", "c": "3", "d": "4"}}, False, "changes 4 files"),
    ({"branch": "agent/x", "files": []}, True, "at most 3 files"),
    ({"branch": "agent/x", "commits": [{"sha": "1111111111111111", "files": ["a"]},
                                       {"sha": "2222222222222222", "files": ["a", "b", "c", "d", "e"]}]},
     False, "commit 222222222222 changes 5 files (max 3)"),
    ({"branch": "agent/x", "commits": [{"sha": "1111", "files": ["a", "b"]},
                                       {"sha": "2222", "files": ["a", "b", "c"]}]}, True, "at most 3 files"),
    # Three commits of 2 files each: 6 in total, but the limit is per commit.
    ({"branch": "agent/x", "commits": [{"sha": s, "files": ["a", "b"]} for s in ("1", "2", "3")]},
     True, "at most 3 files"),
]


@pytest.mark.parametrize(("payload", "ok", "reason"), MAX_FILES_CASES)
def test_max_files_per_commit(payload, ok, reason):
    policy = max_files_per_commit(max_files=3)
    result = policy(make_context("github.push_commit", payload))
    assert result.passed is ok
    assert reason in result.reason


def test_max_files_per_commit_ignores_other_actions():
    policy = max_files_per_commit(max_files=1)
    assert policy(make_context("github.create_pr", {"files": ["a", "b"]})).passed
    assert not policy(make_context(None, {"files": ["a", "b"]})).passed


def test_max_files_per_commit_default_is_20():
    policy = max_files_per_commit()
    assert policy(make_context("github.push_commit", {"files": [str(i) for i in range(20)]})).passed
    assert not policy(make_context("github.push_commit", {"files": [str(i) for i in range(21)]})).passed


BRANCH_PREFIX_CASES = [
    ("github.create_branch", {"branch": "agent/x"}, True, "branch agent/x starts with agent/"),
    ("github.create_branch", {"branch": "feature/x"}, False, "branch feature/x does not start with agent/"),
    ("github.create_branch", {"branch": "refs/heads/agent/x"}, True, "starts with agent/"),
    ("github.push_commit", {"branch": "refs/heads/fix-1"}, False, "branch fix-1 does not start with agent/"),
    ("github.push_commit", {"branch": "agent/x", "files": ["a"]}, True, "starts with agent/"),
    ("github.delete_branch", {"branch": "release"}, False, "branch release does not start with agent/"),
    ("github.delete_branch", {"branch": "agent/done"}, True, "starts with agent/"),
    ("github.create_pr", {"head": "owner:agent/x", "base": "main"}, True, "branch agent/x starts with agent/"),
    ("github.create_pr", {"head": "owner:feature", "base": "main"}, False, "branch feature does not start"),
    ("github.create_pr", {"head": "agent/y", "base": "main"}, True, "branch agent/y"),
    ("github.push_commit", {"files": ["a"]}, False, "the branch could not be determined"),
    ("github.create_pr", {"base": "main"}, False, "the branch could not be determined"),
    ("github.merge_pr", {"number": 3}, True, "no branch named by this action"),
    ("github.read", {"owner": "o"}, True, "no branch named by this action"),
    (None, {"email": "x@y"}, True, "no branch in the payload"),
    (None, {"branch": "wip"}, False, "branch wip does not start with agent/"),
]


@pytest.mark.parametrize(("action", "payload", "ok", "reason"), BRANCH_PREFIX_CASES)
def test_require_branch_prefix(action, payload, ok, reason):
    result = require_branch_prefix(prefix="agent/")(make_context(action, payload))
    assert result.passed is ok
    assert reason in result.reason


def test_require_branch_prefix_uses_configured_prefix():
    policy = require_branch_prefix(prefix="bot-")
    assert policy(make_context("github.create_branch", {"branch": "bot-1"})).passed
    assert not policy(make_context("github.create_branch", {"branch": "agent/1"})).passed


def test_max_files_per_commit_judges_commits_a_tag_push_carries() -> None:
    from policies.git import max_files_per_commit
    from tests.conftest import make_context

    policy = max_files_per_commit(max_files=20)
    payload = {"tag": "v1", "commits": [{"sha": "abc", "files": [f"f{i}" for i in range(25)]}]}
    result = policy(make_context("github.push_tag", payload))
    assert not result.passed
    assert "changes 25 files (max 20)" in result.reason
