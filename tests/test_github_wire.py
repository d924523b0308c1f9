import base64
import json

import pytest
import responses
from mitmproxy import http
from mitmproxy.test import tflow, tutils
from responses import matchers

from connectors.base import HttpAnswer, Refusal, Upstream, Wire
from connectors.github import Config, GitHubConnector
from connectors.github import Wire as GitHubWire
from enact_proxy.httpcall import build_call, call_from_flow
from enact_proxy.models import ActionRequest

LIMIT = 1024 * 1024
API = "http://gh.test"
SHA = "a" * 40
ZERO = "0" * 40


def call(method, target, body=None, host="api.github.com", raw=None, headers=None):
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return build_call(method, host, target, headers or {"authorization": "token agent-token"}, data, LIMIT)


def gql(query, variables=None):
    return {"query": query, "variables": variables or {}}


@pytest.fixture
def wire():
    return GitHubWire(Config(upstream=API, git_upstream="http://git.test:8081"), environ={})


@pytest.fixture
def upstream_facts():
    """What the recogniser may ask the upstream: a repo, its id, a pull request."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{API}/repos/octo/demo", json={"default_branch": "main", "full_name": "Octo/Demo"})
        mock.get(f"{API}/repositories/42", json={"full_name": "Octo/Demo"})
        mock.get(f"{API}/repos/octo/demo/pulls/7",
                 json={"base": {"ref": "main"}, "head": {"ref": "agent/x", "repo": {"full_name": "Fork/Demo"}}})
        yield mock


def R(**kw):
    return {"owner": "octo", "repo": "demo", **kw}


REST = [
    # reads
    ("GET", "/repos/Octo/Demo", None, [("read", R(path="/repos/Octo/Demo"))]),
    ("HEAD", "/repos/octo/demo/contents/a.md", None, [("read", R(path="/repos/octo/demo/contents/a.md"))]),
    ("GET", "/user", None, [("read", {"owner": None, "repo": None, "path": "/user"})]),
    ("GET", "/api/v3/repos/octo/demo/pulls", None, [("read", R(path="/repos/octo/demo/pulls"))]),
    ("GET", "/repositories/42/issues", None, [("read", R(path="/repositories/42/issues"))]),
    # refs
    ("POST", "/repos/Octo/Demo/git/refs", {"ref": "refs/heads/agent/x", "sha": SHA},
     [("create_branch", R(branch="agent/x", sha=SHA))]),
    ("POST", "/repos/octo/demo/git/refs", {"ref": "refs/tags/v1", "sha": SHA},
     [("push_tag", R(tag="v1", sha=SHA, force=False, delete=False))]),
    ("POST", "/repos/octo/demo/git/refs", {"ref": "refs/notes/x", "sha": SHA}, [("unknown", R(ref="refs/notes/x"))]),
    ("PATCH", "/repos/octo/demo/git/refs/heads/main", {"sha": SHA, "force": True},
     [("push_commit", R(branch="main", files=None, force=True, sha=SHA))]),
    ("PATCH", "/repos/octo/demo/git/refs/heads%2Ffeature%2Fy", {"sha": SHA},
     [("push_commit", R(branch="feature/y", files=None, force=False, sha=SHA))]),
    ("PATCH", "/repos/octo/demo/git/refs/refs/heads/main", {"sha": SHA},
     [("push_commit", R(branch="main", files=None, force=False, sha=SHA))]),
    ("PATCH", "/api/v3/repos/OCTO/Demo//git/refs/heads/dev/", {"sha": SHA, "force": "yes"},
     [("push_commit", R(branch="dev", files=None, force=True, sha=SHA))]),
    ("DELETE", "/repos/octo/demo/git/refs/heads/main", None, [("delete_branch", R(branch="main"))]),
    ("DELETE", "/repos/octo/demo/git/refs/tags/v1", None,
     [("push_tag", R(tag="v1", sha=None, force=False, delete=True))]),
    ("PATCH", "/repos/octo/demo/git/refs/tags/v1", {"sha": SHA, "force": True},
     [("push_tag", R(tag="v1", sha=SHA, force=True, delete=False))]),
    # contents
    ("PUT", "/repos/octo/demo/contents/docs/a.md", {"message": "m", "content": "eA==", "branch": "agent/x"},
     [("push_commit", R(branch="agent/x", files=["docs/a.md"], force=False, default_branch=False))]),
    ("PUT", "/repos/octo/demo/contents/docs%2Fa.md", {"message": "m", "content": "eA=="},
     [("push_commit", R(branch="main", files=["docs/a.md"], force=False, default_branch=True))]),
    ("DELETE", "/repos/octo/demo/contents/a.md", {"message": "m", "sha": SHA, "branch": "refs/heads/dev"},
     [("push_commit", R(branch="dev", files=["a.md"], force=False, default_branch=False))]),
    ("PUT", "/repos/octo/demo/contents/a.md", {"message": "m", "content": "eA==", "branch": "heads/main"},
     [("push_commit", R(branch="main", files=["a.md"], force=False, default_branch=False))]),
    ("PUT", "/repositories/42/contents/a.md", {"message": "m", "content": "eA=="},
     [("push_commit", R(branch="main", files=["a.md"], force=False, default_branch=True))]),
    # merges and pulls
    ("POST", "/repos/octo/demo/merges", {"base": "main", "head": "agent/x"},
     [("push_commit", R(branch="main", files=None, force=False, head="agent/x"))]),
    ("POST", "/repos/octo/demo/merge-upstream", {"branch": "main"},
     [("push_commit", R(branch="main", files=None, force=False))]),
    ("POST", "/repos/octo/demo/branches/main/rename", {"new_name": "agent/main"},
     [("delete_branch", R(branch="main")), ("create_branch", R(branch="agent/main", sha=None, renamed_from="main"))]),
    ("POST", "/repos/octo/demo/pulls", {"head": "agent/x", "base": "main", "title": "T"},
     [("create_pr", R(head="agent/x", base="main", title="T"))]),
    ("POST", "/repos/octo/demo/pulls", {"head": "Fork:agent/x", "base": "main", "title": "T"},
     [("create_pr", R(head="agent/x", base="main", title="T", head_owner="fork"))]),
    ("PUT", "/repos/octo/demo/pulls/7/merge", {"merge_method": "squash"},
     [("merge_pr", R(number=7, base="main", head="agent/x"))]),
    ("PUT", "/repos/octo/demo/pulls/7/merge", None, [("merge_pr", R(number=7, base="main", head="agent/x"))]),
    ("PUT", "/repos/octo/demo/pulls/7/update-branch", None,
     [("push_commit", {"owner": "fork", "repo": "demo", "branch": "agent/x", "files": None, "force": False,
                       "number": 7})]),
    ("POST", "/repos/octo/demo/issues", {"title": "Bug"}, [("create_issue", R(title="Bug"))]),
    # every other documented write: named after its operationId (connectors/routes/github.json)
    ("POST", "/repos/Octo/demo/git/trees", {"tree": []}, [("git/create-tree", R(tree=[]))]),
    ("PATCH", "/repos/octo/demo/pulls/7", {"base": "main"},
     [("pulls/update", R(pull_number="7", base="main"))]),
    ("POST", "/user/repos", {"name": "x"}, [("repos/create-for-authenticated-user", {"name": "x"})]),
    # anything else
    ("POST", "/repos/octo/demo/no-such-thing", {},
     [("unknown", {"method": "POST", "path": "/repos/octo/demo/no-such-thing"})]),
    ("OPTIONS", "/repos/octo/demo", None, [("unknown", {"method": "OPTIONS", "path": "/repos/octo/demo"})]),
    ("POST", "/repositories/abc/issues", {"title": "x"},
     [("unknown", {"method": "POST", "path": "/repositories/abc/issues"})]),
]


@pytest.mark.parametrize(("method", "target", "body", "expected"), REST)
def test_recognise_rest(wire, upstream_facts, method, target, body, expected):
    actions = wire.recognise(call(method, target, body))
    assert [(a.action, a.payload) for a in actions] == expected
    assert all(a.system == "github" for a in actions)


def test_default_branch_lookup_uses_agents_credential(wire, upstream_facts):
    wire.recognise(call("PUT", "/repos/octo/demo/contents/a.md", {"message": "m"}))
    (lookup,) = upstream_facts.calls
    assert lookup.request.headers["authorization"] == "Bearer agent-token"


REST_REFUSED = [
    ("PUT", "/repos/octo/other/contents/a.md", b'{"message": "m"}', "default branch of octo/other"),
    ("PUT", "/repos/octo/demo/pulls/8/merge", b"", "pull request octo/demo#8"),
    ("GET", "/repositories/43", b"", "repository id 43"),
    ("POST", "/repos/octo/demo/git/refs", b"{nope", "body is not valid JSON"),
    ("POST", "/repos/octo/demo/pulls", b'{"head": "a", "head": "main"}', "duplicate key"),
    ("POST", "/repos/octo/demo/issues", b"\xc3\x28", "not UTF-8"),
    ("POST", "/repos/octo/demo/issues", b'"title"', "JSON object"),
]


@pytest.mark.parametrize(("method", "target", "raw", "reason"), REST_REFUSED)
def test_recognise_rest_refuses(wire, upstream_facts, method, target, raw, reason):
    upstream_facts.get(f"{API}/repos/octo/other", status=500, json={"message": "boom"})
    upstream_facts.get(f"{API}/repos/octo/demo/pulls/8", status=404, json={"message": "Not Found"})
    upstream_facts.get(f"{API}/repositories/43", status=404, json={"message": "Not Found"})
    with pytest.raises(Refusal) as caught:
        wire.recognise(call(method, target, raw=raw))
    assert reason in caught.value.reason


@responses.activate
def test_lookup_timeout_refuses(wire):
    import requests

    responses.get(f"{API}/repos/octo/demo", body=requests.ReadTimeout("slow"))
    with pytest.raises(Refusal, match="timed out"):
        wire.recognise(call("PUT", "/repos/octo/demo/contents/a.md", {"message": "m"}))


NODES = {
    "R_1": {"__typename": "Repository", "name": "Demo", "owner": {"login": "Octo"}},
    "REF_MAIN": {"__typename": "Ref", "name": "main", "prefix": "refs/heads/",
                 "repository": {"name": "demo", "owner": {"login": "octo"}}},
    "REF_TAG": {"__typename": "Ref", "name": "v1", "prefix": "refs/tags/",
                "repository": {"name": "demo", "owner": {"login": "octo"}}},
    "REF_NOTE": {"__typename": "Ref", "name": "commits", "prefix": "refs/notes/",
                 "repository": {"name": "demo", "owner": {"login": "octo"}}},
    "PR_7": {"__typename": "PullRequest", "number": 7, "baseRefName": "main", "headRefName": "agent/x",
             "repository": {"name": "demo", "owner": {"login": "octo"}},
             "headRepository": {"name": "demo", "owner": {"login": "fork"}}},
    "PR_8": {"__typename": "PullRequest", "number": 8, "baseRefName": "release", "headRefName": "agent/y",
             "repository": {"name": "demo", "owner": {"login": "octo"}},
             "headRepository": {"name": "demo", "owner": {"login": "octo"}}},
}


@pytest.fixture
def graphql_nodes():
    """The upstream's GraphQL ``nodes(ids:)``, answering from NODES (null for an unknown id)."""

    def answer(request):
        ids = json.loads(request.body)["variables"]["ids"]
        return 200, {}, json.dumps({"data": {"nodes": [NODES.get(i) for i in ids]}})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, f"{API}/graphql", callback=answer, content_type="application/json")
        yield mock


