"""An agent proposes a change: branch, commit the files, open a pull request."""

from __future__ import annotations

from collections.abc import Iterator

from enact_proxy.models import ActionResult, WorkflowContext


def agent_git_workflow(context: WorkflowContext) -> Iterator[ActionResult]:
    github = context.systems["github"]
    p = context.payload
    owner, repo, branch = p["owner"], p["repo"], p["branch"]
    base = p.get("base") or github.get_default_branch(owner, repo)

    ref = github.create_branch(owner, repo, branch)
    yield ActionResult(action="create_branch", system="github", success=True,
                       output={"ref": ref.get("ref"), "sha": (ref.get("object") or {}).get("sha")})

    commit = github.push_commit(owner, repo, branch, files=p.get("files") or {},
                                message=p.get("message", "Agent change"))
    yield ActionResult(action="push_commit", system="github", success=True, output={"result": commit})

    pr = github.create_pr(owner, repo, head=branch, base=base, title=p.get("title", branch))
    yield ActionResult(action="create_pr", system="github", success=True,
                       output={"number": pr.get("number"), "url": pr.get("html_url")})
