"""scripts/gen_routes.py on small descriptions shaped like the vendors' (the real inputs are not in the repo)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from connectors import _routes

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gen_routes.py"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_routes", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_routes"] = module
    spec.loader.exec_module(module)
    return module


def _op(op_id: str, content: str | None = "application/json") -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id}
    if content:
        op["requestBody"] = {"content": {content: {"schema": {}}}}
    return op


def _github_spec(*extra: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op_id in sorted(_semantic_ids()):
        paths.setdefault(f"/x/{op_id}", {})["post"] = _op(op_id)
    for path, method, op in extra:
        paths.setdefault(path, {})[method] = op
    return {"openapi": "3.0.3", "info": {"title": "GitHub v3 REST API", "version": "1.1.4"}, "paths": paths}


def _semantic_ids() -> set[str]:
    return {r.action for r in _routes.table("github").routes if r.semantic}


def test_github_table(gen, tmp_path):
    path = tmp_path / "api.github.com.json"
    path.write_text(json.dumps(_github_spec(
        ("/repos/{owner}/{repo}/issues/{issue_number}/comments", "post", _op("issues/create-comment")),
        ("/repos/{owner}/{repo}/issues/{issue_number}/comments", "get", _op("issues/list-comments", None)),
        ("/repos/{owner}/{repo}/releases/{release_id}/assets", "post",
         _op("repos/upload-release-asset", "application/octet-stream")),
    )))
    table = gen.github_table(path)
    rows = {r[2]: r for r in table["routes"]}
    assert rows["issues/create-comment"] == ["POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments",
                                             "issues/create-comment", "", ""]
    assert rows["repos/upload-release-asset"][4] == "raw"
    assert rows["pulls/merge"][3] == "merge_pr" and rows["repos/rename-branch"][3] == "delete_branch,create_branch"
    assert "issues/list-comments" not in rows  # reads are github.read
    assert table["counts"] == {"operations": len(rows) + 1, "reads": 1, "writes": len(rows),
                               "semantic": len(_semantic_ids())}


def test_github_table_fails_when_a_semantic_operation_disappears(gen, tmp_path):
    spec = _github_spec()
    del spec["paths"]["/x/pulls/merge"]
    path = tmp_path / "api.github.com.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(SystemExit, match="pulls/merge"):
        gen.github_table(path)


def _hubspot_spec(version: str, server: str = "https://api.hubapi.com") -> dict[str, Any]:
    base = f"/crm/{version}/objects" if version.startswith("v") else f"/crm/objects/{version}"
    return {"openapi": "3.0.1", "servers": [{"url": server}], "paths": {
        f"{base}/notes": {"post": _op(f"post-{base}/notes_create")},
        f"{base}/notes/{{noteId}}": {"patch": _op("x"), "get": _op("y", None)},
        f"{base}/0-3/{{dealId}}": {"patch": _op("z")},
        f"{base}/contacts": {"post": _op("c")},
        "/files/v3/files": {"post": _op("upload", "multipart/form-data")},
    }}


def test_hubspot_table(gen, tmp_path):
    specs = tmp_path / "PublicApiSpecs" / "CRM" / "Notes" / "Rollouts" / "424"
    for version in ("v3", "2026-03", "2026-09-beta"):
        (specs / version).mkdir(parents=True)
        (specs / version / "notes.json").write_text(json.dumps(_hubspot_spec(version)))
    (specs / "v3" / "collection.json").write_text(json.dumps({"info": {}, "item": []}))  # Postman: skipped
    (specs / "qa").mkdir()
    (specs / "qa" / "x.json").write_text(json.dumps(_hubspot_spec("v9", server="https://api.hubapiqa.com")))
    table = gen.hubspot_table(tmp_path)
    rows = {(r[0], r[1]): r for r in table["routes"]}
    assert ("POST", "/crm/v9/objects/notes") not in rows  # another server
    assert rows[("PATCH", "/crm/objects/2026-03/0-3/{dealId}")][2] == "update_deal"
    assert rows[("POST", "/crm/v3/objects/contacts")][2] == "create_contact"
    assert rows[("POST", "/files/v3/files")][3] == "raw"
    names = {_routes.hubspot_name(m, t) for m, t in rows}
    assert {"post-/crm/objects/notes", "patch-/crm/objects/notes/*", "get-/crm/objects/notes/*",
            "patch-/crm/objects/deals/*", "post-/files/files"} <= names
    assert ("POST", "/contacts/v1/contact") in rows  # the legacy routes
    assert table["counts"]["templates"] == len(rows)


def test_dump_is_one_route_per_line(gen, tmp_path):
    out = tmp_path / "t.json"
    gen._dump({"source": "s", "counts": {"a": 1}, "routes": [["POST", "/a", "", ""], ["GET", "/b", "", ""]]}, out)
    assert json.loads(out.read_text()) == {"source": "s", "counts": {"a": 1},
                                            "routes": [["POST", "/a", "", ""], ["GET", "/b", "", ""]]}
    assert len(out.read_text().splitlines()) == 4


def test_committed_tables_are_in_the_generators_format():
    for system in ("github", "hubspot"):
        data = json.loads((_routes.ROUTES_DIR / f"{system}.json").read_text())
        assert data["routes"] == sorted(data["routes"])
        assert set(data) == {"source", "counts", "routes"}
    assert (_routes.ROUTES_DIR / "hubspot.json").stat().st_size < 400_000