OD = {"owner": "octo", "repo": "demo"}
GRAPHQL = [
    ("query { viewer { login } }", None, [("read", {"owner": None, "repo": None, "path": "/graphql"})]),
    ("{ repository(owner: \"o\", name: \"r\") { id } }", None,
     [("read", {"owner": None, "repo": None, "path": "/graphql"})]),
    ("""mutation($input: CreateRefInput!) { createRef(input: $input) { ref { id } } }""",
     {"input": {"repositoryId": "R_1", "name": "refs/heads/agent/x", "oid": SHA}},
     [("create_branch", {**OD, "branch": "agent/x", "sha": SHA, "repository_id": "R_1"})]),
    ("""mutation { a: createRef(input: {repositoryId: "R_1", name: "refs/tags/v2", oid: "@SHA"}) { clientMutationId }
                   b: createIssue(input: {repositoryId: "R_1", title: "Hi"}) { clientMutationId } }""",
     None,
     [("push_tag", {**OD, "tag": "v2", "sha": SHA, "force": False, "delete": False, "repository_id": "R_1"}),
      ("create_issue", {**OD, "title": "Hi", "repository_id": "R_1"})]),
    ("""mutation($b: String!, $files: [FileAddition!]) { createCommitOnBranch(input: {
            branch: {repositoryNameWithOwner: "Octo/Demo", branchName: $b},
            fileChanges: {additions: $files, deletions: [{path: "old.txt"}]},
            message: {headline: "m"}, expectedHeadOid: "@SHA"}) { commit { oid } } }""",
     {"b": "main", "files": [{"path": "a.md", "contents": "eA=="}, {"path": "b.md", "contents": "eA=="}]},
     [("push_commit", {**OD, "branch": "main", "files": ["a.md", "b.md", "old.txt"], "force": False,
                       "sha": SHA})]),
    # a declared default is what GitHub uses when the variable is left out
    ("""mutation($b: String = "main") { createCommitOnBranch(input: {
            branch: {repositoryNameWithOwner: "octo/demo", branchName: $b}, message: {headline: "m"},
            expectedHeadOid: "@SHA"}) { commit { oid } } }""",
     {},
     [("push_commit", {**OD, "branch": "main", "files": [], "force": False, "sha": SHA})]),
    ("""mutation { createCommitOnBranch(input: {branch: {id: "REF_MAIN"}, message: {headline: "m"},
            fileChanges: {additions: [{path: "x", contents: ""}]}, expectedHeadOid: "@SHA"}) { commit { oid } } }""",
     None,
     [("push_commit", {**OD, "branch": "main", "files": ["x"], "force": False, "sha": SHA, "ref_id": "REF_MAIN"})]),
    ("""mutation { updateRef(input: {refId: "REF_MAIN", oid: "@SHA", force: true}) { clientMutationId } }""",
     None,
     [("push_commit", {**OD, "branch": "main", "files": None, "force": True, "sha": SHA, "ref_id": "REF_MAIN"})]),
    ("""mutation { updateRef(input: {refId: "REF_TAG", oid: "@SHA"}) { clientMutationId } }""",
     None,
     [("push_tag", {**OD, "tag": "v1", "sha": SHA, "force": False, "delete": False, "ref_id": "REF_TAG"})]),
    ("""mutation { updateRef(input: {refId: "REF_NOTE", oid: "@SHA"}) { clientMutationId } }""",
     None,
     [("unknown", {**OD, "ref": "refs/notes/commits", "ref_id": "REF_NOTE"})]),
    ("""mutation($u: [RefUpdate!]!) {
          updateRefs(input: {repositoryId: "R_1", refUpdates: $u}) { clientMutationId } }""",
     {"u": [{"name": "refs/heads/main", "afterOid": SHA, "beforeOid": "b" * 40},
            {"name": "refs/heads/gone", "afterOid": ZERO},
            {"name": "refs/heads/new", "afterOid": SHA, "beforeOid": ZERO, "force": True}]},
     [("push_commit", {**OD, "branch": "main", "files": None, "force": False, "sha": SHA, "repository_id": "R_1"}),
      ("delete_branch", {**OD, "branch": "gone", "repository_id": "R_1"}),
      ("create_branch", {**OD, "branch": "new", "sha": SHA, "repository_id": "R_1"})]),
    ("""mutation { deleteRef(input: {refId: "REF_MAIN"}) { clientMutationId } }""", None,
     [("delete_branch", {**OD, "branch": "main", "ref_id": "REF_MAIN"})]),
    ("""mutation { deleteRef(input: {refId: "REF_TAG"}) { clientMutationId } }""", None,
     [("push_tag", {**OD, "tag": "v1", "sha": None, "force": False, "delete": True, "ref_id": "REF_TAG"})]),
    ("""mutation { mergePullRequest(input: {pullRequestId: "PR_7"}) { clientMutationId }
                   enablePullRequestAutoMerge(input: {pullRequestId: "PR_8"}) { clientMutationId } }""", None,
     [("merge_pr", {**OD, "number": 7, "base": "main", "head": "agent/x", "pull_request_id": "PR_7"}),
      ("merge_pr", {**OD, "number": 8, "base": "release", "head": "agent/y", "pull_request_id": "PR_8"})]),
    # the merge queue: a PR enqueued is merged into its base
    ("""mutation { enqueuePullRequest(input: {pullRequestId: "PR_7", jump: true}) { clientMutationId } }""", None,
     [("merge_pr", {**OD, "number": 7, "base": "main", "head": "agent/x", "pull_request_id": "PR_7"})]),
    ("""mutation { mergeBranch(input: {repositoryId: "R_1", base: "main", head: "dev"}) { clientMutationId } }""",
     None,
     [("push_commit", {**OD, "branch": "main", "files": None, "force": False, "head": "dev",
                       "repository_id": "R_1"})]),
    ("""mutation { updatePullRequestBranch(input: {pullRequestId: "PR_7"}) { clientMutationId } }""", None,
     [("push_commit", {"owner": "fork", "repo": "demo", "branch": "agent/x", "files": None, "force": False,
                       "number": 7, "pull_request_id": "PR_7"})]),
    ("""mutation { createPullRequest(input: {repositoryId: "R_1", baseRefName: "main", headRefName: "agent/x",
                   title: "T"}) { clientMutationId } }""", None,
     [("create_pr", {**OD, "head": "agent/x", "base": "main", "title": "T", "repository_id": "R_1"})]),
    ("""mutation { revertPullRequest(input: {pullRequestId: "PR_7", title: "Revert"}) { clientMutationId } }""",
     None,
     [("create_pr", {**OD, "head": None, "base": "main", "title": "Revert", "number": 7,
                     "pull_request_id": "PR_7"})]),
    # fragments hide mutations one level down
    ("""mutation { ...M  ... on Mutation { deleteRef(input: {refId: "REF_MAIN"}) { clientMutationId } } }
        fragment M on Mutation { createIssue(input: {repositoryId: "R_1", title: "F"}) { clientMutationId } }""",
     None,
     [("create_issue", {**OD, "title": "F", "repository_id": "R_1"}),
      ("delete_branch", {**OD, "branch": "main", "ref_id": "REF_MAIN"})]),
    # every operation is judged, whichever one operationName picks
    ("""query Q { viewer { login } } mutation M { deleteRef(input: {refId: "REF_MAIN"}) { clientMutationId } }""",
     None,
     [("read", {"owner": None, "repo": None, "path": "/graphql"}),
      ("delete_branch", {**OD, "branch": "main", "ref_id": "REF_MAIN"})]),
    ("""mutation { addStar(input: {starrableId: "X"}) { clientMutationId } __typename }""", None,
     [("unknown", {"graphql_mutation": "addStar"})]),
    ("""subscription { x }""", None, [("unknown", {"graphql_operation": "subscription"})]),
    ("""mutation($n: String) { createRef(input: {name: $n, oid: "x", repositoryId: "R_1"}) { clientMutationId } }""",
     {}, [("unknown", {"ref": None, "repository_id": "R_1", **OD})]),
]


