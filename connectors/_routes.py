"""Route tables generated from the vendors' API descriptions, and the matcher the connectors fall back to.

``connectors/routes/<system>.json`` is written by ``scripts/gen_routes.py`` (see there for the inputs).
Each row is ``[METHOD, path template, action, semantic, body]`` for GitHub and ``[METHOD, path template,
semantic, body]`` for HubSpot, whose action name is derived from the template (:func:`hubspot_name`).

How action names are formed (documented in README "Actions"):

- GitHub: the operationId, ``github.issues/create-comment``. Only writes are in the table; every
  GET/HEAD is ``github.read``.
- HubSpot: HubSpot's operationIds are ``<method>-<path>_<function>``, with the version inside the path
  and a function part that is missing (688 operations) or repeated within one API. The name is the
  ``<method>-<path>`` part with the version segment (``v3``, ``2026-03``, ``2026-09-beta``; the first
  segment shaped like one) removed, every path parameter written ``*`` and standard object type ids
  written as names (``0-3`` -> ``deals``): ``hubspot.post-/crm/objects/notes``,
  ``hubspot.patch-/crm/objects/notes/*``. One name covers the operation in every version it is
  documented in, reads included (``hubspot.get-/crm/objects/deals/*``).
- A row with ``semantic`` set (``merge_pr``, ``create_contact``) is always the seed's semantic action,
  recognised by the connector with its canonical payload; it never becomes a named action. When the
  connector's semantic recogniser declined such a request (a form it cannot read), the fallback
  answers nothing, so the request is ``<system>.unknown`` (refused unless a workflow names it).

Matching works on the connector's normalised path (percent-decoded, no dot segments, duplicate or
trailing slashes): literal segments match exactly (case-sensitive), a parameter matches one segment,
and a parameter that may hold ``/`` (a ref, a file path, a branch or label name, an email) may match
several, tried shortest first. Precedence at each segment: literal, then one-segment parameter, then
multi-segment parameter; the first complete match wins. Failed (node, position) pairs are remembered,
so a match costs at most nodes x segments steps; paths over :data:`MAX_SEGMENTS` segments match nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from connectors.base import HttpCall, Refusal, json_value

ROUTES_DIR = Path(__file__).resolve().parent / "routes"
MAX_SEGMENTS = 64
READ_METHODS = frozenset({"GET", "HEAD"})
VERSION_SEGMENT = re.compile(r"^(v\d+|\d{4}-\d{2}(-beta)?)$")

# Path parameters whose value may contain "/" (after percent-decoding a %2F is a separator).
MULTI_SEGMENT_PARAMS = frozenset({
    "path", "ref", "branch", "basehead", "name", "dir", "tag", "tag_name", "environment_name",
    "workflow_id", "file_path", "package_name", "email", "contact_email", "emailAddress", "folderPath",
})

# HubSpot's standard object type ids (developers.hubspot.com "Using the object APIs") mapped to the
# names its per-object paths use, so /crm/v3/objects/0-46 and /crm/v3/objects/notes are one operation.
HUBSPOT_OBJECT_IDS = {
    "0-1": "contacts", "0-2": "companies", "0-3": "deals", "0-5": "tickets", "0-7": "products",
    "0-8": "line_items", "0-14": "quotes", "0-18": "communications", "0-19": "feedback_submissions",
    "0-27": "tasks", "0-46": "notes", "0-47": "meetings", "0-48": "calls", "0-49": "emails",
    "0-53": "invoices", "0-69": "subscriptions", "0-74": "goal_targets", "0-84": "discounts",
    "0-85": "fees", "0-86": "taxes", "0-115": "users", "0-116": "postal_mail", "0-123": "orders",
    "0-136": "leads", "0-142": "carts", "0-162": "services", "0-410": "courses", "0-420": "listings",
    "0-421": "appointments", "0-970": "projects",
}
# Every spelling of a standard object type the recognisers accept, lower-cased: ids, names, and the
# singular names the seed's HubSpot recogniser accepts (``contact``); each maps to the path name.
_HUBSPOT_OBJECT_NAMES = {
    **{name: name for name in HUBSPOT_OBJECT_IDS.values()},
    **{name[:-1]: name for name in HUBSPOT_OBJECT_IDS.values() if name.endswith("s") and name != "companies"},
    "company": "companies",
    **HUBSPOT_OBJECT_IDS,
}
# Where an object type sits in a HubSpot path: /crm/v3/objects/{t}, /crm/v4/objects/{t},
# /crm/objects/{version}/{t} (version v3, 2026-03, 2026-09-beta ...).
_HUBSPOT_OBJECT_AT = re.compile(r"^(/crm/(?:v\d+/objects|objects/(?:v\d+|\d{4}-\d{2}(?:-beta)?)))/([^/]+)(/.*)?$")


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    action: str  # the named action (without the system prefix)
    semantic: tuple[str, ...]  # the semantic action(s) this route always is; () for a named one
    raw_body: bool  # the operation takes no JSON body (uploads, form posts)
    params: tuple[str, ...]


@dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]


@dataclass
class _Node:
    literals: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    multi: _Node | None = None
    route: Route | None = None


class RouteTable:
    """One system's routes, compiled into a trie per method (named and semantic routes apart)."""

    def __init__(self, routes: Iterable[Route]):
        self.routes = tuple(routes)
        self._named: dict[str, _Node] = {}
        self._semantic: dict[str, _Node] = {}
        #: (method, template) pairs shadowed by an earlier route of the same shape.
        self.shadowed: list[tuple[str, str]] = []
        for route in self.routes:
            tries = self._semantic if route.semantic else self._named
            self._insert(tries.setdefault(route.method, _Node()), route)
        self.names = frozenset(r.action for r in self.routes if not r.semantic)
        self.semantic_names = {r.action: r.semantic for r in self.routes if r.semantic}

    def _insert(self, node: _Node, route: Route) -> None:
        for segment in _segments(route.template):
            if segment.startswith("{") and segment.endswith("}"):
                if segment[1:-1] in MULTI_SEGMENT_PARAMS:
                    node.multi = node.multi or _Node()
                    node = node.multi
                else:
                    node.param = node.param or _Node()
                    node = node.param
            else:
                node = node.literals.setdefault(segment, _Node())
        if node.route is None:
            node.route = route
        else:
            self.shadowed.append((route.method, route.template))

    def match(self, method: str, path: str) -> Match | None:
        """The named route ``method path`` is, or None."""
        return _match(self._named.get(_method(method)), path)

    def semantic_match(self, method: str, path: str) -> Match | None:
        """The semantic route ``method path`` is, or None."""
        return _match(self._semantic.get(_method(method)), path)


