"""GitHub GraphQL documents -> the actions they perform. Pure: no I/O.

Every operation in the document is judged (not only the one ``operationName`` selects): judging a
superset can only refuse more. Fragment spreads and inline fragments at the top of a mutation are
followed, ``@skip``/``@include`` are ignored for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    parse,
    value_from_ast_untyped,
)

from connectors.base import Refusal

Found = tuple[str, dict[str, Any]]

ZERO_OID = "0" * 40
MAX_TOKENS = 50_000


def analyse(query: Any, variables: Any) -> list[Found]:
    """The actions of a GraphQL request body's ``query`` and ``variables``."""
    if not isinstance(query, str) or not query.strip():
        raise Refusal("GraphQL request has no query document")
    if variables is None:
        variables = {}
    if not isinstance(variables, dict):
        raise Refusal("GraphQL variables is not a JSON object")
    try:
        document = parse(query, no_location=True, max_tokens=MAX_TOKENS)
    except GraphQLError as exc:
        raise Refusal(f"GraphQL document could not be parsed: {exc.message}") from exc

    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if not operations:
        raise Refusal("GraphQL document has no operation")

    found: list[Found] = []
    for operation in operations:
        if operation.operation is OperationType.QUERY:
            found.append(("read", {"owner": None, "repo": None, "path": "/graphql"}))
        elif operation.operation is OperationType.MUTATION:
            # A variable the request leaves out takes its declared default, as GitHub would use it.
            effective = {
                d.variable.name.value: value_from_ast_untyped(d.default_value)
                for d in operation.variable_definitions or ()
                if d.default_value is not None
            }
            effective.update(variables)
            for field in _top_fields(operation.selection_set, fragments, set()):
                found.extend(_mutation(field, effective))
        else:
            found.append(("unknown", {"graphql_operation": operation.operation.value}))
    return found


def _top_fields(
    selection_set: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], seen: set[str]
) -> list[FieldNode]:
    fields: list[FieldNode] = []
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            fields.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            fields.extend(_top_fields(selection.selection_set, fragments, seen))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None:
                raise Refusal(f"GraphQL document spreads an undefined fragment {name}")
            if name in seen:
                raise Refusal(f"GraphQL fragment {name} spreads itself")
            fields.extend(_top_fields(fragment.selection_set, fragments, seen | {name}))
    return fields