@pytest.mark.parametrize(("query", "variables", "expected"), GRAPHQL)
def test_recognise_graphql(wire, graphql_nodes, query, variables, expected):
    actions = wire.recognise(call("POST", "/graphql", gql(query.replace("@SHA", SHA), variables)))
    assert [(a.action, a.payload) for a in actions] == expected


def test_graphql_ids_resolved_in_one_lookup_with_agents_credential(wire, graphql_nodes):
    wire.recognise(call("POST", "/graphql", gql(
        'mutation { a: deleteRef(input: {refId: "REF_MAIN"}) { x } b: mergePullRequest(input: {pullRequestId: "PR_7"})'
        ' { x } c: createIssue(input: {repositoryId: "R_1", title: "t"}) { x } }')))
    (lookup,) = graphql_nodes.calls
    assert lookup.request.headers["authorization"] == "Bearer agent-token"
    assert json.loads(lookup.request.body)["variables"] == {"ids": ["PR_7", "REF_MAIN", "R_1"]}


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ('mutation { deleteRef(input: {refId: "NOPE"}) { x } }', "NOPE does not name a Ref"),
        ('mutation { deleteRef(input: {refId: "PR_7"}) { x } }', "PR_7 does not name a Ref"),
        ('mutation { mergePullRequest(input: {pullRequestId: "R_1"}) { x } }', "R_1 does not name a PullRequest"),
    ],
)
def test_graphql_unresolvable_ids_refuse(wire, graphql_nodes, query, reason):
    with pytest.raises(Refusal) as caught:
        wire.recognise(call("POST", "/graphql", gql(query)))
    assert reason in caught.value.reason


