"""Git policies: protected branches, commit size, branch naming."""

from __future__ import annotations

from typing import Any

from enact_proxy.models import PolicyResult, WorkflowContext
from enact_proxy.policy import factory, failed, passed, pure
from policies._util import branch_name

PROTECTED = frozenset({"main", "master"})
_MOVES = ("push_commit", "create_branch", "delete_branch")


@pure
def no_push_to_main(ctx: WorkflowContext) -> PolicyResult:
    """No push, branch creation, deletion or merge onto main/master (any case); no force-push anywhere.

    Fails closed: a branch move whose branch, or a merge whose base, it cannot tell (missing, empty, not
    a string) fails, whatever the recogniser that built the payload; so does a force flag it cannot read.
    A library-mode run (no action) is judged on what its payload names."""
    name = "no_push_to_main"
    payload = ctx.payload
    if ctx.system not in (None, "github"):
        return passed(name, "not a git action")
    library = ctx.action is None
    if library or ctx.action in _MOVES:
        branch = _protected_name(payload.get("branch"))
        if branch is None and not (library and payload.get("branch") is None):
            return failed(name, f"cannot tell which branch this {ctx.action or 'action'} moves: "
                                f"branch is {_shown(payload.get('branch'))}")
        if branch is not None and branch.casefold() in PROTECTED:
            verb = "delete of" if ctx.action == "delete_branch" else "push to"
            return failed(name, f"{verb} refs/heads/{branch} is forbidden")
        force = payload.get("force")
        if force not in (None, False):
            where = f"refs/heads/{branch}" if branch is not None else "a branch"
            return failed(name, f"force-push to {where} is forbidden" if force is True
                          else f"cannot tell whether this is a force-push: force is {_shown(force)}")
    if library or ctx.action == "merge_pr":
        base = _protected_name(payload.get("base"))
        if base is None and not (library and payload.get("base") is None):
            return failed(name, f"cannot tell which branch this merge writes to: base is {_shown(payload.get('base'))}")
        if base is not None and base.casefold() in PROTECTED:
            return failed(name, f"merge into refs/heads/{base} is forbidden")
    return passed(name, "no protected branch touched")


def _protected_name(ref: object) -> str | None:
    """The branch a ref names, as compared against the protected names; None when it cannot be told.

    ``heads/main`` (the git data API's spelling) and ``refs/heads/main`` both name ``main``."""
    if not isinstance(ref, str):
        return None
    branch = branch_name(ref.strip())
    if branch is not None and branch.startswith("heads/"):
        branch = branch[len("heads/"):]
    return branch or None


def _shown(value: object) -> str:
    return "missing" if value is None else repr(value)[:80]


def _commits(payload: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    commits = payload.get("commits")
    if isinstance(commits, list) and commits:
        return [(str(c.get("sha", "?"))[:12], list(c.get("files") or [])) for c in commits]
    if "files" in payload:
        return [("", list(payload.get("files") or []))]
    return []


@factory
def max_files_per_commit(max_files: int = 20):  # type: ignore[no-untyped-def]
    """Every pushed commit changes at most ``max_files`` files."""

    @pure
    def max_files_per_commit(ctx: WorkflowContext) -> PolicyResult:
        name = "max_files_per_commit"
        if ctx.action not in (None, "push_commit", "push_tag"):
            return passed(name, "not a commit push")
        for sha, files in _commits(ctx.payload):
            if len(files) > max_files:
                which = f"commit {sha}" if sha else "commit"
                return failed(name, f"{which} changes {len(files)} files (max {max_files})")
        return passed(name, f"every commit changes at most {max_files} files")

    return max_files_per_commit


@factory
def require_branch_prefix(prefix: str = "agent/"):  # type: ignore[no-untyped-def]
    """Every branch the agent creates, pushes to, deletes or opens a pull request from starts with ``prefix``."""

    @pure
    def require_branch_prefix(ctx: WorkflowContext) -> PolicyResult:
        name = "require_branch_prefix"
        if ctx.action in (None, *_MOVES):
            branch = branch_name(ctx.payload.get("branch"))
        elif ctx.action == "create_pr":
            branch = branch_name(ctx.payload.get("head"))
        else:
            return passed(name, "no branch named by this action")
        if branch is None:
            if ctx.action is None:
                return passed(name, "no branch in the payload")
            return failed(name, "the branch could not be determined")
        if not branch.startswith(prefix):
            return failed(name, f"branch {branch} does not start with {prefix}")
        return passed(name, f"branch {branch} starts with {prefix}")

    return require_branch_prefix