def _mutation(field: FieldNode, variables: Mapping[str, Any]) -> list[Found]:
    name = field.name.value
    if name == "__typename":
        return []
    arguments = {
        arg.name.value: _defined(value_from_ast_untyped(arg.value, dict(variables))) for arg in field.arguments
    }
    raw_input = arguments.get("input")
    data: dict[str, Any] = raw_input if isinstance(raw_input, dict) else {}
    handler = _HANDLERS.get(name)
    if handler is None:
        return [("unknown", {"graphql_mutation": name})]
    return handler(data)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _defined(value: Any) -> Any:
    """A variable the request did not supply reads as None (GitHub would reject or default it)."""
    if value is Undefined:
        return None
    if isinstance(value, dict):
        return {k: _defined(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_defined(v) for v in value]
    return value


def _ref_action(ref: str | None, sha: Any, before: Any = None, force: bool = False, **extra: Any) -> Found:
    name = ref
    deleting = sha == ZERO_OID
    creating = before == ZERO_OID
    if name and name.startswith("refs/tags/"):
        return ("push_tag", {"owner": None, "repo": None, "tag": name[len("refs/tags/"):], "sha": sha,
                             "force": force, "delete": deleting, **extra})
    if name is not None and not name.startswith("refs/heads/"):
        return ("unknown", {"ref": name, **extra})
    branch = name[len("refs/heads/"):] if name else None
    if deleting:
        return ("delete_branch", {"owner": None, "repo": None, "branch": branch, **extra})
    if creating:
        return ("create_branch", {"owner": None, "repo": None, "branch": branch, "sha": sha, **extra})
    return ("push_commit", {"owner": None, "repo": None, "branch": branch, "files": None, "force": force,
                            "sha": sha, **extra})


def _named_ref_action(ref: Any, sha: Any, before: Any = None, force: bool = False, **extra: Any) -> Found:
    if not isinstance(ref, str):
        return ("unknown", {"ref": ref, **extra})
    return _ref_action(ref, sha, before=before, force=force, **extra)


def _create_ref(data: dict[str, Any]) -> list[Found]:
    return [_named_ref_action(data.get("name"), data.get("oid"), before=ZERO_OID,
                              repository_id=data.get("repositoryId"))]


def _update_ref(data: dict[str, Any]) -> list[Found]:
    # A ref id names the ref opaquely: the branch is not known from the request (None).
    return [_ref_action(None, data.get("oid"), force=bool(data.get("force")), ref_id=data.get("refId"))]


def _update_refs(data: dict[str, Any]) -> list[Found]:
    updates = data.get("refUpdates")
    if not isinstance(updates, list) or not all(isinstance(u, dict) for u in updates):
        raise Refusal("updateRefs has no refUpdates list")
    return [
        _named_ref_action(u.get("name"), u.get("afterOid"), before=u.get("beforeOid"),
                          force=bool(u.get("force")), repository_id=data.get("repositoryId"))
        for u in updates
    ]


def _delete_ref(data: dict[str, Any]) -> list[Found]:
    return [("delete_branch", {"owner": None, "repo": None, "branch": None, "ref_id": data.get("refId")})]


def _create_commit_on_branch(data: dict[str, Any]) -> list[Found]:
    branch_input = _dict(data.get("branch"))
    owner, repo = None, None
    name_with_owner = branch_input.get("repositoryNameWithOwner")
    if isinstance(name_with_owner, str) and "/" in name_with_owner:
        owner, _, repo = name_with_owner.lower().partition("/")
    branch = branch_input.get("branchName")
    if isinstance(branch, str) and branch.startswith("refs/heads/"):
        branch = branch[len("refs/heads/"):]
    changes = _dict(data.get("fileChanges"))
    files: list[str] = []
    for key in ("additions", "deletions"):
        entries = changes.get(key) or []
        if not isinstance(entries, list):
            raise Refusal(f"createCommitOnBranch fileChanges.{key} is not a list")
        files.extend(str(e.get("path")) for e in entries if isinstance(e, dict))
    payload: dict[str, Any] = {"owner": owner, "repo": repo, "branch": branch, "files": files, "force": False,
                               "sha": data.get("expectedHeadOid")}
    if branch_input.get("id") is not None:
        payload["ref_id"] = branch_input.get("id")
    return [("push_commit", payload)]


def _merge_pull_request(data: dict[str, Any]) -> list[Found]:
    return [("merge_pr", {"owner": None, "repo": None, "number": None, "base": None,
                          "pull_request_id": data.get("pullRequestId")})]


def _merge_branch(data: dict[str, Any]) -> list[Found]:
    return [("push_commit", {"owner": None, "repo": None, "branch": data.get("base"), "files": None,
                             "force": False, "head": data.get("head"), "repository_id": data.get("repositoryId")})]


def _update_pull_request_branch(data: dict[str, Any]) -> list[Found]:
    return [("push_commit", {"owner": None, "repo": None, "branch": None, "files": None, "force": False,
                             "pull_request_id": data.get("pullRequestId")})]


def _create_pull_request(data: dict[str, Any]) -> list[Found]:
    return [("create_pr", {"owner": None, "repo": None, "head": data.get("headRefName"),
                           "base": data.get("baseRefName"), "title": data.get("title"),
                           "repository_id": data.get("repositoryId")})]


def _revert_pull_request(data: dict[str, Any]) -> list[Found]:
    # GitHub pushes a revert branch and opens a pull request from it.
    return [("create_pr", {"owner": None, "repo": None, "head": None, "base": None, "title": data.get("title"),
                           "pull_request_id": data.get("pullRequestId")})]


def _create_issue(data: dict[str, Any]) -> list[Found]:
    return [("create_issue", {"owner": None, "repo": None, "title": data.get("title"),
                              "repository_id": data.get("repositoryId")})]


_HANDLERS: dict[str, Callable[[dict[str, Any]], list[Found]]] = {
    "createRef": _create_ref,
    "updateRef": _update_ref,
    "updateRefs": _update_refs,
    "deleteRef": _delete_ref,
    "createCommitOnBranch": _create_commit_on_branch,
    "mergePullRequest": _merge_pull_request,
    "enablePullRequestAutoMerge": _merge_pull_request,
    "enqueuePullRequest": _merge_pull_request,  # the merge queue merges it into its base
    "mergeBranch": _merge_branch,
    "updatePullRequestBranch": _update_pull_request_branch,
    "createPullRequest": _create_pull_request,
    "revertPullRequest": _revert_pull_request,
    "createIssue": _create_issue,
}