def _method(method: str) -> str:
    return "GET" if method == "HEAD" else method


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _match(root: _Node | None, path: str) -> Match | None:
    if root is None:
        return None
    segments = _segments(path)
    if len(segments) > MAX_SEGMENTS:
        return None
    captured: list[str] = []
    failed: set[tuple[int, int]] = set()

    def walk(node: _Node, i: int) -> Route | None:
        if i == len(segments):
            return node.route
        key = (id(node), i)
        if key in failed:
            return None
        child = node.literals.get(segments[i])
        if child is not None and (found := walk(child, i + 1)) is not None:
            return found
        if node.param is not None:
            captured.append(segments[i])
            if (found := walk(node.param, i + 1)) is not None:
                return found
            captured.pop()
        if node.multi is not None:
            for end in range(i + 1, len(segments) + 1):
                captured.append("/".join(segments[i:end]))
                if (found := walk(node.multi, end)) is not None:
                    return found
                captured.pop()
        failed.add(key)
        return None

    route = walk(root, 0)
    if route is None:
        return None
    return Match(route=route, params=dict(zip(route.params, captured, strict=True)))


def _params(template: str) -> tuple[str, ...]:
    return tuple(s[1:-1] for s in _segments(template) if s.startswith("{") and s.endswith("}"))


# --- HubSpot naming ---------------------------------------------------------------------------


def hubspot_object_path(path: str) -> str:
    """``/crm/v3/objects/0-3/1`` -> ``/crm/v3/objects/deals/1``: a standard object type given by id,
    singular name or in another case is written as its path name (custom types stay as they are)."""
    found = _HUBSPOT_OBJECT_AT.match(path)
    name = _HUBSPOT_OBJECT_NAMES.get(found.group(2).lower()) if found is not None else None
    if found is None or name is None:
        return path
    return f"{found.group(1)}/{name}{found.group(3) or ''}"


