"""An in-memory GitHub REST (and minimal GraphQL) API on loopback, in GitHub's response and error shapes.

Repositories hold refs (name -> commit sha) and commits that each carry a full file snapshot, so the
contents API, refs, pulls, merges and issues behave consistently enough for PyGithub and for
end-to-end tests that check what moved. Owner and repo names are case-insensitive, like GitHub's.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLError, build_schema, graphql_sync

from enact_proxy.sandbox._http import Request, Response, SandboxServer, json_response

DOCS = "https://docs.github.com/rest"
ZERO_SHA = "0" * 40


class GitHubError(Exception):
    def __init__(self, status: int, message: str, docs: str = DOCS, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.docs = docs
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.extra, "documentation_url": self.docs, "status": str(self.status)}


def not_found() -> GitHubError:
    return GitHubError(404, "Not Found")


def validation_failed(resource: str, field_name: str, code: str = "invalid", message: str | None = None) -> GitHubError:
    error: dict[str, Any] = {"resource": resource, "field": field_name, "code": code}
    if message:
        error["message"] = message
    return GitHubError(422, "Validation Failed", errors=[error])


def blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    files: dict[str, bytes]
    message: str
    date: str


@dataclass
class Repo:
    owner: str
    name: str
    id: int
    default_branch: str
    refs: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def node_id(self) -> str:
        return "R_" + base64.b64encode(self.full_name.encode()).decode()

    def branch_sha(self, branch: str) -> str | None:
        return self.refs.get(f"refs/heads/{branch}")

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        seen, todo = set(), [descendant]
        while todo:
            sha = todo.pop()
            if sha == ancestor:
                return True
            if sha in seen or sha not in self.commits:
                continue
            seen.add(sha)
            todo.extend(self.commits[sha].parents)
        return False


_GRAPHQL_SCHEMA = build_schema("""
interface Node { id: ID! }
type Query {
  viewer: User!
  repository(owner: String!, name: String!): Repository
  nodes(ids: [ID!]!): [Node]!
}
type User { login: String!, id: ID! }
type Repository implements Node {
  id: ID!
  name: String!
  nameWithOwner: String!
  owner: User!
  defaultBranchRef: Ref
  ref(qualifiedName: String!): Ref
}
type Ref implements Node { id: ID!, name: String!, prefix: String!, target: Commit, repository: Repository! }
type PullRequest implements Node {
  id: ID!
  number: Int!
  baseRefName: String!
  headRefName: String!
  repository: Repository!
  headRepository: Repository
}
type Commit { oid: String! }
type Mutation {
  createRef(input: CreateRefInput!): CreateRefPayload
  updateRef(input: UpdateRefInput!): UpdateRefPayload
  deleteRef(input: DeleteRefInput!): DeleteRefPayload
}
input CreateRefInput { repositoryId: ID!, name: String!, oid: String!, clientMutationId: String }
input UpdateRefInput { refId: ID!, oid: String!, force: Boolean, clientMutationId: String }
input DeleteRefInput { refId: ID!, clientMutationId: String }
type CreateRefPayload { ref: Ref, clientMutationId: String }
type UpdateRefPayload { ref: Ref, clientMutationId: String }
type DeleteRefPayload { clientMutationId: String }
""")


class SandboxGitHub(SandboxServer):
    """In-memory GitHub API. With ``token``, requests must carry it (``token X`` or ``Bearer X``);
    without, any or no credential is accepted. ``public_url`` is the base put into response URLs
    (default: ``http://`` + the request's Host header)."""

    def __init__(
        self,
        token: str | None = None,
        login: str = "enact-sandbox",
        public_url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.token = token
        self.login = login
        self.public_url = public_url.rstrip("/") if public_url else None
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], Repo] = {}
        self._ids = itertools.count(1296269)
        self._sha_counter = itertools.count(1)

    # -- seeding and inspection ------------------------------------------------------------------
    def add_repo(
        self, owner: str, name: str, default_branch: str = "main", files: dict[str, bytes | str] | None = None
    ) -> str:
        """Creates a repository whose default branch holds one initial commit; returns its sha."""
        seeded = {
            path: c.encode() if isinstance(c, str) else c for path, c in (files or {"README.md": f"# {name}\n"}).items()
        }
        with self._lock:
            repo = Repo(owner, name, next(self._ids), default_branch)
            self._repos[(owner.lower(), name.lower())] = repo
            commit = self._commit(repo, (), seeded, "Initial commit")
            repo.refs[f"refs/heads/{default_branch}"] = commit.sha
            return commit.sha

    def refs(self, owner: str, name: str) -> dict[str, str]:
        with self._lock:
            return dict(self._repo(owner, name).refs)

    def branch_sha(self, owner: str, name: str, branch: str) -> str | None:
        with self._lock:
            return self._repo(owner, name).branch_sha(branch)

    def file(self, owner: str, name: str, path: str, branch: str | None = None) -> bytes | None:
        with self._lock:
            repo = self._repo(owner, name)
            sha = repo.branch_sha(branch or repo.default_branch)
            return repo.commits[sha].files.get(path) if sha else None

    def pulls(self, owner: str, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(p) for p in self._repo(owner, name).pulls.values()]

    def issues(self, owner: str, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(i) for i in self._repo(owner, name).issues.values()]

    # -- store -----------------------------------------------------------------------------------
    def _repo(self, owner: str, name: str) -> Repo:
        repo = self._repos.get((owner.lower(), name.lower()))
        if repo is None:
            raise not_found()
        return repo

    def _commit(self, repo: Repo, parents: tuple[str, ...], files: dict[str, bytes], message: str) -> Commit:
        seed = f"{repo.full_name}|{','.join(parents)}|{message}|{next(self._sha_counter)}"
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parents, dict(files), message, _now())
        repo.commits[commit.sha] = commit
        return commit

    # -- routing ---------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        try:
            self._authorize(request)
            with self._lock:
                return self._route(request)
        except GitHubError as exc:
            return json_response(exc.status, exc.body())

    def _authorize(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if self.token is None:
            return
        if scheme.lower() not in ("token", "bearer") or credential.strip() != self.token:
            raise GitHubError(401, "Bad credentials")

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise GitHubError(400, "Problems parsing JSON") from exc
        if not isinstance(body, dict):
            raise GitHubError(400, "Problems parsing JSON")
        return body

    def _base(self, request: Request, api_prefix: str) -> str:
        if self.public_url:
            return self.public_url
        return f"http://{request.headers.get('host') or f'127.0.0.1:{self.port}'}{api_prefix}"

    def _route(self, request: Request) -> Response:
        path = re.sub(r"/{2,}", "/", request.path).rstrip("/") or "/"
        prefix = ""
        if path.startswith("/api/v3/") or path == "/api/v3":
            prefix, path = "/api/v3", path[len("/api/v3") :] or "/"
        if request.method == "POST" and path in ("/graphql", "/api/graphql"):
            return self._graphql(request)
        base = self._base(request, prefix)
        if path == "/user" and request.method == "GET":
            if not request.headers.get("authorization"):
                raise GitHubError(401, "Requires authentication")
            return json_response(200, self._user(base))
        by_id = re.match(r"^/repositories/(\d+)(?P<rest>(?:/.*)?)$", path)
        if by_id:
            repo = next((r for r in self._repos.values() if r.id == int(by_id[1])), None)
            if repo is None:
                raise not_found()
            return _RepoApi(self, repo, base, request).route(by_id["rest"])
        match = re.match(r"^/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)(?P<rest>(?:/.*)?)$", path)
        if match:
            repo = self._repo(match["owner"], match["name"])
            return _RepoApi(self, repo, base, request).route(match["rest"])
        raise not_found()

    def _user(self, base: str) -> dict[str, Any]:
        return {
            "login": self.login,
            "id": 1,
            "node_id": "U_sandbox",
            "type": "User",
            "url": f"{base}/users/{self.login}",
            "html_url": f"https://github.com/{self.login}",
        }

    # -- GraphQL ---------------------------------------------------------------------------------
    def _graphql(self, request: Request) -> Response:
        body = self._body(request)
        query = body.get("query")
        if not isinstance(query, str):
            raise GitHubError(400, "Problems parsing JSON")
        root = _GraphQLRoot(self)
        result = graphql_sync(
            _GRAPHQL_SCHEMA,
            query,
            root_value=root,
            variable_values=body.get("variables") or None,
            operation_name=body.get("operationName"),
        )
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [_graphql_error(e) for e in result.errors]
        return json_response(200, payload)


def _graphql_error(error: GraphQLError) -> dict[str, Any]:
    formatted = dict(error.formatted)
    original = error.original_error
    formatted["type"] = original.gh_type if isinstance(original, _GraphQLFailure) else "INVALID"
    return formatted


class _GraphQLFailure(Exception):
    def __init__(self, gh_type: str, message: str) -> None:
        super().__init__(message)
        self.gh_type = gh_type


class _GraphQLRoot:
    """Resolvers: graphql-core's default resolver calls attributes that are callables with (info, **args)."""

    def __init__(self, sandbox: SandboxGitHub) -> None:
        self._sandbox = sandbox
        self.viewer = {"login": sandbox.login, "id": "U_sandbox"}

    def _ref_node(self, repo: Repo, qualified: str) -> dict[str, Any] | None:
        sha = repo.refs.get(qualified)
        if sha is None:
            return None
        for prefix in ("refs/heads/", "refs/tags/"):
            if qualified.startswith(prefix):
                short = qualified[len(prefix) :]
                break
        else:
            head, _, short = qualified.rpartition("/")
            prefix = f"{head}/"
        ref_id = "REF_" + base64.b64encode(f"{repo.full_name}:{qualified}".encode()).decode()
        return {"__typename": "Ref", "id": ref_id, "name": short, "prefix": prefix, "target": {"oid": sha},
                "repository": lambda _info: self._repo_node(repo)}

    def _repo_node(self, repo: Repo) -> dict[str, Any]:
        return {
            "__typename": "Repository",
            "id": repo.node_id,
            "name": repo.name,
            "nameWithOwner": repo.full_name,
            "owner": {"login": repo.owner, "id": f"U_{repo.owner}"},
            "defaultBranchRef": self._ref_node(repo, f"refs/heads/{repo.default_branch}"),
            "ref": lambda _info, qualifiedName: self._ref_node(repo, qualifiedName),
        }

    def nodes(self, _info: Any, ids: list[str]) -> list[dict[str, Any] | None]:
        return [self._node(node_id) for node_id in ids]

    def _node(self, node_id: str) -> dict[str, Any] | None:
        try:
            if node_id.startswith("REF_"):
                repo, qualified = self._ref_by_node(node_id)
                return self._ref_node(repo, qualified)
            if node_id.startswith("R_"):
                return self._repo_node(self._repo_by_node(node_id))
        except _GraphQLFailure:
            return None
        if node_id.startswith("PR_") and node_id[3:].isdigit():
            for repo in self._sandbox._repos.values():
                pull = repo.pulls.get(int(node_id[3:]))
                if pull is not None:
                    return {"__typename": "PullRequest", "id": node_id, "number": pull["number"],
                            "baseRefName": pull["base"]["ref"], "headRefName": pull["head"]["ref"],
                            "repository": self._repo_node(repo), "headRepository": self._repo_node(repo)}
        return None

    def _repo_by_node(self, node_id: str) -> Repo:
        for repo in self._sandbox._repos.values():
            if repo.node_id == node_id:
                return repo
        raise _GraphQLFailure("NOT_FOUND", f"Could not resolve to a node with the global id of '{node_id}'")

    def _ref_by_node(self, ref_id: str) -> tuple[Repo, str]:
        try:
            full_name, _, qualified = base64.b64decode(ref_id.removeprefix("REF_")).decode().partition(":")
            owner, _, name = full_name.partition("/")
            repo = self._sandbox._repo(owner, name)
        except (ValueError, GitHubError) as exc:
            raise _GraphQLFailure("NOT_FOUND", f"Could not resolve to a node with the global id of '{ref_id}'") from exc
        if qualified not in repo.refs:
            raise _GraphQLFailure("NOT_FOUND", f"Could not resolve to a node with the global id of '{ref_id}'")
        return repo, qualified

    def repository(self, _info: Any, owner: str, name: str) -> dict[str, Any] | None:
        try:
            return self._repo_node(self._sandbox._repo(owner, name))
        except GitHubError:
            raise _GraphQLFailure(
                "NOT_FOUND", f"Could not resolve to a Repository with the name '{owner}/{name}'."
            ) from None

    def createRef(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: N802, A002
        repo = self._repo_by_node(input["repositoryId"])
        name, oid = input["name"], input["oid"]
        if not name.startswith("refs/") or name.count("/") < 2:
            raise _GraphQLFailure("UNPROCESSABLE", f"{name} is not a valid ref name.")
        if name in repo.refs:
            raise _GraphQLFailure("UNPROCESSABLE", f'A ref named "{name}" already exists in the repository.')
        if oid not in repo.commits:
            raise _GraphQLFailure("UNPROCESSABLE", "Object does not exist")
        repo.refs[name] = oid
        return {"ref": self._ref_node(repo, name), "clientMutationId": input.get("clientMutationId")}

    def updateRef(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: N802, A002
        repo, qualified = self._ref_by_node(input["refId"])
        oid = input["oid"]
        if oid not in repo.commits:
            raise _GraphQLFailure("UNPROCESSABLE", "Object does not exist")
        if not input.get("force") and not repo.is_ancestor(repo.refs[qualified], oid):
            raise _GraphQLFailure("UNPROCESSABLE", "Update is not a fast forward")
        repo.refs[qualified] = oid
        return {"ref": self._ref_node(repo, qualified), "clientMutationId": input.get("clientMutationId")}

    def deleteRef(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: N802, A002
        repo, qualified = self._ref_by_node(input["refId"])
        del repo.refs[qualified]
        return {"clientMutationId": input.get("clientMutationId")}


class _RepoApi:
    """The ``/repos/{owner}/{repo}/...`` routes for one request."""

    def __init__(self, sandbox: SandboxGitHub, repo: Repo, base: str, request: Request) -> None:
        self.sandbox = sandbox
        self.repo = repo
        self.request = request
        self.url = f"{base}/repos/{repo.full_name}"
        self.base = base

    def route(self, rest: str) -> Response:
        method = self.request.method
        if rest == "" and method == "GET":
            return json_response(200, self._repo_json())
        if rest == "/branches" and method == "GET":
            branches = sorted(r.removeprefix("refs/heads/") for r in self.repo.refs if r.startswith("refs/heads/"))
            return json_response(200, [self._branch_json(b) for b in branches])
        if rest.startswith("/branches/") and method == "GET":
            branch = rest.removeprefix("/branches/")
            if self.repo.branch_sha(branch) is None:
                raise GitHubError(404, "Branch not found")
            return json_response(200, self._branch_json(branch))
        if rest == "/git/refs":
            return self._refs_collection(method)
        if rest.startswith(("/git/refs/", "/git/ref/")):
            return self._one_ref(method, rest.split("/", 3)[3])
        if rest.startswith("/git/commits/") and method == "GET":
            return json_response(200, self._git_commit_json(self._commit(rest.removeprefix("/git/commits/"))))
        if rest.startswith("/commits/") and method == "GET":
            return json_response(200, self._commit_json(self._commit(self._resolve(rest.removeprefix("/commits/")))))
        if rest == "/contents" or rest.startswith("/contents/"):
            return self._contents(method, rest.removeprefix("/contents").lstrip("/"))
        if rest == "/pulls":
            return self._pulls(method)
        pull = re.match(r"^/pulls/(\d+)(/merge)?$", rest)
        if pull:
            return self._pull(method, int(pull[1]), merge=bool(pull[2]))
        if rest == "/issues":
            return self._issues(method)
        issue = re.match(r"^/issues/(\d+)$", rest)
        if issue and method == "GET":
            found = self.repo.issues.get(int(issue[1]))
            if found is None:
                raise not_found()
            return json_response(200, found)
        comments = re.match(r"^/issues/(\d+)/comments$", rest)
        if comments and method == "POST":
            return self._comment(int(comments[1]))
        if rest == "/merges" and method == "POST":
            return self._merges()
        raise not_found()

    # -- JSON shapes -----------------------------------------------------------------------------
    def _repo_json(self) -> dict[str, Any]:
        repo = self.repo
        return {
            "id": repo.id,
            "node_id": repo.node_id,
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": {"login": repo.owner, "id": 1, "type": "User", "url": f"{self.base}/users/{repo.owner}"},
            "private": False,
            "default_branch": repo.default_branch,
            "url": self.url,
            "html_url": f"https://github.com/{repo.full_name}",
            "clone_url": f"https://github.com/{repo.full_name}.git",
            "permissions": {"admin": True, "push": True, "pull": True},
        }

    def _branch_json(self, branch: str) -> dict[str, Any]:
        sha = self.repo.branch_sha(branch)
        return {"name": branch, "commit": {"sha": sha, "url": f"{self.url}/commits/{sha}"}, "protected": False}

    def _ref_json(self, ref: str) -> dict[str, Any]:
        sha = self.repo.refs[ref]
        return {
            "ref": ref,
            "node_id": "REF_" + base64.b64encode(f"{self.repo.full_name}:{ref}".encode()).decode(),
            "url": f"{self.url}/git/{ref}",
            "object": {"sha": sha, "type": "commit", "url": f"{self.url}/git/commits/{sha}"},
        }

    def _git_commit_json(self, commit: Commit) -> dict[str, Any]:
        person = {
            "name": self.sandbox.login,
            "email": f"{self.sandbox.login}@users.noreply.github.com",
            "date": commit.date,
        }
        return {
            "sha": commit.sha,
            "node_id": f"C_{commit.sha}",
            "url": f"{self.url}/git/commits/{commit.sha}",
            "html_url": f"https://github.com/{self.repo.full_name}/commit/{commit.sha}",
            "message": commit.message,
            "author": person,
            "committer": person,
            "tree": {
                "sha": hashlib.sha1(repr(sorted(commit.files)).encode()).hexdigest(),
                "url": f"{self.url}/git/trees/{commit.sha}",
            },
            "parents": [{"sha": p, "url": f"{self.url}/git/commits/{p}"} for p in commit.parents],
        }

    def _commit_json(self, commit: Commit) -> dict[str, Any]:
        git = self._git_commit_json(commit)
        return {
            "sha": commit.sha,
            "node_id": git["node_id"],
            "url": f"{self.url}/commits/{commit.sha}",
            "html_url": git["html_url"],
            "commit": git,
            "parents": git["parents"],
        }

    def _content_json(self, path: str, content: bytes, ref: str) -> dict[str, Any]:
        sha = blob_sha(content)
        url = f"{self.url}/contents/{path}?ref={ref}"
        return {
            "type": "file",
            "encoding": "base64",
            "size": len(content),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": base64.encodebytes(content).decode(),
            "sha": sha,
            "url": url,
            "git_url": f"{self.url}/git/blobs/{sha}",
            "html_url": f"https://github.com/{self.repo.full_name}/blob/{ref}/{path}",
            "download_url": None,
            "_links": {
                "self": url,
                "git": f"{self.url}/git/blobs/{sha}",
                "html": f"https://github.com/{self.repo.full_name}/blob/{ref}/{path}",
            },
        }

    # -- helpers ---------------------------------------------------------------------------------
    def _commit(self, sha: str) -> Commit:
        commit = self.repo.commits.get(sha)
        if commit is None:
            raise GitHubError(422, "No commit found for SHA: " + sha)
        return commit

    def _resolve(self, ref: str) -> str:
        """A branch name, tag name, full ref or sha -> sha."""
        for candidate in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
            if candidate in self.repo.refs:
                return self.repo.refs[candidate]
        if ref in self.repo.commits:
            return ref
        raise GitHubError(404, f"No commit found for the ref {ref}")

    def _move(self, ref: str, new_sha: str, force: bool) -> None:
        old = self.repo.refs[ref]
        if not force and not self.repo.is_ancestor(old, new_sha):
            raise GitHubError(
                422, "Update is not a fast forward", docs="https://docs.github.com/rest/git/refs#update-a-reference"
            )
        self.repo.refs[ref] = new_sha

    # -- refs ------------------------------------------------------------------------------------
    def _refs_collection(self, method: str) -> Response:
        if method == "GET":
            return json_response(200, [self._ref_json(r) for r in sorted(self.repo.refs)])
        if method != "POST":
            raise not_found()
        body = self.sandbox._body(self.request)
        ref, sha = body.get("ref"), body.get("sha")
        docs = "https://docs.github.com/rest/git/refs#create-a-reference"
        if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
            raise GitHubError(422, "Reference name must start with 'refs/' and have at least two slashes.", docs=docs)
        if not isinstance(sha, str) or sha not in self.repo.commits:
            raise GitHubError(422, "Object does not exist", docs=docs)
        if ref in self.repo.refs:
            raise GitHubError(422, "Reference already exists", docs=docs)
        self.repo.refs[ref] = sha
        return json_response(201, self._ref_json(ref), {"Location": f"{self.url}/git/{ref}"})

    def _one_ref(self, method: str, short: str) -> Response:
        ref = f"refs/{short}"
        if method == "GET":
            if ref in self.repo.refs:
                return json_response(200, self._ref_json(ref))
            # ``/git/refs/heads/fea`` lists every ref starting with it, as GitHub does.
            matching = [r for r in sorted(self.repo.refs) if r.startswith(ref)]
            if matching:
                return json_response(200, [self._ref_json(r) for r in matching])
            raise not_found()
        if ref not in self.repo.refs:
            raise GitHubError(
                422, "Reference does not exist", docs="https://docs.github.com/rest/git/refs#update-a-reference"
            )
        if method == "PATCH":
            body = self.sandbox._body(self.request)
            sha = body.get("sha")
            if not isinstance(sha, str) or sha not in self.repo.commits:
                raise GitHubError(422, "Object does not exist")
            self._move(ref, sha, bool(body.get("force")))
            return json_response(200, self._ref_json(ref))
        if method == "DELETE":
            del self.repo.refs[ref]
            return Response(204)
        raise not_found()

    # -- contents --------------------------------------------------------------------------------
    def _contents(self, method: str, path: str) -> Response:
        if method == "GET":
            ref = self.request.query_one("ref") or self.repo.default_branch
            files = self.repo.commits[self._resolve(ref)].files
            if path in files:
                return json_response(200, self._content_json(path, files[path], ref))
            prefix = f"{path}/" if path else ""
            names = sorted({p[len(prefix) :].split("/", 1)[0] for p in files if p.startswith(prefix)})
            if not names:
                raise not_found()
            listing = []
            for name in names:
                full = prefix + name
                if full in files:
                    entry = self._content_json(full, files[full], ref)
                    entry.pop("content")
                    entry.pop("encoding")
                    listing.append(entry)
                else:
                    listing.append(
                        {
                            "type": "dir",
                            "name": name,
                            "path": full,
                            "sha": ZERO_SHA,
                            "url": f"{self.url}/contents/{full}?ref={ref}",
                        }
                    )
            return json_response(200, listing)
        if method not in ("PUT", "DELETE"):
            raise not_found()
        body = self.sandbox._body(self.request)
        branch = body.get("branch") or self.repo.default_branch
        head = self.repo.branch_sha(branch)
        if head is None:
            raise GitHubError(404, f"Branch {branch} not found")
        files = dict(self.repo.commits[head].files)
        message = body.get("message")
        if not isinstance(message, str):
            raise validation_failed("Commit", "message", "missing_field")
        given_sha = body.get("sha")
        docs = "https://docs.github.com/rest/repos/contents#create-or-update-file-contents"
        if path in files and given_sha is None:
            raise GitHubError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.', docs=docs)
        if path in files and given_sha != blob_sha(files[path]):
            raise GitHubError(409, f"{path} does not match {given_sha}", docs=docs)
        if method == "DELETE":
            if path not in files:
                raise not_found()
            del files[path]
            commit = self.sandbox._commit(self.repo, (head,), files, message)
            self.repo.refs[f"refs/heads/{branch}"] = commit.sha
            return json_response(200, {"content": None, "commit": self._git_commit_json(commit)})
        try:
            content = base64.b64decode(body.get("content", ""), validate=False)
        except (ValueError, TypeError) as exc:
            raise GitHubError(422, "content is not valid Base64", docs=docs) from exc
        created = path not in files
        files[path] = content
        commit = self.sandbox._commit(self.repo, (head,), files, message)
        self.repo.refs[f"refs/heads/{branch}"] = commit.sha
        answer = {"content": self._content_json(path, content, branch), "commit": self._git_commit_json(commit)}
        answer["content"].pop("encoding")
        answer["content"].pop("content")
        return json_response(201 if created else 200, answer)

    # -- pulls, issues, merges -------------------------------------------------------------------
    def _pulls(self, method: str) -> Response:
        if method == "GET":
            state = self.request.query_one("state") or "open"
            pulls = [p for p in self.repo.pulls.values() if state == "all" or p["state"] == state]
            return json_response(200, pulls)
        if method != "POST":
            raise not_found()
        body = self.sandbox._body(self.request)
        head, base = body.get("head"), body.get("base")
        head_branch = head.split(":", 1)[-1] if isinstance(head, str) else None
        if not head_branch or self.repo.branch_sha(head_branch) is None:
            raise validation_failed("PullRequest", "head")
        if not isinstance(base, str) or self.repo.branch_sha(base) is None:
            raise validation_failed("PullRequest", "base")
        if not body.get("title") and not body.get("issue"):
            raise validation_failed("PullRequest", "title", "missing_field")
        if any(
            p["state"] == "open" and p["head"]["ref"] == head_branch and p["base"]["ref"] == base
            for p in self.repo.pulls.values()
        ):
            raise validation_failed(
                "PullRequest", "head", "custom", f"A pull request already exists for {self.repo.owner}:{head_branch}."
            )
        number = self._next_number()
        pull = {
            "id": number + 1000,
            "node_id": f"PR_{number}",
            "number": number,
            "state": "open",
            "title": body.get("title", ""),
            "body": body.get("body"),
            "draft": bool(body.get("draft")),
            "url": f"{self.url}/pulls/{number}",
            "html_url": f"https://github.com/{self.repo.full_name}/pull/{number}",
            "user": {"login": self.sandbox.login, "id": 1, "type": "User"},
            "head": self._pr_side(head_branch),
            "base": self._pr_side(base),
            "merged": False,
            "mergeable": True,
            "merged_at": None,
            "merge_commit_sha": None,
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.repo.pulls[number] = pull
        return json_response(201, pull, {"Location": pull["url"]})

    def _pr_side(self, branch: str) -> dict[str, Any]:
        return {
            "label": f"{self.repo.owner}:{branch}",
            "ref": branch,
            "sha": self.repo.branch_sha(branch),
            "repo": self._repo_json(),
            "user": {"login": self.repo.owner, "id": 1, "type": "User"},
        }

    def _next_number(self) -> int:
        number = self.repo.next_number
        self.repo.next_number += 1
        return number

    def _pull(self, method: str, number: int, merge: bool) -> Response:
        pull = self.repo.pulls.get(number)
        if pull is None:
            raise not_found()
        if not merge:
            if method == "GET":
                return json_response(200, pull)
            raise not_found()
        if method == "GET":
            return Response(204) if pull["merged"] else json_response(404, not_found().body())
        if method != "PUT":
            raise not_found()
        body = self.sandbox._body(self.request) if self.request.body.strip() else {}
        docs = "https://docs.github.com/rest/pulls/pulls#merge-a-pull-request"
        if pull["state"] != "open":
            raise GitHubError(405, "Pull Request is not mergeable", docs=docs)
        head_sha = self.repo.branch_sha(pull["head"]["ref"])
        base_ref = f"refs/heads/{pull['base']['ref']}"
        if head_sha is None or base_ref not in self.repo.refs:
            raise GitHubError(405, "Pull Request is not mergeable", docs=docs)
        if body.get("sha") and body["sha"] != head_sha:
            raise GitHubError(409, "Head branch was modified. Review and try the merge again.", docs=docs)
        message = body.get("commit_title") or f"Merge pull request #{number}"
        commit = self._merge_commit(base_ref, head_sha, message, squash=body.get("merge_method") == "squash")
        pull.update(state="closed", merged=True, merged_at=_now(), merge_commit_sha=commit.sha)
        return json_response(200, {"sha": commit.sha, "merged": True, "message": "Pull Request successfully merged"})

    def _merge_commit(self, base_ref: str, head_sha: str, message: str, squash: bool = False) -> Commit:
        base_sha = self.repo.refs[base_ref]
        # The sandbox never conflicts: the head's files win.
        files = {**self.repo.commits[base_sha].files, **self.repo.commits[head_sha].files}
        parents = (base_sha,) if squash else (base_sha, head_sha)
        commit = self.sandbox._commit(self.repo, parents, files, message)
        self.repo.refs[base_ref] = commit.sha
        return commit

    def _issues(self, method: str) -> Response:
        if method == "GET":
            return json_response(200, list(self.repo.issues.values()))
        if method != "POST":
            raise not_found()
        body = self.sandbox._body(self.request)
        if not isinstance(body.get("title"), str | int) or body.get("title") == "":
            raise validation_failed("Issue", "title", "missing_field")
        number = self._next_number()
        issue: dict[str, Any] = {
            "id": number + 2000,
            "node_id": f"I_{number}",
            "number": number,
            "title": str(body["title"]),
            "body": body.get("body"),
            "state": "open",
            "labels": [{"name": str(label)} for label in body.get("labels") or []],
            "assignees": [{"login": str(a)} for a in body.get("assignees") or []],
            "url": f"{self.url}/issues/{number}",
            "html_url": f"https://github.com/{self.repo.full_name}/issues/{number}",
            "user": {"login": self.sandbox.login, "id": 1, "type": "User"},
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.repo.issues[number] = issue
        return json_response(201, issue, {"Location": issue["url"]})

    def _comment(self, number: int) -> Response:
        """``POST .../issues/{n}/comments``: the comment is kept on the issue under ``comments_list``."""
        issue = self.repo.issues.get(number)
        if issue is None:
            raise not_found()
        body = self.sandbox._body(self.request)
        if not isinstance(body.get("body"), str) or not body["body"]:
            raise validation_failed("IssueComment", "body", "missing_field")
        comments = issue.setdefault("comments_list", [])
        comment = {
            "id": 3000 + number * 100 + len(comments),
            "body": body["body"],
            "issue_url": f"{self.url}/issues/{number}",
            "user": {"login": self.sandbox.login, "id": 1, "type": "User"},
            "created_at": _now(),
        }
        comments.append(comment)
        issue["comments"] = len(comments)
        return json_response(201, comment)

    def _merges(self) -> Response:
        body = self.sandbox._body(self.request)
        base, head = body.get("base"), body.get("head")
        docs = "https://docs.github.com/rest/branches/branches#merge-a-branch"
        if not isinstance(base, str) or self.repo.branch_sha(base) is None:
            raise GitHubError(404, "Base does not exist", docs=docs)
        try:
            head_sha = self._resolve(head) if isinstance(head, str) else None
        except GitHubError:
            head_sha = None
        if head_sha is None:
            raise GitHubError(404, "Head does not exist", docs=docs)
        base_ref = f"refs/heads/{base}"
        if self.repo.is_ancestor(head_sha, self.repo.refs[base_ref]):
            return Response(204)
        message = body.get("commit_message") or f"Merge {head} into {base}"
        commit = self._merge_commit(base_ref, head_sha, message)
        return json_response(201, self._commit_json(commit))
