"""Turning the ref updates of a push into the actions the engine judges (SPEC §4)."""

from __future__ import annotations

from typing import Any

from enact_proxy.gitwire.packs import PushAnalysis, RefAnalysis
from enact_proxy.gitwire.receive_pack import ReceivePackRequest
from enact_proxy.models import ActionRequest, RequestSummary

SYSTEM = "github"
_HEADS = "refs/heads/"
_TAGS = "refs/tags/"


def _commits_payload(item: RefAnalysis) -> list[dict[str, Any]]:
    return [
        {"sha": c.sha, "files": list(c.files), "renames": [list(pair) for pair in c.renames]}
        for c in item.new_commits
    ]


def _ref_actions(item: RefAnalysis, owner: str, repo: str) -> list[tuple[str, dict[str, Any]]]:
    cmd = item.command
    base: dict[str, Any] = {"owner": owner, "repo": repo}
    if cmd.ref.startswith(_HEADS):
        branch = cmd.ref[len(_HEADS) :]
        if cmd.is_delete:
            return [("delete_branch", {**base, "branch": branch})]
        push = {**base, "branch": branch, "files": item.files, "force": item.force,
                "commits": _commits_payload(item)}
        if cmd.is_create:
            created = ("create_branch", {**base, "branch": branch, "sha": cmd.new})
            return [created, ("push_commit", push)] if item.new_commits else [created]
        return [("push_commit", push)]
    if cmd.ref.startswith(_TAGS):
        payload = {**base, "tag": cmd.ref[len(_TAGS) :]}
        if not cmd.is_delete:
            # A tag can carry commits no branch has yet: they are judged like any pushed commit.
            payload.update(sha=cmd.new, files=item.files, commits=_commits_payload(item))
        return [("push_tag", payload)]
    return [("unknown", {**base, "ref": cmd.ref})]


def ref_actions_for_push(
    req: ReceivePackRequest,
    analysis: PushAnalysis,
    owner: str,
    repo: str,
    request: RequestSummary,
) -> list[tuple[str, ActionRequest]]:
    """(ref, action) pairs, in command order; one ref may yield two actions (create + push)."""
    by_ref = {item.command.ref: item for item in analysis.refs}
    actions: list[tuple[str, ActionRequest]] = []
    for cmd in req.commands:
        item = by_ref.get(cmd.ref)
        if item is None or item.command != cmd:
            raise ValueError(f"analysis does not cover {cmd.ref}")
        for name, payload in _ref_actions(item, owner, repo):
            actions.append(
                (cmd.ref, ActionRequest(system=SYSTEM, action=name, payload=payload, request=request))
            )
    return actions


def actions_for_push(
    req: ReceivePackRequest,
    analysis: PushAnalysis,
    owner: str,
    repo: str,
    request: RequestSummary,
) -> list[ActionRequest]:
    """The actions of a push, in command order (see ``ref_actions_for_push`` for their refs)."""
    return [action for _, action in ref_actions_for_push(req, analysis, owner, repo, request)]
