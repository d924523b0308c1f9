#!/usr/bin/env python3
"""Regenerate ``connectors/routes/github.json`` and ``hubspot.json`` from the vendors' published API descriptions.

Inputs (read only; nothing is downloaded by this script):

- GitHub: the REST description ``api.github.com.json`` (OpenAPI 3), either from the repository
  https://github.com/github/rest-api-description (``descriptions/api.github.com/api.github.com.json``)
  or from the npm package ``@octokit/openapi`` (``generated/api.github.com.json``)::

      npm pack @octokit/openapi && tar xzf octokit-openapi-*.tgz   # -> package/generated/api.github.com.json

- HubSpot: a checkout of https://github.com/HubSpot/HubSpot-public-api-spec-collection (its
  ``PublicApiSpecs/<Category>/<API>/Rollouts/<id>/<version>/*.json`` OpenAPI files, every version:
  ``v3``, ``2026-03``, ``2026-09-beta`` ...). Specs for other servers than ``api.hubapi.com`` are skipped.
  HubSpot's legacy v1 routes are not in the collection; they are listed in :data:`HUBSPOT_LEGACY` below.

Usage::

    python scripts/gen_routes.py --github package/generated/api.github.com.json \\
        --hubspot HubSpot-public-api-spec-collection [--out connectors/routes]

Output (compact, sorted, deterministic): ``{"source": ..., "counts": ..., "routes": [...]}`` where each
route is ``[METHOD, path template, action, semantic, body]`` (GitHub) or ``[METHOD, path template,
semantic, body]`` (HubSpot, whose action name is derived from the template):

- GitHub: write operations only (GET/HEAD are always ``github.read``); ``action`` is the operationId
  (``issues/create-comment``).
- HubSpot: every operation; the action name (:func:`connectors._routes.hubspot_name`) is the
  operationId's ``<method>-<path>`` part with the version segment removed and every path parameter
  written ``*`` (``post-/crm/objects/notes``), so one name covers the operation in every version
  (``/crm/v3/objects/notes``, ``/crm/objects/2026-03/notes``).
- ``semantic``: the seed's semantic action(s) the route always is (``merge_pr``,
  ``delete_branch,create_branch``), or ``""``. Such routes are never named actions.
- ``body``: ``"raw"`` when the operation takes no JSON body (uploads, form posts), else ``""``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from connectors._routes import hubspot_name, versionless  # noqa: E402  (one naming rule, shared)

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
READS = frozenset({"GET", "HEAD"})
JSON_TYPES = re.compile(r"^(application/(.+\+)?json|\*/\*)", re.IGNORECASE)

# GitHub operations that are always one of the seed's semantic actions (SPEC §4): each moves a
# branch, merges, or is a PR/issue creation. The connector recognises them with their canonical payloads.
GITHUB_SEMANTIC = {
    "git/create-ref": "create_branch",  # or push_tag for refs/tags/..., by body
    "git/update-ref": "push_commit",
    "git/delete-ref": "delete_branch",
    "repos/create-or-update-file-contents": "push_commit",
    "repos/delete-file": "push_commit",
    "repos/merge": "push_commit",
    "repos/merge-upstream": "push_commit",
    "repos/rename-branch": "delete_branch,create_branch",
    "pulls/create": "create_pr",
    "pulls/merge": "merge_pr",
    "pulls/merge-async": "merge_pr",
    "pulls/update-branch": "push_commit",
    "code-scanning/commit-autofix": "push_commit",
    "issues/create": "create_issue",
}

# HubSpot: semantic by (METHOD, versionless path with parameters as *).
_OBJECTS = "/crm/objects"
HUBSPOT_SEMANTIC = {
    ("POST", f"{_OBJECTS}/contacts"): "create_contact",
    ("POST", f"{_OBJECTS}/contacts/batch/create"): "create_contact",
    ("POST", f"{_OBJECTS}/contacts/batch/upsert"): "create_contact,update_contact",  # by what each input names
    ("PATCH", f"{_OBJECTS}/contacts/*"): "update_contact",
    ("POST", f"{_OBJECTS}/contacts/batch/update"): "update_contact",
    ("POST", f"{_OBJECTS}/contacts/search"): "get_contact",
    ("POST", f"{_OBJECTS}/contacts/batch/read"): "get_contact",
    ("POST", f"{_OBJECTS}/deals"): "create_deal",
    ("POST", f"{_OBJECTS}/deals/batch/create"): "create_deal",
    ("POST", f"{_OBJECTS}/deals/batch/upsert"): "create_deal",
    ("PATCH", f"{_OBJECTS}/deals/*"): "update_deal",
    ("POST", f"{_OBJECTS}/deals/batch/update"): "update_deal",
    ("POST", f"{_OBJECTS}/tasks"): "create_task",
    ("POST", f"{_OBJECTS}/tasks/batch/create"): "create_task",
    ("POST", f"{_OBJECTS}/tasks/batch/upsert"): "create_task",
    # legacy v1
    ("POST", "/contacts/contact"): "create_contact",
    ("POST", "/contacts/contact/createOrUpdate/email/*"): "create_contact",
    ("POST", "/contacts/contact/batch"): "create_contact",
    ("POST", "/contacts/contact/vid/*/profile"): "update_contact",
    ("POST", "/contacts/contact/email/*/profile"): "update_contact",
    ("GET", "/contacts/contact/vid/*/profile"): "get_contact",
    ("GET", "/contacts/contact/email/*/profile"): "get_contact",
    ("POST", "/deals/deal"): "create_deal",
    ("PUT", "/deals/deal/*"): "update_deal",
    ("POST", "/deals/batch-async/update"): "update_deal",
}
# Every read under the v3 / dated contacts object is get_contact (the recogniser reads any GET there).
_CONTACT_READ = re.compile(r"^/crm/(v3/objects|objects/(v3|\d{4}-\d{2}(-beta)?))/contacts(/|$)")

# HubSpot's legacy routes (https://legacydocs.hubspot.com/docs/methods/contacts/contacts-overview,
# .../deals/deals_overview, .../engagements/engagements-overview): not in the spec collection.
HUBSPOT_LEGACY: list[tuple[str, str]] = [
    ("POST", "/contacts/v1/contact"),
    ("POST", "/contacts/v1/contact/createOrUpdate/email/{contact_email}"),
    ("POST", "/contacts/v1/contact/batch"),
    ("POST", "/contacts/v1/contact/vid/{vid}/profile"),
    ("POST", "/contacts/v1/contact/email/{contact_email}/profile"),
    ("DELETE", "/contacts/v1/contact/vid/{vid}"),
    ("POST", "/contacts/v1/contact/merge-vids/{vid}"),
    ("GET", "/contacts/v1/contact/vid/{vid}/profile"),
    ("GET", "/contacts/v1/contact/email/{contact_email}/profile"),
    ("GET", "/contacts/v1/contact/utk/{contact_utk}/profile"),
    ("GET", "/contacts/v1/contact/vids/batch"),
    ("GET", "/contacts/v1/contact/emails/batch"),
    ("GET", "/contacts/v1/contact/utks/batch"),
    ("GET", "/contacts/v1/lists/all/contacts/all"),
    ("GET", "/contacts/v1/lists/all/contacts/recent"),
    ("GET", "/contacts/v1/lists/recently_updated/contacts/recent"),
    ("GET", "/contacts/v1/search/query"),
    ("POST", "/deals/v1/deal"),
    ("PUT", "/deals/v1/deal/{dealId}"),
    ("DELETE", "/deals/v1/deal/{dealId}"),
    ("GET", "/deals/v1/deal/{dealId}"),
    ("GET", "/deals/v1/deal/paged"),
    ("GET", "/deals/v1/deal/recent/modified"),
    ("GET", "/deals/v1/deal/recent/created"),
    ("POST", "/deals/v1/batch-async/update"),
    ("PUT", "/deals/v1/deal/{dealId}/associations/{objectType}"),
    ("DELETE", "/deals/v1/deal/{dealId}/associations/{objectType}"),
    ("GET", "/deals/v1/deal/associated/{objectType}/{objectId}/paged"),
    ("POST", "/engagements/v1/engagements"),  # type TASK is create_task (by body); other types are named
    ("GET", "/engagements/v1/engagements/{engagementId}"),
    ("PATCH", "/engagements/v1/engagements/{engagementId}"),
    ("PUT", "/engagements/v1/engagements/{engagementId}"),
    ("DELETE", "/engagements/v1/engagements/{engagementId}"),
    ("GET", "/engagements/v1/engagements/paged"),
    ("GET", "/engagements/v1/engagements/recent/modified"),
    ("PUT", "/engagements/v1/engagements/{engagementId}/associations/{objectType}/{objectId}"),
    ("DELETE", "/engagements/v1/engagements/{engagementId}/associations/{objectType}/{objectId}"),
    ("GET", "/engagements/v1/engagements/associated/{objectType}/{objectId}/paged"),
    ("GET", "/engagements/v1/activities/types"),
]


def _body_kind(operation: dict[str, Any]) -> str:
    content = (operation.get("requestBody") or {}).get("content") or {}
    if not content or any(JSON_TYPES.match(t) for t in content):
        return ""
    return "raw"


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method.upper() in METHODS and isinstance(operation, dict):
                found.append((method.upper(), path, operation))
    return found


def github_table(path: Path) -> dict[str, Any]:
    spec = json.loads(path.read_text("utf-8"))
    routes, reads, seen = [], 0, set()
    for method, template, operation in _operations(spec):
        if method in READS:
            reads += 1
            continue
        op_id = operation["operationId"]
        if op_id in seen:
            raise SystemExit(f"GitHub operationId {op_id} is not unique")
        seen.add(op_id)
        routes.append([method, template, op_id, GITHUB_SEMANTIC.get(op_id, ""), _body_kind(operation)])
    missing = set(GITHUB_SEMANTIC) - seen
    if missing:
        raise SystemExit(f"semantic GitHub operations not in the description: {sorted(missing)}")
    routes.sort()
    info = spec.get("info", {})
    return {
        "source": f"github/rest-api-description api.github.com.json, {info.get('title')} {info.get('version')}",
        "counts": {"operations": len(routes) + reads, "reads": reads, "writes": len(routes),
                   "semantic": sum(1 for r in routes if r[3])},
        "routes": routes,
    }


def hubspot_semantic(method: str, template: str) -> str:
    key = (method, versionless(template))
    if key in HUBSPOT_SEMANTIC:
        return HUBSPOT_SEMANTIC[key]
    if method in READS and _CONTACT_READ.match(template):
        return "get_contact"
    return ""


def hubspot_table(root: Path) -> dict[str, Any]:
    specs_dir = root / "PublicApiSpecs" if (root / "PublicApiSpecs").is_dir() else root
    rows: dict[tuple[str, str], list[Any]] = {}
    files = skipped = 0
    for file in sorted(specs_dir.rglob("*.json")):
        try:
            spec = json.loads(file.read_text("utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(spec, dict) or "openapi" not in spec or "paths" not in spec:
            continue  # the Postman collections beside the specs
        servers = {s.get("url") for s in spec.get("servers") or [{"url": "https://api.hubapi.com"}]}
        if servers != {"https://api.hubapi.com"}:
            skipped += 1
            continue
        files += 1
        for method, template, operation in _operations(spec):
            body = _body_kind(operation)
            row = rows.setdefault((method, template), [method, template, hubspot_semantic(method, template), body])
            if body == "":  # one version taking JSON is enough to parse it as JSON
                row[3] = ""
    for method, template in HUBSPOT_LEGACY:
        rows.setdefault((method, template), [method, template, hubspot_semantic(method, template), ""])
    routes = sorted(rows.values())
    names = {hubspot_name(r[0], r[1]) for r in routes}
    write_names = {hubspot_name(r[0], r[1]) for r in routes if r[0] not in READS}
    semantic_names = {hubspot_name(r[0], r[1]) for r in routes if r[2]}
    return {
        "source": f"HubSpot/HubSpot-public-api-spec-collection ({files} specs; {skipped} for other servers "
                  f"skipped) + {len(HUBSPOT_LEGACY)} legacy v1 routes",
        "counts": {"templates": len(routes), "operations": len(names), "writes": len(write_names),
                   "semantic": len(semantic_names)},
        "routes": routes,
    }


def _dump(table: dict[str, Any], path: Path) -> None:
    lines = [json.dumps(route, separators=(",", ":")) for route in table["routes"]]
    head = {k: v for k, v in table.items() if k != "routes"}
    text = json.dumps(head, separators=(",", ":"))[:-1] + ',"routes":[\n' + ",\n".join(lines) + "\n]}\n"
    path.write_text(text, "utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--github", type=Path, help="api.github.com.json")
    parser.add_argument("--hubspot", type=Path, help="checkout of HubSpot-public-api-spec-collection")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "connectors" / "routes")
    args = parser.parse_args(argv)
    if not args.github and not args.hubspot:
        parser.error("give --github and/or --hubspot")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, source, build in (("github", args.github, github_table), ("hubspot", args.hubspot, hubspot_table)):
        if source is None:
            continue
        table = build(source)
        _dump(table, args.out / f"{name}.json")
        print(f"{name}: {table['counts']} -> {args.out / f'{name}.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