def test_graphql_lookup_failure_refuses(wire):
    with responses.RequestsMock() as mock:
        mock.post(f"{API}/graphql", json={"data": None, "errors": [{"message": "Bad credentials"}]})
        with pytest.raises(Refusal, match="could not resolve GraphQL ids REF_MAIN.*Bad credentials"):
            wire.recognise(call("POST", "/graphql", gql('mutation { deleteRef(input: {refId: "REF_MAIN"}) { x } }')))


def test_ghes_graphql_lookup_url():
    assert GitHubConnector("t", base_url="https://ghe.corp/api/v3").graphql_url == "https://ghe.corp/api/graphql"
    assert GitHubConnector("t").graphql_url == "https://api.github.com/graphql"


def test_graphql_on_ghes_path(wire, graphql_nodes):
    query = 'mutation { deleteRef(input: {refId: "REF_MAIN"}) { a } }'
    actions = wire.recognise(call("POST", "/api/v3/../graphql", gql(query), host="ghe.corp"))
    assert [(a.action, a.payload["branch"]) for a in actions] == [("delete_branch", "main")]


GRAPHQL_REFUSED = [
    (b'{"query": "mutation { createRef(input: {"}', "could not be parsed"),
    (b'{"query": ""}', "no query"),
    (b'{"variables": {}}', "no query"),
    (b'{"query": "fragment F on Mutation { a }"}', "no operation"),
    (b'{"query": "mutation { ...Nope }"}', "undefined fragment"),
    (b'{"query": "mutation { ...A } fragment A on Mutation { ...A }"}', "spreads itself"),
    (b'{"query": "query { a }", "variables": [1]}', "variables"),
    (b'[{"query": "query { a }"}]', "JSON object"),
    (b"not json", "body is not valid JSON"),
]