def versionless(template: str) -> str:
    """``/crm/v3/objects/0-46/{noteId}`` -> ``/crm/objects/notes/*``."""
    out, dropped = [], False
    for segment in _segments(hubspot_object_path(template)):
        if not dropped and VERSION_SEGMENT.match(segment):
            dropped = True
            continue
        out.append("*" if segment.startswith("{") else segment)
    return "/" + "/".join(out)


def hubspot_name(method: str, template: str) -> str:
    """The action name of a HubSpot operation: ``post-/crm/objects/notes/batch/create``."""
    return f"{method.lower()}-{versionless(template)}"


# --- loading ----------------------------------------------------------------------------------


def _semantic(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(",") if v)


def _github_routes(rows: list[list[Any]]) -> list[Route]:
    return [Route(method=m, template=t, action=a, semantic=_semantic(s), raw_body=b == "raw", params=_params(t))
            for m, t, a, s, b in rows]


def _hubspot_routes(rows: list[list[Any]]) -> list[Route]:
    routes = []
    for method, template, semantic, body in rows:
        canonical = hubspot_object_path(template)
        routes.append(Route(method=method, template=canonical, action=hubspot_name(method, template),
                            semantic=_semantic(semantic), raw_body=body == "raw", params=_params(canonical)))
    return routes


_LOADERS = {"github": _github_routes, "hubspot": _hubspot_routes}


@cache
def table(system: str) -> RouteTable:
    """The compiled route table of ``system`` (``github``, ``hubspot``)."""
    data = json.loads((ROUTES_DIR / f"{system}.json").read_text("utf-8"))
    return RouteTable(_LOADERS[system](data["routes"]))


@cache
def counts(system: str) -> Mapping[str, int]:
    """The figures the generator recorded (operations, writes, semantic ...)."""
    data = json.loads((ROUTES_DIR / f"{system}.json").read_text("utf-8"))
    return dict(data["counts"])


# --- the connectors' fallback -------------------------------------------------------------------


def fallback(system: str, call: HttpCall, paths: Iterable[str],
             lower: frozenset[str] = frozenset()) -> list[tuple[str, dict[str, Any]]]:
    """The named action ``call`` is, tried on each of ``paths`` (already normalised), or ``[]``.

    ``[]`` (so ``<system>.unknown``) also when any path matches a semantic route: the connector's
    semantic recogniser runs first and declined it, and such a route must never pass as a named
    action a workflow might allow. ``lower`` names parameters whose value is lower-cased (owner, repo).
    Raises :class:`Refusal` when the body of a JSON operation cannot be parsed.
    """
    routes = table(system)
    paths = list(paths)
    if any(routes.semantic_match(call.method, p) is not None for p in paths):
        return []
    for path in paths:
        found = routes.match(call.method, path)
        if found is not None:
            return [(found.route.action, route_payload(call, found, lower))]
    return []


def route_payload(call: HttpCall, found: Match, lower: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Path parameters (named as in the matched template) and the JSON body's fields.

    The body's top-level fields sit beside the parameters, so policies see every field (``properties``
    as for semantic actions); a field named like a path parameter (GitHub's variable rename sends
    ``name``) is kept as ``body.<field>``, and a body that is not a JSON object as ``body``. A request
    whose fields would land on one key twice is refused. An operation that takes no JSON (an upload, a
    form post) records ``content_type`` and ``body_bytes``, never the bytes.
    """
    payload: dict[str, Any] = {k: v.lower() if k in lower else v for k, v in found.params.items()}
    if found.route.raw_body:
        payload["content_type"] = call.headers.get("content-type")
        payload["body_bytes"] = len(call.body)
        return payload
    body = json_value(call)
    fields = body.items() if isinstance(body, dict) else [] if body == {} else [("body", body)]
    for key, value in fields:
        target = f"body.{key}" if key in found.params else key
        if target in payload:
            raise Refusal(f"body field {key!r} cannot be told apart from another field or path parameter")
        payload[target] = value
    return payload
