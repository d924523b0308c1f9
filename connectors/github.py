"""GitHub: the library-mode connector (REST over ``requests``) and the wire recogniser for the sidecar.

Three surfaces share the system: REST (``api.github.com``, or ``/api/v3`` on GHES), GraphQL
(``/graphql``, ``/api/graphql``) and git smart-HTTP on a git host (``github.com``). Owner and repo
are lower-cased in every payload. Decisions a reader may look for:

- ``PUT|DELETE .../contents/{path}`` without ``branch`` writes the default branch: the recogniser
  asks the upstream (``GET /repos/{o}/{r}``) and puts the real name in ``branch`` with
  ``default_branch: true``; if the lookup fails the call is refused.
- ``PUT .../pulls/{n}/merge`` and ``.../update-branch`` look the pull request up for its base and head
  (refused when that fails): a merge is a write to the base, an update-branch a write to the head.
- ``POST .../branches/{b}/rename`` is ``delete_branch`` of ``b`` plus ``create_branch`` of the new name.
- ``/repositories/{id}/...`` is resolved to owner/repo through the upstream, or refused.
- A ref update through the git data API or GraphQL does not say which files changed: ``files`` is None.
- GraphQL names repositories and refs by opaque node ids; payloads carry them (``ref_id``,
  ``repository_id``, ``pull_request_id``) with ``owner``/``repo``/``branch`` None when unknown.
- ``POST .../git/blobs|trees|commits`` create unreachable objects: named actions (``git/create-blob``).
- ``PUT .../pulls/{n}/merge-async`` is ``merge_pr`` like ``.../merge``; ``POST .../code-scanning/alerts/{n}/
  autofix/commits`` commits onto ``target_ref``: ``push_commit``.
- Every other documented write is a named action, ``github.<operationId>`` (``github.issues/create-comment``),
  from ``connectors/routes/github.json`` (see :mod:`connectors._routes`); what matches no route is ``unknown``.
- ``POST .../git-receive-pack`` goes to :attr:`Wire.git_push_recogniser` (the git-push engineer's
  parser) and its refusal to :attr:`Wire.git_push_refuser`.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict

from connectors import _routes, graphql_ops
from connectors.base import (
    HttpAnswer,
    HttpCall,
    Refusal,
    Upstream,
    direct_session,
    error_message,
    json_object,
    parse_upstream,
)
from enact_proxy.models import ActionRequest, RequestSummary

SYSTEM = "github"
SEMANTIC_ACTIONS = frozenset(
    {"read", "create_branch", "push_commit", "delete_branch", "push_tag", "create_pr", "merge_pr", "create_issue"}
)
# Every other documented write operation is a named action: its operationId (connectors/_routes.py).
ACTIONS = SEMANTIC_ACTIONS | _routes.table(SYSTEM).names

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_GIT_URL = "https://github.com"
DEFAULT_UPLOADS_URL = "https://uploads.github.com"
UPLOADS_HOST = "uploads.github.com"
DOCUMENTATION_URL = "https://docs.github.com/rest"
GRAPHQL_PATHS = frozenset({"/graphql", "/api/graphql"})

_READ_METHODS = frozenset({"GET", "HEAD"})
_GIT_SERVICE = re.compile(r"^git-(?:upload|receive)-pack$")

Found = tuple[str, dict[str, Any]]
GitPushRecogniser = Callable[[HttpCall, str, str], list[ActionRequest]]
GitPushRefuser = Callable[[HttpCall, str, int], HttpAnswer]


class Config(BaseModel):
    """``systems.github`` in ``enact.yaml``."""

    model_config = ConfigDict(extra="forbid")

    upstream: str = DEFAULT_API_URL
    git_upstream: str = DEFAULT_GIT_URL
    # Where requests to uploads.github.com (release assets) go; by default the real uploads host with
    # the default API upstream, else ``upstream`` (a sandbox or test upstream serves both).
    uploads_upstream: str | None = None
    token_env: str | None = None
    hosts: list[str] = ["api.github.com", "uploads.github.com", "github.com"]
    git_hosts: list[str] = ["github.com"]
    timeout_seconds: float = 5


class GitHubError(RuntimeError):
    """A GitHub call failed (HTTP error, timeout, unreadable answer). Never carries the token."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class GitHubConnector:
    """Performs GitHub actions over the REST API and answers the lookups recognition needs."""

    system = SYSTEM

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_API_URL,
        timeout: float = 5,
        session: requests.Session | None = None,
    ):
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = session or requests.Session()

    def __repr__(self) -> str:  # keeps the token out of logs and tracebacks
        return f"GitHubConnector(base_url={self.base_url!r})"

    def get_repo(self, owner: str, repo: str) -> dict[str, Any]:
        return self._object("GET", _repo_path(owner, repo))

    def get_default_branch(self, owner: str, repo: str) -> str:
        branch = self.get_repo(owner, repo).get("default_branch")
        if not isinstance(branch, str) or not branch:
            raise GitHubError(f"repository {owner}/{repo} has no default_branch")
        return branch

    def get_repo_by_id(self, repo_id: str) -> tuple[str, str]:
        """``(owner, repo)`` of a numeric repository id."""
        full_name = self._object("GET", f"/repositories/{quote(str(repo_id), safe='')}").get("full_name")
        if not isinstance(full_name, str) or full_name.count("/") != 1:
            raise GitHubError(f"repository {repo_id} has no full_name")
        owner, _, repo = full_name.partition("/")
        return owner, repo

    def get_pull(self, owner: str, repo: str, number: int) -> dict[str, Any]:
        return self._object("GET", f"{_repo_path(owner, repo)}/pulls/{int(number)}")

    def get_branch_sha(self, owner: str, repo: str, branch: str) -> str:
        ref = self._object("GET", f"{_repo_path(owner, repo)}/git/ref/heads/{quote(branch, safe='/')}")
        sha = (ref.get("object") or {}).get("sha")
        if not isinstance(sha, str):
            raise GitHubError(f"branch {branch} of {owner}/{repo} has no sha")
        return sha

    def create_branch(self, owner: str, repo: str, branch: str, sha: str | None = None) -> dict[str, Any]:
        if sha is None:
            sha = self.get_branch_sha(owner, repo, self.get_default_branch(owner, repo))
        body = {"ref": f"refs/heads/{branch}", "sha": sha}
        return self._object("POST", f"{_repo_path(owner, repo)}/git/refs", body)

    def push_commit(
        self, owner: str, repo: str, branch: str, files: Mapping[str, str | bytes | None], message: str
    ) -> dict[str, Any]:
        """One contents-API commit per file; a None content deletes the file."""
        commits = []
        for path, content in files.items():
            target = f"{_repo_path(owner, repo)}/contents/{quote(path, safe='/')}"
            existing = self._existing_sha(target, branch)
            body: dict[str, Any] = {"message": message, "branch": branch}
            if existing is not None:
                body["sha"] = existing
            if content is None:
                if existing is None:
                    raise GitHubError(f"cannot delete {path}: it does not exist on {branch}")
                answer = self._object("DELETE", target, body)
            else:
                raw = content.encode("utf-8") if isinstance(content, str) else content
                body["content"] = base64.b64encode(raw).decode("ascii")
                answer = self._object("PUT", target, body)
            commits.append((answer.get("commit") or {}).get("sha"))
        return {"branch": branch, "files": list(files), "commits": commits}

    def delete_branch(self, owner: str, repo: str, branch: str) -> dict[str, Any]:
        return self._object("DELETE", f"{_repo_path(owner, repo)}/git/refs/heads/{quote(branch, safe='/')}")

    def create_pr(self, owner: str, repo: str, head: str, base: str, title: str, body: str = "") -> dict[str, Any]:
        payload = {"head": head, "base": base, "title": title, "body": body}
        return self._object("POST", f"{_repo_path(owner, repo)}/pulls", payload)

    def merge_pr(self, owner: str, repo: str, number: int, merge_method: str | None = None) -> dict[str, Any]:
        payload = {"merge_method": merge_method} if merge_method else {}
        return self._object("PUT", f"{_repo_path(owner, repo)}/pulls/{int(number)}/merge", payload)

    def create_issue(self, owner: str, repo: str, title: str, body: str = "") -> dict[str, Any]:
        return self._object("POST", f"{_repo_path(owner, repo)}/issues", {"title": title, "body": body})

    @property
    def graphql_url(self) -> str:
        """GitHub.com serves GraphQL at ``/graphql``; GHES at ``/api/graphql`` beside ``/api/v3``."""
        if self.base_url.endswith("/api/v3"):
            return self.base_url[: -len("/v3")] + "/graphql"
        return self.base_url + "/graphql"

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of a GraphQL answer; any ``errors`` raise :class:`GitHubError`."""
        answer = self._object("POST", self.graphql_url, {"query": query, "variables": dict(variables or {})},
                              absolute=True)
        errors = answer.get("errors")
        if errors:
            first = errors[0].get("message") if isinstance(errors, list) and isinstance(errors[0], dict) else None
            raise GitHubError(f"GitHub GraphQL answered an error: {str(first or errors)[:300]}")
        data = answer.get("data")
        if not isinstance(data, dict):
            raise GitHubError("GitHub GraphQL answered without data")
        return data

    def resolve_nodes(self, ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """What each GraphQL node id names (a Ref, Repository or PullRequest); None when nothing."""
        nodes = self.graphql(_NODES_QUERY, {"ids": ids}).get("nodes")
        if not isinstance(nodes, list) or len(nodes) != len(ids):
            raise GitHubError("GitHub GraphQL answered a nodes list that does not match the ids asked")
        return {i: (n if isinstance(n, dict) else None) for i, n in zip(ids, nodes, strict=True)}

    def _existing_sha(self, target: str, branch: str) -> str | None:
        try:
            found = self._object("GET", target, params={"ref": branch})
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        sha = found.get("sha")
        return sha if isinstance(sha, str) else None

    def _object(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        absolute: bool = False,
    ) -> dict[str, Any]:
        try:
            response = self._session.request(
                method,
                path if absolute else self.base_url + path,
                json=json_body,
                params=params,
                headers={
                    "authorization": f"Bearer {self._token}",
                    "accept": "application/vnd.github+json",
                    "x-github-api-version": "2022-11-28",
                },
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            raise GitHubError(f"GitHub {method} {path} timed out after {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise GitHubError(f"GitHub {method} {path} failed: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise GitHubError(
                f"GitHub {method} {path} answered {response.status_code}: {error_message(response)}",
                status=response.status_code,
            )
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError as exc:
            raise GitHubError(f"GitHub {method} {path} answered with a body that is not JSON") from exc
        if not isinstance(data, dict):
            raise GitHubError(f"GitHub {method} {path} answered with JSON that is not an object")
        return data


_NODES_QUERY = """
query($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename
    ... on Ref { name prefix repository { name owner { login } } }
    ... on Repository { name owner { login } }
    ... on PullRequest {
      number baseRefName headRefName
      repository { name owner { login } }
      headRepository { name owner { login } }
    }
  }
}
"""


def _unavailable_git_push(call: HttpCall, owner: str, repo: str) -> list[ActionRequest]:
    raise Refusal("git push recognition unavailable")


def _plain_git_refusal(call: HttpCall, message: str, status: int) -> HttpAnswer:
    return HttpAnswer(status=status, headers={"content-type": "text/plain; charset=utf-8"},
                      body=(message + "\n").encode("utf-8"))


class Wire:
    """Recognises GitHub HTTP calls (REST, GraphQL, git smart-HTTP) for the sidecar."""

    system: ClassVar[str] = SYSTEM

    def __init__(
        self,
        config: Config,
        environ: Mapping[str, str] = os.environ,
        *,
        git_push_recogniser: GitPushRecogniser | None = None,
        git_push_refuser: GitPushRefuser | None = None,
    ):
        self.config = config
        self._git_hosts = frozenset(h.lower() for h in config.git_hosts)
        self._hosts = frozenset(h.lower() for h in config.hosts) | self._git_hosts
        self._token: str | None = None
        if config.token_env:
            token = environ.get(config.token_env)
            if not token:
                raise ValueError(
                    f"systems.github.token_env names {config.token_env}, but that variable is not set"
                )
            self._token = token
        self._api_upstream = parse_upstream(config.upstream)
        self._git_upstream = parse_upstream(config.git_upstream)
        uploads = config.uploads_upstream or (
            DEFAULT_UPLOADS_URL if config.upstream.rstrip("/") == DEFAULT_API_URL else config.upstream)
        self._uploads_upstream = parse_upstream(uploads)
        self._lookup_session = direct_session(environ)
        #: ``(call, owner, repo) -> actions`` for ``POST .../git-receive-pack``; raises Refusal.
        self.git_push_recogniser: GitPushRecogniser = git_push_recogniser or _unavailable_git_push
        #: ``(call, message, status) -> answer`` in git's report-status shape for a refused push.
        self.git_push_refuser: GitPushRefuser = git_push_refuser or _plain_git_refusal

    def __repr__(self) -> str:
        return f"github.Wire(upstream={self.config.upstream!r}, git_upstream={self.config.git_upstream!r})"

    @property
    def hosts(self) -> frozenset[str]:
        return self._hosts

    # --- the Wire protocol ---------------------------------------------------------------------

    def recognise(self, call: HttpCall) -> list[ActionRequest]:
        surface = self._surface(call)
        if surface == "git":
            push_target = _receive_pack_target(call)
            if push_target is not None:
                return self.git_push_recogniser(call, *push_target)
            found = _recognise_git(call)
        elif surface == "graphql":
            found = self._resolve_graphql_ids(call, _recognise_graphql(call))
        else:
            found = self._recognise_rest(call)
        summary = RequestSummary(method=call.method, host=call.host, path=call.path)
        if not found:
            found = [("unknown", {"method": call.method, "path": call.path})]
        return [ActionRequest(system=SYSTEM, action=a, payload=p, request=summary) for a, p in found]

    def refuse(self, call: HttpCall, message: str, status: int) -> HttpAnswer:
        surface = self._surface(call)
        if surface == "git":
            if _receive_pack_target(call) is not None:
                return self.git_push_refuser(call, message, status)
            return _plain_git_refusal(call, message, status)
        if surface == "graphql":
            body = {"data": None, "errors": [{"type": "FORBIDDEN", "message": message}]}
            return HttpAnswer(status=413 if status == 413 else 200, headers=_JSON, body=_dump(body))
        return HttpAnswer(
            status=status, headers=_JSON, body=_dump({"message": message, "documentation_url": DOCUMENTATION_URL})
        )

    def recognition_may_block(self, call: HttpCall) -> bool:
        """Only REST reads by owner/repo are recognised without a lookup or a git mirror fetch."""
        if call.method not in _READ_METHODS or self._surface(call) != "rest":
            return True
        path = (call.path[len("/api/v3"):] or "/") if _under(call.path, "/api/v3") else call.path
        return _under(path, "/repositories")

    def upstream(self, call: HttpCall) -> Upstream:
        if call.host == UPLOADS_HOST:
            return self._uploads_upstream
        return self._git_upstream if self._surface(call) == "git" else self._api_upstream

    def credential_headers(self, call: HttpCall) -> dict[str, str]:
        if self._token is None:
            return {}
        if self._surface(call) == "git":
            basic = base64.b64encode(f"x-access-token:{self._token}".encode()).decode("ascii")
            return {"authorization": f"Basic {basic}"}
        return {"authorization": f"Bearer {self._token}"}

    def lookup_systems(self, call: HttpCall) -> dict[str, Any]:
        return {SYSTEM: self.connector_for(call)}

    def is_git_push(self, call: HttpCall) -> bool:
        """Whether ``call`` is a push (``POST .../git-receive-pack`` on a git host)."""
        return self._surface(call) == "git" and _receive_pack_target(call) is not None

    def git_token_for(self, call: HttpCall) -> str | None:
        """The credential git traffic for ``call`` goes upstream with (ours, else the agent's)."""
        return self._token if self._token is not None else _agent_token(call.headers)

    def connector_for(self, call: HttpCall) -> GitHubConnector:
        """A connector with the credential the forward will carry (ours, else the agent's)."""
        token = self._token if self._token is not None else _agent_token(call.headers) or ""
        return GitHubConnector(token=token, base_url=self.config.upstream, timeout=self.config.timeout_seconds,
                               session=self._lookup_session)

    # --- surfaces ----------------------------------------------------------------------------

    def _surface(self, call: HttpCall) -> str:
        if call.host in self._git_hosts and not call.path.startswith("/api/"):
            return "git"
        if call.path in GRAPHQL_PATHS:
            return "graphql"
        return "rest"

    def _recognise_rest(self, call: HttpCall) -> list[Found]:
        path = (call.path[len("/api/v3"):] or "/") if _under(call.path, "/api/v3") else call.path
        segments = [s for s in path.split("/") if s]
        owner: str | None = None
        repo: str | None = None
        rest: list[str] = []
        if len(segments) >= 2 and segments[0] == "repositories":
            if not segments[1].isdigit():
                return []
            owner, repo = self._repo_by_id(call, segments[1])
            rest = segments[2:]
        elif len(segments) >= 3 and segments[0] == "repos":
            owner, repo, rest = segments[1].lower(), segments[2].lower(), segments[3:]
        if call.method in _READ_METHODS:
            return [("read", {"owner": owner, "repo": repo, "path": path})]
        if owner is None or repo is None:
            return _routes.fallback(SYSTEM, call, [path], _LOWER_PARAMS)
        found = self._recognise_repo_write(call, owner, repo, rest)
        if found:
            return found
        # The fallback: a documented operation by its operationId (never one of the semantic routes
        # above). /repositories/{id}/... is tried as documented, then as its /repos/{o}/{r}/... alias.
        paths = [path] if segments[0] == "repos" else [path, "/".join(["", "repos", owner, repo, *rest])]
        return _routes.fallback(SYSTEM, call, paths, _LOWER_PARAMS)

    def _recognise_repo_write(self, call: HttpCall, owner: str, repo: str, rest: list[str]) -> list[Found]:
        method = call.method
        where = {"owner": owner, "repo": repo}
        if rest == ["git", "refs"] and method == "POST":
            body = json_object(call)
            return [_new_ref(where, body.get("ref"), body.get("sha"))]
        if rest[:2] == ["git", "refs"] and len(rest) > 2 and method in ("PATCH", "DELETE"):
            ref = "/".join(rest[2:])
            ref = ref[len("refs/"):] if ref.startswith("refs/") else ref
            body = json_object(call) if method == "PATCH" else {}
            force = body.get("force") not in (None, False)  # anything GitHub might read as true
            if ref.startswith("heads/"):
                branch = ref[len("heads/"):]
                if method == "DELETE":
                    return [("delete_branch", {**where, "branch": branch})]
                return [("push_commit", {**where, "branch": branch, "files": None, "force": force,
                                         "sha": body.get("sha")})]
            if ref.startswith("tags/"):
                return [("push_tag", {**where, "tag": ref[len("tags/"):], "sha": body.get("sha"), "force": force,
                                      "delete": method == "DELETE"})]
            return []
        if rest[:1] == ["contents"] and len(rest) > 1 and method in ("PUT", "DELETE"):
            body = json_object(call)
            named = _existing_branch(body.get("branch"))
            on_default = named is None
            target = self._default_branch(call, owner, repo) if named is None else named
            return [("push_commit", {**where, "branch": target, "files": ["/".join(rest[1:])], "force": False,
                                     "default_branch": on_default})]
        if rest == ["merges"] and method == "POST":
            body = json_object(call)
            return [("push_commit", {**where, "branch": _existing_branch(body.get("base")), "files": None,
                                     "force": False, "head": body.get("head")})]
        if rest == ["merge-upstream"] and method == "POST":
            body = json_object(call)
            return [("push_commit", {**where, "branch": _existing_branch(body.get("branch")), "files": None,
                                     "force": False})]
        if len(rest) >= 3 and rest[0] == "branches" and rest[-1] == "rename" and method == "POST":
            body = json_object(call)
            old = "/".join(rest[1:-1])
            return [("delete_branch", {**where, "branch": old}),
                    ("create_branch", {**where, "branch": _branch_name(body.get("new_name")), "sha": None,
                                       "renamed_from": old})]
        if rest == ["pulls"] and method == "POST":
            body = json_object(call)
            head, head_owner = _split_head(body.get("head"))
            payload = {**where, "head": head, "base": _branch_name(body.get("base")), "title": body.get("title")}
            if head_owner is not None:
                payload["head_owner"] = head_owner
            return [("create_pr", payload)]
        if len(rest) == 3 and rest[0] == "pulls" and rest[1].isdigit() and method == "PUT":
            number = int(rest[1])
            if rest[2] in ("merge", "merge-async"):  # merge-async: the same merge, answered 202
                json_object(call)
                pull = self._pull(call, owner, repo, number)
                return [("merge_pr", {**where, "number": number, "base": pull["base"], "head": pull["head"]})]
            if rest[2] == "update-branch":
                json_object(call)
                pull = self._pull(call, owner, repo, number)
                return [("push_commit", {"owner": pull["head_owner"] or owner, "repo": pull["head_repo"] or repo,
                                         "branch": pull["head"], "files": None, "force": False,
                                         "number": number})]
            return []
        if (len(rest) == 5 and rest[:2] == ["code-scanning", "alerts"] and rest[3:] == ["autofix", "commits"]
                and method == "POST"):
            body = json_object(call)  # commits the autofix onto target_ref
            return [("push_commit", {**where, "branch": _existing_branch(body.get("target_ref")), "files": None,
                                     "force": False, "alert_number": rest[2]})]
        if rest == ["issues"] and method == "POST":
            body = json_object(call)
            return [("create_issue", {**where, "title": body.get("title")})]
        return []

    # --- lookups (fail closed) -----------------------------------------------------------------

    def _resolve_graphql_ids(self, call: HttpCall, found: list[Found]) -> list[Found]:
        """Name the repositories, refs and pull requests GraphQL gave as opaque node ids."""
        ids = sorted({p[key] for _, p in found for key in _NODE_KEYS if isinstance(p.get(key), str)})
        if not ids:
            return found
        try:
            nodes = self.connector_for(call).resolve_nodes(ids)
        except GitHubError as exc:
            raise Refusal(f"could not resolve GraphQL ids {', '.join(ids)}: {exc}") from exc
        return [_apply_nodes(action, payload, nodes) for action, payload in found]


    def _default_branch(self, call: HttpCall, owner: str, repo: str) -> str:
        try:
            return self.connector_for(call).get_default_branch(owner, repo)
        except GitHubError as exc:
            raise Refusal(f"could not look up the default branch of {owner}/{repo}: {exc}") from exc

    def _repo_by_id(self, call: HttpCall, repo_id: str) -> tuple[str, str]:
        try:
            owner, repo = self.connector_for(call).get_repo_by_id(repo_id)
        except GitHubError as exc:
            raise Refusal(f"could not resolve repository id {repo_id}: {exc}") from exc
        return owner.lower(), repo.lower()

    def _pull(self, call: HttpCall, owner: str, repo: str, number: int) -> dict[str, str | None]:
        try:
            pull = self.connector_for(call).get_pull(owner, repo, number)
        except GitHubError as exc:
            raise Refusal(f"could not look up pull request {owner}/{repo}#{number}: {exc}") from exc
        base, head = _dict(pull.get("base")), _dict(pull.get("head"))
        head_repo = _dict(head.get("repo"))
        full_name = head_repo.get("full_name")
        head_owner, head_name = (
            full_name.lower().split("/", 1) if isinstance(full_name, str) and "/" in full_name else (None, None)
        )
        if not isinstance(base.get("ref"), str) or not isinstance(head.get("ref"), str):
            raise Refusal(f"pull request {owner}/{repo}#{number} has no base or head branch")
        return {"base": base["ref"], "head": head["ref"], "head_owner": head_owner, "head_repo": head_name}


# --- pure helpers ------------------------------------------------------------------------------

_JSON = {"content-type": "application/json; charset=utf-8"}


def _git_segments(call: HttpCall) -> list[str]:
    return [s for s in call.path.split("/") if s]


def _receive_pack_target(call: HttpCall) -> tuple[str, str] | None:
    """``(owner, repo)`` when the call is a push's ``POST /{o}/{r}(.git)/git-receive-pack``."""
    segments = _git_segments(call)
    if call.method == "POST" and len(segments) == 3 and segments[2] == "git-receive-pack":
        return segments[0].lower(), _repo_name(segments[1])
    return None


def _recognise_git(call: HttpCall) -> list[Found]:
    segments = _git_segments(call)
    owner = segments[0].lower() if len(segments) >= 2 else None
    repo = _repo_name(segments[1]) if len(segments) >= 2 else None
    read = ("read", {"owner": owner, "repo": repo, "path": call.path})
    if len(segments) == 4 and segments[2:] == ["info", "refs"] and call.method in _READ_METHODS:
        service = call.query_one("service")
        if service is not None and not _GIT_SERVICE.match(service):
            return []
        return [read]
    if len(segments) == 3 and segments[2] == "git-upload-pack" and call.method == "POST":
        return [read]
    if call.method in _READ_METHODS:
        return [read]
    return []


def _recognise_graphql(call: HttpCall) -> list[Found]:
    if call.method in _READ_METHODS:
        document = call.query_one("query")
        if document is None:
            return [("read", {"owner": None, "repo": None, "path": call.path})]
        # GitHub does not serve GraphQL over GET; a document sent that way is still judged as written.
        raw_variables = call.query_one("variables")
        try:
            variables = json.loads(raw_variables) if raw_variables else None
        except ValueError as exc:
            raise Refusal(f"GraphQL variables are not valid JSON: {exc}") from exc
        return graphql_ops.analyse(document, variables)
    if call.method != "POST":
        return []
    body = json_object(call)
    return graphql_ops.analyse(body.get("query"), body.get("variables"))


_NODE_KEYS = ("repository_id", "ref_id", "pull_request_id")
_LOWER_PARAMS = frozenset({"owner", "repo"})  # case-insensitive on GitHub, lower-cased in every payload


def _node(nodes: Mapping[str, dict[str, Any] | None], node_id: str, typename: str) -> dict[str, Any]:
    node = nodes.get(node_id)
    if node is None or node.get("__typename") != typename:
        raise Refusal(f"GraphQL id {node_id} does not name a {typename} the credential can see")
    return node


def _owner_repo(repository: Any) -> tuple[str, str]:
    repository = _dict(repository)
    owner, name = _dict(repository.get("owner")).get("login"), repository.get("name")
    if not isinstance(owner, str) or not isinstance(name, str):
        raise Refusal("GraphQL lookup answered a repository without owner and name")
    return owner.lower(), name.lower()


def _apply_nodes(action: str, payload: dict[str, Any], nodes: Mapping[str, dict[str, Any] | None]) -> Found:
    payload = dict(payload)
    repository_id = payload.get("repository_id")
    if isinstance(repository_id, str):
        payload["owner"], payload["repo"] = _owner_repo(_node(nodes, repository_id, "Repository"))
    pull_id = payload.get("pull_request_id")
    if isinstance(pull_id, str):
        pull = _node(nodes, pull_id, "PullRequest")
        payload["owner"], payload["repo"] = _owner_repo(pull.get("repository"))
        payload["number"] = pull.get("number")
        if action == "push_commit":  # updatePullRequestBranch writes the head branch, maybe in a fork
            payload["owner"], payload["repo"] = _owner_repo(pull.get("headRepository"))
            payload["branch"] = pull.get("headRefName")
        else:
            payload["base"] = pull.get("baseRefName")
            if action == "merge_pr":
                payload["head"] = pull.get("headRefName")
    ref_id = payload.get("ref_id")
    if isinstance(ref_id, str):
        ref = _node(nodes, ref_id, "Ref")
        payload["owner"], payload["repo"] = _owner_repo(ref.get("repository"))
        prefix, name = ref.get("prefix"), ref.get("name")
        if prefix == "refs/tags/" and action in ("push_commit", "delete_branch"):
            return ("push_tag", {"owner": payload["owner"], "repo": payload["repo"], "tag": name,
                                 "sha": payload.get("sha"), "force": bool(payload.get("force")),
                                 "delete": action == "delete_branch", "ref_id": ref_id})
        if prefix != "refs/heads/":
            return ("unknown", {"owner": payload["owner"], "repo": payload["repo"], "ref": f"{prefix}{name}",
                                "ref_id": ref_id})
        payload["branch"] = name
    return (action, payload)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _new_ref(where: dict[str, str], ref: Any, sha: Any) -> Found:
    if isinstance(ref, str) and ref.startswith("refs/heads/"):
        return ("create_branch", {**where, "branch": ref[len("refs/heads/"):], "sha": sha})
    if isinstance(ref, str) and ref.startswith("refs/tags/"):
        return ("push_tag", {**where, "tag": ref[len("refs/tags/"):], "sha": sha, "force": False,
                             "delete": False})
    return ("unknown", {**where, "ref": ref})


def _branch_name(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[len("refs/heads/"):] if value.startswith("refs/heads/") else value


def _existing_branch(value: Any) -> str | None:
    """A field naming a branch that must exist; ``heads/x`` is stripped as git's ref lookup would."""
    name = _branch_name(value)
    return name[len("heads/"):] if name is not None and name.startswith("heads/") else name


def _split_head(value: Any) -> tuple[str | None, str | None]:
    """``"octocat:feature"`` (a fork) -> ``("feature", "octocat")``."""
    if not isinstance(value, str):
        return None, None
    if ":" in value:
        owner, _, branch = value.partition(":")
        return _branch_name(branch), owner.lower()
    return _branch_name(value), None


def _repo_name(segment: str) -> str:
    name = segment.lower()
    return name[: -len(".git")] if name.endswith(".git") else name


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _repo_path(owner: str, repo: str) -> str:
    return f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"





def _agent_token(headers: Mapping[str, str]) -> str | None:
    """The agent's own token from ``Bearer``, ``token`` or git's ``Basic`` (password part)."""
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() in ("bearer", "token"):
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except ValueError:
            return None
        return decoded.partition(":")[2] or None
    return None




def _dump(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")