@pytest.mark.parametrize(("raw", "reason"), GRAPHQL_REFUSED)
def test_recognise_graphql_refuses(wire, raw, reason):
    with pytest.raises(Refusal) as caught:
        wire.recognise(call("POST", "/graphql", raw=raw))
    assert reason in caught.value.reason


GIT = [
    ("GET", "/Octo/Demo.git/info/refs?service=git-upload-pack",
     [("read", R(path="/Octo/Demo.git/info/refs"))]),
    ("GET", "/octo/demo/info/refs?service=git-receive-pack", [("read", R(path="/octo/demo/info/refs"))]),
    ("POST", "/octo/demo.git/git-upload-pack", [("read", R(path="/octo/demo.git/git-upload-pack"))]),
    ("GET", "/octo/demo/info/refs?service=git-evil-pack",
     [("unknown", {"method": "GET", "path": "/octo/demo/info/refs"})]),
    ("GET", "/octo/demo/pulls", [("read", R(path="/octo/demo/pulls"))]),
    ("POST", "/octo/demo/issues", [("unknown", {"method": "POST", "path": "/octo/demo/issues"})]),
]


@pytest.mark.parametrize(("method", "target", "expected"), GIT)
def test_recognise_git(wire, method, target, expected):
    actions = wire.recognise(call(method, target, host="github.com", raw=b"0000"))
    assert [(a.action, a.payload) for a in actions] == expected


