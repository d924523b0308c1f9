"""The route tables generated from the vendors' descriptions, driven by the tables themselves.

Every documented write operation (and every HubSpot operation) is synthesised into a concrete request,
run through the real normaliser (``build_call``) and the connector's recogniser, and must come out as
its named action or as its semantic action, never as ``unknown`` nor as another operation.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import quote

import pytest
import responses

from connectors import _routes
from connectors import github as github_module
from connectors import hubspot as hubspot_module
from connectors.base import Refusal
from connectors.github import Config as GitHubConfig
from connectors.github import Wire as GitHubWire
from connectors.hubspot import Config as HubSpotConfig
from connectors.hubspot import Wire as HubSpotWire
from enact_proxy.httpcall import build_call
from policies.access import contractor_cannot_write_pii
from tests.conftest import make_context

LIMIT = 1024 * 1024
API = "http://gh.test"
SHA = "a" * 40
GITHUB = _routes.table("github")
HUBSPOT = _routes.table("hubspot")


def call(method: str, host: str, target: str, body: Any = None, raw: bytes | None = None,
         content_type: str = "application/json"):
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return build_call(method, host, target, {"authorization": "Bearer agent", "content-type": content_type}, data,
                      LIMIT)


def fill(template: str, values: dict[str, str]) -> str:
    """A concrete request target: each parameter percent-encoded as a client would send it."""
    return re.sub(r"\{([^}]+)\}", lambda m: quote(values[m.group(1)], safe="@"), template)


# --- GitHub ---------------------------------------------------------------------------------------

GITHUB_SEMANTIC_BODIES: dict[str, Any] = {
    "git/create-ref": {"ref": "refs/heads/agent/x", "sha": SHA},
    "git/update-ref": {"sha": SHA},
    "repos/create-or-update-file-contents": {"message": "m", "content": "eA==", "branch": "agent/x"},
    "repos/delete-file": {"message": "m", "sha": SHA, "branch": "agent/x"},
    "repos/merge": {"base": "agent/x", "head": "feature"},
    "repos/merge-upstream": {"branch": "agent/x"},
    "repos/rename-branch": {"new_name": "agent/y"},
    "pulls/create": {"head": "agent/x", "base": "main", "title": "t"},
    "code-scanning/commit-autofix": {"target_ref": "refs/heads/agent/x"},
    "issues/create": {"title": "t"},
}


def github_value(name: str, op_id: str) -> str:
    if name == "owner":
        return "Octo"
    if name == "repo":
        return "Demo"
    if name == "ref":
        return "heads/agent/x" if op_id.startswith("git/") else "agent/x"
    if name in ("branch", "path", "name", "basehead"):
        return "agent/x" if name != "path" else "docs/a.md"
    if name.endswith(("_number", "_id")) or name == "id":
        return "7"
    return f"v-{name}"


@pytest.fixture
def github_wire():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{API}/repos/octo/demo", json={"default_branch": "main", "full_name": "Octo/Demo"})
        mock.get(f"{API}/repositories/42", json={"full_name": "Octo/Demo"})
        mock.get(f"{API}/repos/octo/demo/pulls/7",
                 json={"base": {"ref": "main"}, "head": {"ref": "agent/x", "repo": {"full_name": "Octo/Demo"}}})
        yield GitHubWire(GitHubConfig(upstream=API, git_upstream="http://git.test"), environ={})


def github_request(route: _routes.Route):
    values = {p: github_value(p, route.action) for p in route.params}
    target = fill(route.template, values)
    if route.raw_body:
        return call(route.method, "api.github.com", target, raw=b"\x00\xffbinary", content_type="text/plain"), values
    body = GITHUB_SEMANTIC_BODIES.get(route.action, {} if route.semantic else {"note": "hello"})
    return call(route.method, "api.github.com", target, body), values


def test_github_table_is_every_write_operation_of_the_description():
    counts = _routes.counts("github")
    assert counts["writes"] == len(GITHUB.routes) and counts["operations"] == counts["writes"] + counts["reads"]
    assert len(GITHUB.routes) > 500
    assert all(r.method not in ("GET", "HEAD") for r in GITHUB.routes)
    assert len({r.action for r in GITHUB.routes}) == len(GITHUB.routes)  # operationIds are unique
    assert GITHUB.shadowed == []
    assert set(GITHUB.semantic_names) == set(_GITHUB_SEMANTIC_IDS)


_GITHUB_SEMANTIC_IDS = {
    "git/create-ref", "git/update-ref", "git/delete-ref", "repos/create-or-update-file-contents",
    "repos/delete-file", "repos/merge", "repos/merge-upstream", "repos/rename-branch", "pulls/create",
    "pulls/merge", "pulls/merge-async", "pulls/update-branch", "code-scanning/commit-autofix", "issues/create",
}


@pytest.mark.parametrize("route", GITHUB.routes, ids=lambda r: f"{r.method} {r.template}")
def test_every_github_write_is_its_named_or_semantic_action(github_wire, route):
    request, values = github_request(route)
    actions = github_wire.recognise(request)
    names = [a.action for a in actions]
    if route.semantic:
        assert names and set(names) <= set(route.semantic), names
        return
    assert names == [route.action]
    payload = actions[0].payload
    for name, value in values.items():
        assert payload[name] == (value.lower() if name in ("owner", "repo") else value)
    if route.raw_body:
        assert payload["body_bytes"] == len(b"\x00\xffbinary") and "note" not in payload
    else:
        assert payload["note"] == "hello"


def test_github_actions_include_every_named_operation():
    assert GITHUB.names <= github_module.ACTIONS
    assert {"issues/create-comment", "issues/add-labels", "pulls/create-review"} <= github_module.ACTIONS
    assert not (set(GITHUB.semantic_names) & github_module.ACTIONS)  # pulls/merge is only merge_pr


# Route forms of the semantic actions (SPEC §4, issue 12): each must be its semantic action.
GITHUB_FORMS = [
    ("PUT", "/repos/octo/demo/pulls/7/merge-async", {}, ["merge_pr"]),
    ("PUT", "/api/v3/repos/Octo/Demo/pulls/7/merge-async", {"merge_method": "squash"}, ["merge_pr"]),
    ("PUT", "/repositories/42/pulls/7/merge", {}, ["merge_pr"]),
    ("PUT", "/repositories/42/pulls/7/merge-async", {}, ["merge_pr"]),
    ("PUT", "/repos/octo/demo/pulls/7/update-branch", {}, ["push_commit"]),
    ("POST", "/repos/octo/demo/merge-upstream", {"branch": "main"}, ["push_commit"]),
    ("POST", "/repositories/42/merge-upstream", {"branch": "main"}, ["push_commit"]),
    ("POST", "/repos/octo/demo/branches/main/rename", {"new_name": "x"}, ["delete_branch", "create_branch"]),
    ("POST", "/repos/octo/demo/branches/agent%2Fx/rename", {"new_name": "x"}, ["delete_branch", "create_branch"]),
    ("PATCH", "/repositories/42/git/refs/heads%2Fmain", {"sha": SHA}, ["push_commit"]),
    ("PUT", "/repositories/42/contents/a.md", {"message": "m", "content": "eA==", "branch": "main"},
     ["push_commit"]),
    ("POST", "/repos/octo/demo/code-scanning/alerts/3/autofix/commits", {"target_ref": "refs/heads/main"},
     ["push_commit"]),
]


@pytest.mark.parametrize(("method", "target", "body", "expected"), GITHUB_FORMS)
def test_github_semantic_route_forms(github_wire, method, target, body, expected):
    actions = github_wire.recognise(call(method, "api.github.com", target, body))
    assert [a.action for a in actions] == expected
    assert all(a.payload["owner"] == "octo" and a.payload["repo"] == "demo" for a in actions)


def test_github_merge_async_payload_names_base_and_head(github_wire):
    (action,) = github_wire.recognise(call("PUT", "api.github.com", "/repos/octo/demo/pulls/7/merge-async", {}))
    assert action.payload == {"owner": "octo", "repo": "demo", "number": 7, "base": "main", "head": "agent/x"}


def test_github_autofix_commit_names_its_branch(github_wire):
    (action,) = github_wire.recognise(call("POST", "api.github.com",
                                           "/repos/octo/demo/code-scanning/alerts/3/autofix/commits",
                                           {"target_ref": "refs/heads/main", "message": "fix"}))
    assert action.payload["branch"] == "main"


# A semantic route the recogniser cannot read is unknown (refused by default), never a named action.
GITHUB_UNREADABLE = [
    ("PUT", "/repos/octo/demo/pulls/x7/merge", {}),
    ("PUT", "/repos/octo/demo/pulls/x7/merge-async", {}),
    ("PATCH", "/repos/octo/demo/git/refs/notes/commits", {"sha": SHA}),
    ("DELETE", "/repos/octo/demo/git/refs/pull/1/head", None),
]


@pytest.mark.parametrize(("method", "target", "body"), GITHUB_UNREADABLE)
def test_github_unreadable_semantic_forms_stay_unknown(github_wire, method, target, body):
    (action,) = github_wire.recognise(call(method, "api.github.com", target, body))
    assert action.action == "unknown"


@pytest.mark.parametrize(("method", "target"), [
    ("POST", "/repos/octo/demo/no-such-operation"),
    ("POST", "/repos/octo/demo/issues/7/comments/extra"),
    ("PUT", "/repos/octo/demo/issues/7/comments"),  # documented for POST only
    ("POST", "/"),
    ("DELETE", "/gists"),
    ("OPTIONS", "/repos/octo/demo/issues/7/comments"),
])
def test_github_undocumented_stays_unknown(github_wire, method, target):
    (action,) = github_wire.recognise(call(method, "api.github.com", target, {}))
    assert action.action == "unknown"


def test_github_named_action_after_normalisation(github_wire):
    target = "/api/v3//repos/OCTO/./Demo/issues/%37/comments/"
    (action,) = github_wire.recognise(call("POST", "api.github.com", target, {"body": "hi"}))
    assert action.action == "issues/create-comment"
    assert action.payload == {"owner": "octo", "repo": "demo", "issue_number": "7", "body": "hi"}


def test_github_parameter_holding_a_slash(github_wire):
    (action,) = github_wire.recognise(call("DELETE", "api.github.com", "/repos/octo/demo/labels/area%2Fcore", None))
    assert action.action == "issues/delete-label" and action.payload["name"] == "area/core"


def test_github_alias_by_repository_id_gets_the_named_action(github_wire):
    (action,) = github_wire.recognise(call("POST", "api.github.com", "/repositories/42/issues/7/comments",
                                           {"body": "hi"}))
    assert action.action == "issues/create-comment"
    assert action.payload == {"owner": "octo", "repo": "demo", "issue_number": "7", "body": "hi"}


def test_github_named_body_must_be_json(github_wire):
    with pytest.raises(Refusal, match="not valid JSON"):
        github_wire.recognise(call("POST", "api.github.com", "/repos/o/r/issues/7/comments", raw=b"{nope"))


def test_a_body_field_named_like_a_parameter_is_kept_apart(github_wire):
    (action,) = github_wire.recognise(call("PATCH", "api.github.com", "/repos/octo/demo/actions/variables/OLD",
                                           {"name": "NEW", "value": "1"}))
    assert action.action == "actions/update-repo-variable"
    assert action.payload == {"owner": "octo", "repo": "demo", "name": "OLD", "body.name": "NEW", "value": "1"}


def test_a_body_field_hidden_behind_a_parameter_name_still_shows_its_properties(hubspot_wire):
    body = {"companyId": "x", "properties": {"phone": "555"}}
    (action,) = hubspot_wire.recognise(call("PATCH", "api.hubapi.com", "/crm/v3/objects/companies/7", body))
    assert action.payload == {"companyId": "7", "body.companyId": "x", "properties": {"phone": "555"}}


@pytest.mark.parametrize("body", [{"name": "a", "body.name": "b"}, {"body.name": "b", "name": "a"}])
def test_fields_that_would_share_a_key_are_refused(github_wire, body):
    with pytest.raises(Refusal, match="cannot be told apart"):
        github_wire.recognise(call("PATCH", "api.github.com", "/repos/octo/demo/actions/variables/OLD", body))


def test_a_json_body_that_is_not_an_object(github_wire):
    (action,) = github_wire.recognise(call("POST", "api.github.com", "/repos/octo/demo/issues/7/labels",
                                           ["bug", "p1"]))
    assert action.action == "issues/add-labels"
    assert action.payload == {"owner": "octo", "repo": "demo", "issue_number": "7", "body": ["bug", "p1"]}


# --- HubSpot --------------------------------------------------------------------------------------

JANE = {"properties": {"email": "jane@acme.com"}}
LEGACY_JANE = {"properties": [{"property": "email", "value": "jane@acme.com"}]}
HUBSPOT_SEMANTIC_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/crm/objects/contacts"): JANE,
    ("POST", "/crm/objects/contacts/batch/create"): {"inputs": [JANE]},
    ("POST", "/crm/objects/contacts/batch/upsert"): {"inputs": [{**JANE, "id": "jane@acme.com",
                                                                  "idProperty": "email"}]},
    ("PATCH", "/crm/objects/contacts/*"): JANE,
    ("POST", "/crm/objects/contacts/batch/update"): {"inputs": [{**JANE, "id": "1"}]},
    ("POST", "/crm/objects/contacts/search"): {"filterGroups": []},
    ("POST", "/crm/objects/contacts/batch/read"): {"inputs": [{"id": "1"}]},
    ("POST", "/crm/objects/deals"): {"properties": {"dealname": "D"}},
    ("POST", "/crm/objects/deals/batch/create"): {"inputs": [{"properties": {}}]},
    ("POST", "/crm/objects/deals/batch/upsert"): {"inputs": [{"properties": {}, "id": "x", "idProperty": "k"}]},
    ("PATCH", "/crm/objects/deals/*"): {"properties": {}},
    ("POST", "/crm/objects/deals/batch/update"): {"inputs": [{"id": "1", "properties": {}}]},
    ("POST", "/crm/objects/tasks"): {"properties": {}},
    ("POST", "/crm/objects/tasks/batch/create"): {"inputs": [{"properties": {}}]},
    ("POST", "/crm/objects/tasks/batch/upsert"): {"inputs": [{"properties": {}, "id": "x", "idProperty": "k"}]},
    ("POST", "/contacts/contact"): LEGACY_JANE,
    ("POST", "/contacts/contact/createOrUpdate/email/*"): LEGACY_JANE,
    ("POST", "/contacts/contact/batch"): [{"email": "jane@acme.com", "properties": []}],
    ("POST", "/contacts/contact/vid/*/profile"): LEGACY_JANE,
    ("POST", "/contacts/contact/email/*/profile"): LEGACY_JANE,
    ("POST", "/deals/deal"): {"properties": []},
    ("PUT", "/deals/deal/*"): {"properties": []},
    ("POST", "/deals/batch-async/update"): [{"objectId": 1, "properties": [{"name": "amount", "value": "5"}]}],
}


def hubspot_value(name: str) -> str:
    if name.lower().endswith("objecttype"):
        return "p_widgets"  # a custom object: the generic operations stay generic
    if "email" in name.lower():
        return "jane@acme.com"
    return "7"


def hubspot_request(route: _routes.Route):
    values = {p: hubspot_value(p) for p in route.params}
    target = fill(route.template, values)
    if route.raw_body:
        return call(route.method, "api.hubapi.com", target, raw=b"--b\r\n", content_type="multipart/form-data"), values
    if route.method in ("GET", "HEAD"):
        return call(route.method, "api.hubapi.com", target), values
    key = (route.method, _routes.versionless(route.template))
    body = HUBSPOT_SEMANTIC_BODIES.get(key, {"note": "hello"}) if route.semantic else {"note": "hello"}
    return call(route.method, "api.hubapi.com", target, body), values


@pytest.fixture
def hubspot_wire():
    # A recogniser that looks an object up (an upsert naming a contact) is told it does not exist;
    # nothing else answers, so no test dials out.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(re.compile(r"http://hs\.test/.*"), status=404,
                 json={"status": "error", "message": "not found", "category": "OBJECT_NOT_FOUND"})
        # HubSpot's batch read answers 207 with no results (and an error per id) for ids it does not have.
        mock.post(re.compile(r"http://hs\.test/crm/v3/objects/\w+/batch/read"), status=207,
                  json={"status": "COMPLETE", "results": [], "numErrors": 1, "errors": []})
        yield HubSpotWire(HubSpotConfig(upstream="http://hs.test"), environ={})


def test_hubspot_table_covers_the_collection_and_the_legacy_routes():
    counts = _routes.counts("hubspot")
    assert counts["templates"] == len(HUBSPOT.routes) > 3000
    assert counts["operations"] == len(HUBSPOT.names) + len(HUBSPOT.semantic_names)
    for method, template in [("POST", "/contacts/v1/contact"), ("POST", "/engagements/v1/engagements"),
                             ("PUT", "/deals/v1/deal/{dealId}"), ("POST", "/crm/v3/objects/notes"),
                             ("POST", "/crm/objects/2026-03/notes"), ("POST", "/crm/objects/2026-09-beta/notes")]:
        assert any(r.method == method and r.template == template for r in HUBSPOT.routes), (method, template)


def test_hubspot_names_are_stable_across_versions():
    names = {r.action for r in HUBSPOT.routes if r.template.endswith("/notes") and r.method == "POST"}
    assert names == {"post-/crm/objects/notes"}
    # an operation documented by object type id has the name of its object
    assert any(r.template == "/crm/v3/objects/deals/{dealId}" and r.action == "patch-/crm/objects/deals/*"
               for r in HUBSPOT.routes)


@pytest.mark.parametrize("route", HUBSPOT.routes, ids=lambda r: f"{r.method} {r.template}")
def test_every_hubspot_operation_is_its_named_or_semantic_action(hubspot_wire, route):
    request, values = hubspot_request(route)
    try:
        actions = hubspot_wire.recognise(request)
    except Refusal:
        # Only a semantic recogniser that asks the upstream (an upsert naming an existing contact) may
        # refuse here, and a refusal is never a named action.
        assert route.semantic
        return
    names = [a.action for a in actions]
    if route.semantic:
        known = set(route.semantic) & hubspot_module.ACTIONS
        # A semantic action the recogniser does not read yet (update_contact, before the upsert work
        # lands) is unknown: refused by default, and never the named operation.
        assert names and set(names) <= (known or {"unknown"}), names
        return
    assert names == [route.action]
    matched = HUBSPOT.match(route.method, _routes.hubspot_object_path(request.path))
    assert matched is not None
    if matched.route.template != route.template:
        # another template of the same operation and shape (``{folderId}`` / ``{folderPath}``) matched
        # first; the payload names the parameters as that one does
        assert matched.route.action == route.action
        return
    payload = actions[0].payload
    for name, value in values.items():
        assert payload[name] == value
    if route.method not in ("GET", "HEAD") and not route.raw_body:
        assert payload["note"] == "hello"


def test_hubspot_actions_include_every_named_operation():
    assert HUBSPOT.names <= hubspot_module.ACTIONS
    assert {"post-/crm/objects/notes", "get-/crm/objects/deals/*", "post-/engagements/engagements"} \
        <= hubspot_module.ACTIONS


HUBSPOT_FORMS = [
    ("POST", "/crm/objects/v3/contacts", JANE, ["create_contact"]),
    ("POST", "/crm/objects/v3/0-1/batch/create", {"inputs": [JANE]}, ["create_contact"]),
    ("POST", "/crm/objects/2026-03/contacts", JANE, ["create_contact"]),
    ("POST", "/crm/objects/2026-09-beta/0-1", JANE, ["create_contact"]),
    ("POST", "/crm/v3/objects/0-3", {"properties": {}}, ["create_deal"]),
    ("PATCH", "/crm/objects/2026-03/0-3/5", {"properties": {}}, ["update_deal"]),
    ("POST", "/crm/v3/objects/0-27/batch/upsert", {"inputs": [{"properties": {}, "id": "k", "idProperty": "p"}]},
     ["create_task"]),
    ("POST", "/crm/objects/v3/tasks", {"properties": {}}, ["create_task"]),
    ("POST", "/contacts/v1/contact/createOrUpdate/email/jane@acme.com", LEGACY_JANE, ["create_contact"]),
    ("POST", "/engagements/v1/engagements", {"engagement": {"type": "TASK"}}, ["create_task"]),
    ("PUT", "/deals/v1/deal/5", {"properties": []}, ["update_deal"]),
    ("POST", "/deals/v1/batch-async/update", [{"objectId": 5, "properties": []}, {"objectId": 6, "properties": []}],
     ["update_deal", "update_deal"]),
]


@pytest.mark.parametrize(("method", "target", "body", "expected"), HUBSPOT_FORMS)
def test_hubspot_semantic_route_forms(hubspot_wire, method, target, body, expected):
    actions = hubspot_wire.recognise(call(method, "api.hubapi.com", target, body))
    assert [a.action for a in actions] == expected


@pytest.mark.parametrize(("method", "target", "body"), [
    ("PATCH", "/crm/v3/objects/contact/5", JANE),       # singular spelling of contacts
    ("PATCH", "/crm/v3/objects/0-1/5", JANE),           # by object type id
    ("PATCH", "/crm/objects/2026-09-beta/CONTACTS/5", JANE),
    ("POST", "/crm/v3/objects/0-1/batch/update", {"inputs": [{**JANE, "id": "5"}]}),
])
def test_hubspot_contact_update_never_passes_as_the_generic_operation(hubspot_wire, method, target, body):
    (action,) = hubspot_wire.recognise(call(method, "api.hubapi.com", target, body))
    assert action.action in ({"update_contact"} & hubspot_module.ACTIONS) | {"unknown"}


@pytest.mark.parametrize(("method", "target"), [
    ("POST", "/crm/v3/no-such-api"),
    ("POST", "/crm/objects/2031-03/notes"),  # a version HubSpot has not documented
    ("DELETE", "/crm/v3/objects/notes"),
    ("POST", "/"),
])
def test_hubspot_undocumented_stays_unknown(hubspot_wire, method, target):
    (action,) = hubspot_wire.recognise(call(method, "api.hubapi.com", target, {}))
    assert action.action == "unknown"


def test_hubspot_named_payload(hubspot_wire):
    body = {"properties": {"hs_note_body": "x", "phone": "1"}, "associations": []}
    (action,) = hubspot_wire.recognise(call("PATCH", "api.hubapi.com", "/crm/objects/2026-03/0-46/77", body))
    assert action.action == "patch-/crm/objects/notes/*"
    assert action.payload == {"noteId": "77", **body}  # properties where the PII policy looks for them


# --- the matcher ----------------------------------------------------------------------------------

def test_matcher_prefers_literal_then_parameter():
    table = _routes.RouteTable([
        _routes.Route("POST", "/a/{x}/c", "param", (), False, ("x",)),
        _routes.Route("POST", "/a/b/c", "literal", (), False, ()),
        _routes.Route("POST", "/a/{path}", "multi", (), False, ("path",)),
    ])
    assert table.match("POST", "/a/b/c").route.action == "literal"
    assert table.match("POST", "/a/z/c").route.action == "param"
    found = table.match("POST", "/a/z/y/c/d")
    assert found.route.action == "multi" and found.params == {"path": "z/y/c/d"}
    assert table.match("PUT", "/a/b/c") is None


def test_matcher_is_bounded_on_hostile_paths():
    table = _routes.RouteTable([
        _routes.Route("POST", "/r/{path}/x/{ref}/y/{name}/z", "deep", (), False, ("path", "ref", "name")),
    ])
    hostile = "/r/" + "/".join(["x", "y"] * 30) + "/q"
    started = time.perf_counter()
    for _ in range(10):
        assert table.match("POST", hostile) is None
    assert table.match("POST", "/r/a/x/b/y/c/z").params == {"path": "a", "ref": "b", "name": "c"}
    assert table.match("POST", "/r/" + "/".join(["a"] * 80) + "/x/b/y/c/z") is None  # over MAX_SEGMENTS
    assert time.perf_counter() - started < 5  # generous: exponential backtracking would never finish


def test_hubspot_object_path():
    assert _routes.hubspot_object_path("/crm/v3/objects/0-1/5") == "/crm/v3/objects/contacts/5"
    assert _routes.hubspot_object_path("/crm/objects/2026-03/Task") == "/crm/objects/2026-03/tasks"
    assert _routes.hubspot_object_path("/crm/v3/objects/2-123") == "/crm/v3/objects/2-123"
    assert _routes.hubspot_object_path("/crm/v3/objectsX/0-1") == "/crm/v3/objectsX/0-1"


@pytest.mark.parametrize(("target", "body"), [
    ("/crm/v3/objects/companies", {"properties": {"name": "Acme", "phone": "555"}}),
    ("/crm/objects/2026-03/companies/batch/create", {"inputs": [{"properties": {"name": "A"}},
                                                              {"properties": {"Phone": "555"}}]}),
])
def test_pii_policy_sees_the_properties_of_a_named_operation(hubspot_wire, target, body):
    (action,) = hubspot_wire.recognise(call("POST", "api.hubapi.com", target, body))
    policy = contractor_cannot_write_pii(pii_fields=["phone"])
    ctx = make_context(f"hubspot.{action.action}", action.payload, roles=("contractor",))
    result = policy(ctx)
    assert not result.passed and "phone" in result.reason.lower()


@pytest.mark.parametrize("system", ["github", "hubspot"])
def test_no_spelling_of_a_semantic_route_is_a_named_action(system):
    """Upper-casing any literal segment of a semantic route (a router that ignored case would still
    run it) never reaches a named operation: the request stays unknown."""
    routes = _routes.table(system)
    checked = 0
    for route in routes.routes:
        if not route.semantic:
            continue
        segments = route.template.strip("/").split("/")
        for i, segment in enumerate(segments):
            if segment.startswith("{") or segment.upper() == segment:
                continue
            variant = "/" + "/".join(
                s.upper() if j == i else ("x7" if s.startswith("{") else s) for j, s in enumerate(segments))
            if system == "hubspot":
                variant = _routes.hubspot_object_path(variant)
            found = routes.match(route.method, variant)
            semantic = routes.semantic_match(route.method, variant)
            assert found is None or semantic is not None, (route.template, variant, found.route.action)
            checked += 1
    assert checked > 20