def test_receive_pack_without_hook_refuses(wire):
    with pytest.raises(Refusal, match="git push recognition unavailable"):
        wire.recognise(call("POST", "/octo/demo.git/git-receive-pack", host="github.com", raw=b"0000"))


def test_receive_pack_goes_to_the_hook():
    seen = []

    def recognise_push(call, owner, repo):
        seen.append((call.path, owner, repo))
        return [ActionRequest(system="github", action="delete_branch", payload={"owner": owner, "repo": repo,
                                                                                "branch": "main"})]

    wire = GitHubWire(Config(), environ={}, git_push_recogniser=recognise_push)
    actions = wire.recognise(call("POST", "/Octo/Demo.git/git-receive-pack", host="github.com", raw=b"x"))
    assert seen == [("/Octo/Demo.git/git-receive-pack", "octo", "demo")]
    assert [a.action for a in actions] == ["delete_branch"]


def test_receive_pack_refusal_goes_to_the_hook():
    def refuse_push(call, message, status):
        return HttpAnswer(200, {"content-type": "application/x-git-receive-pack-result"}, message.encode())

    wire = GitHubWire(Config(), environ={}, git_push_refuser=refuse_push)
    answer = wire.refuse(call("POST", "/octo/demo/git-receive-pack", host="github.com", raw=b"x"),
                         "Blocked by Enact: no", 403)
    assert answer == HttpAnswer(200, {"content-type": "application/x-git-receive-pack-result"},
                                b"Blocked by Enact: no")


def test_refuse_rest(wire):
    answer = wire.refuse(call("POST", "/repos/o/r/issues", {"title": "x"}), "Blocked by Enact: no", 403)
    assert answer.status == 403
    assert answer.headers["content-type"].startswith("application/json")
    assert json.loads(answer.body) == {"message": "Blocked by Enact: no",
                                       "documentation_url": "https://docs.github.com/rest"}


def test_refuse_graphql(wire):
    answer = wire.refuse(call("POST", "/graphql", gql("mutation { a }")), "Blocked by Enact: no", 403)
    assert answer.status == 200
    assert json.loads(answer.body) == {"data": None, "errors": [{"type": "FORBIDDEN",
                                                                 "message": "Blocked by Enact: no"}]}


def test_refuse_git_fetch(wire):
    answer = wire.refuse(call("GET", "/o/r/info/refs?service=git-upload-pack", host="github.com"),
                         "Blocked by Enact: no", 403)
    assert answer.status == 403
    assert answer.body == b"Blocked by Enact: no\n"


def test_upstreams(wire):
    assert wire.upstream(call("GET", "/repos/o/r")) == Upstream("http", "gh.test", 80)
    assert wire.upstream(call("GET", "/o/r/info/refs", host="github.com")) == Upstream("http", "git.test", 8081)
    assert wire.upstream(call("GET", "/api/v3/repos/o/r", host="github.com")) == Upstream("http", "gh.test", 80)


def test_hosts_and_protocol(wire):
    assert isinstance(wire, Wire)
    assert wire.hosts == frozenset({"api.github.com", "uploads.github.com", "github.com"})


def test_release_asset_uploads_are_guarded_and_go_to_the_uploads_upstream(wire):
    upload = call("POST", "/repos/Acme/App/releases/7/assets?name=app.tar.gz", host="uploads.github.com")
    upload = type(upload)(**{**upload.__dict__, "body": b"\x1f\x8b binary"})
    (action,) = wire.recognise(upload)
    assert action.system == "github" and action.request.host == "uploads.github.com"
    assert action.action != "read"  # a write: named or unknown, refused unless a workflow allows it
    assert wire.upstream(upload) == wire.upstream(call("POST", "/repos/o/r/issues"))  # a test upstream serves both
    real = GitHubWire(Config(), environ={})
    assert real.upstream(upload) == Upstream("https", "uploads.github.com", 443)
    assert real.upstream(call("POST", "/repos/o/r/issues")) == Upstream("https", "api.github.com", 443)
    own = GitHubWire(Config(uploads_upstream="http://up.test:9"), environ={})
    assert own.upstream(upload) == Upstream("http", "up.test", 9)


def test_credential_headers():
    wire = GitHubWire(Config(token_env="GH"), environ={"GH": "ghs_ours"})
    assert wire.credential_headers(call("GET", "/repos/o/r")) == {"authorization": "Bearer ghs_ours"}
    basic = wire.credential_headers(call("GET", "/o/r/info/refs", host="github.com"))["authorization"]
    assert base64.b64decode(basic.removeprefix("Basic ")) == b"x-access-token:ghs_ours"
    assert "ghs_ours" not in repr(wire)


def test_no_credential_headers_without_token_env(wire):
    assert wire.credential_headers(call("GET", "/repos/o/r")) == {}


def test_missing_token_env_is_an_error():
    with pytest.raises(ValueError, match="GH_TOKEN"):
        GitHubWire(Config(token_env="GH_TOKEN"), environ={})


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("token abc", "abc"),
        ("Bearer abc", "abc"),
        ("Basic " + base64.b64encode(b"x-access-token:abc").decode(), "abc"),
    ],
)
def test_lookup_systems_uses_agents_credential(wire, header, token):
    with responses.RequestsMock() as mock:
        mock.get(f"{API}/repos/o/r", json={"default_branch": "main"},
                 match=[matchers.header_matcher({"authorization": f"Bearer {token}"})])
        connector = wire.lookup_systems(call("GET", "/", headers={"Authorization": header}))["github"]
        assert isinstance(connector, GitHubConnector)
        assert connector.get_default_branch("o", "r") == "main"


def test_graphql_document_in_a_get_is_judged(wire, graphql_nodes):
    from urllib.parse import quote

    target = "/graphql?query=" + quote('mutation { deleteRef(input: {refId: "REF_MAIN"}) { x } }')
    actions = wire.recognise(call("GET", target))
    assert [(a.action, a.payload["branch"]) for a in actions] == [("delete_branch", "main")]


@pytest.mark.parametrize(
    ("host", "path", "content", "encoding", "expected"),
    [
        ("api.github.com", b"/repos/Octo/Demo/git/refs/heads%2Fagent%2Fx", b'{"sha": "1"}', None,
         ("push_commit", "agent/x")),
        ("api.github.com", b"/api/v3/repos/octo/demo//git/refs/heads/main/", b'{"force": true}', None,
         ("push_commit", "main")),
        ("api.github.com", b"/repos/octo/demo/git/refs/heads/x/../main", b"{}", None, ("push_commit", "main")),
        ("api.github.com", b"/repos/octo/demo/git/refs", b'{"ref": "refs/heads/agent/y", "sha": "1"}', "gzip",
         ("create_branch", "agent/y")),
    ],
)
def test_recognise_from_mitmproxy_flow(wire, host, path, content, encoding, expected):
    import gzip

    headers = http.Headers(host=host, content_type="application/json")
    if encoding:
        headers["content-encoding"] = encoding
        content = gzip.compress(content)
    request = tutils.treq(host=host, port=443, scheme=b"https", method=b"PATCH" if b"heads" in path else b"POST",
                          path=path, headers=headers, content=content)
    flow = tflow.tflow(req=request)
    flow.client_conn.sni = host
    actions = wire.recognise(call_from_flow(flow, LIMIT))
    assert [(a.action, a.payload["branch"]) for a in actions] == [expected]
    assert actions[0].payload["owner"] == "octo"
