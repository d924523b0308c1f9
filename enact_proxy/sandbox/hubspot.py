"""An in-memory HubSpot CRM on loopback, answering in HubSpot's documented request and error shapes.

Covers what the demo and the end-to-end tests drive: CRM v3 objects (contacts, deals, tasks; by
name, by ``0-1``-style type id, and under the date-versioned ``/crm/objects/YYYY-MM`` prefix),
search, batch create/update/upsert/read/archive, and the legacy v1 contact and engagement routes.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from enact_proxy.sandbox._http import Request, Response, SandboxServer, json_response

OBJECT_TYPES = ("contacts", "deals", "tasks")
_TYPE_IDS = {"0-1": "contacts", "0-3": "deals", "0-27": "tasks"}
_OBJECT_ROUTE = re.compile(r"^/crm/(?:v3/objects|objects/\d{4}-\d{2})/(?P<type>[^/]+)(?P<rest>(?:/.*)?)$")


class HubSpotError(Exception):
    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.extra = extra


def error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


def _now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass
class CrmObject:
    object_type: str
    id: str
    properties: dict[str, str]
    created_at: str
    updated_at: str
    archived: bool = False
    # (to_object_id, association_type_id)
    associations: list[tuple[str, int]] = field(default_factory=list)
    created_monotonic: float = field(default_factory=time.monotonic)

    def to_json(self) -> dict[str, Any]:
        properties = {
            **self.properties,
            "hs_object_id": self.id,
            "createdate": self.created_at,
            "lastmodifieddate": self.updated_at,
        }
        return {
            "id": self.id,
            "properties": properties,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archived": self.archived,
        }


def _stringify(properties: Any) -> dict[str, str]:
    if not isinstance(properties, dict):
        raise HubSpotError(400, "VALIDATION_ERROR", "Invalid input JSON: properties must be an object")
    return {
        str(k): "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in properties.items()
    }


def _parse_associations(raw: Any) -> list[tuple[str, int]]:
    if raw in (None, []):
        return []
    if not isinstance(raw, list):
        raise HubSpotError(400, "VALIDATION_ERROR", "Invalid input JSON: associations must be a list")
    links: list[tuple[str, int]] = []
    for item in raw:
        try:
            to_id = str(item["to"]["id"])
            for kind in item["types"]:
                links.append((to_id, int(kind["associationTypeId"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise HubSpotError(400, "VALIDATION_ERROR", f"Invalid association: {item!r}") from exc
    return links


class SandboxHubSpot(SandboxServer):
    """In-memory HubSpot. With ``token``, requests must carry ``Authorization: Bearer <token>``;
    without, any bearer token is accepted (but one must be present)."""

    def __init__(self, token: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 search_lag_seconds: float = 0.0) -> None:
        super().__init__(host, port)
        self.token = token
        # HubSpot's search index is eventually consistent: objects created in the last
        # `search_lag_seconds` are not found by /search yet (reads by id see them at once).
        self.search_lag_seconds = search_lag_seconds
        self._lock = threading.RLock()
        self._objects: dict[str, dict[str, CrmObject]] = {t: {} for t in OBJECT_TYPES}
        self._next_id = 1001

    # -- inspection helpers for tests and the demo -----------------------------------------------
    def objects(self, object_type: str) -> list[dict[str, Any]]:
        with self._lock:
            return [o.to_json() for o in self._objects[object_type].values() if not o.archived]

    def contacts(self) -> list[dict[str, Any]]:
        return self.objects("contacts")

    def find_contact(self, email: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._contact_by_email(email)
            return found.to_json() if found else None

    def associations(self, object_type: str, object_id: str) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._objects[object_type][object_id].associations)

    def add_contact(self, email: str, **properties: str) -> str:
        """Seeds a contact; returns its id."""
        with self._lock:
            return self._create("contacts", {"email": email, **properties}, []).id

    # -- store -----------------------------------------------------------------------------------
    def _contact_by_email(self, email: str) -> CrmObject | None:
        wanted = email.strip().lower()
        for contact in self._objects["contacts"].values():
            if not contact.archived and contact.properties.get("email", "").strip().lower() == wanted:
                return contact
        return None

    def _check_unique_email(self, properties: dict[str, str], own_id: str | None = None) -> None:
        email = properties.get("email")
        if not email:
            return
        existing = self._contact_by_email(email)
        if existing is not None and existing.id != own_id:
            raise HubSpotError(409, "CONFLICT", f"Contact already exists. Existing ID: {existing.id}")

    def _validate_new(self, object_type: str, properties: dict[str, str]) -> None:
        if object_type == "contacts":
            self._check_unique_email(properties)
        if object_type == "tasks" and not properties.get("hs_timestamp"):
            raise HubSpotError(400, "VALIDATION_ERROR", "Property values were not valid: hs_timestamp is required")

    def _create(self, object_type: str, properties: dict[str, str], links: list[tuple[str, int]]) -> CrmObject:
        self._validate_new(object_type, properties)
        object_id = str(self._next_id)
        self._next_id += 1
        stamp = _now()
        created = CrmObject(object_type, object_id, dict(properties), stamp, stamp, associations=links)
        self._objects[object_type][object_id] = created
        return created

    def _get(self, object_type: str, object_id: str, id_property: str | None = None) -> CrmObject:
        if id_property and id_property not in ("hs_object_id",):
            if object_type == "contacts" and id_property == "email":
                found = self._contact_by_email(object_id)
            else:
                found = next(
                    (
                        o
                        for o in self._objects[object_type].values()
                        if not o.archived and o.properties.get(id_property) == object_id
                    ),
                    None,
                )
        else:
            found = self._objects[object_type].get(object_id)
        if found is None or found.archived:
            raise HubSpotError(
                404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", context={"id": [object_id]}
            )
        return found

    def _update(self, found: CrmObject, properties: dict[str, str]) -> CrmObject:
        if found.object_type == "contacts":
            self._check_unique_email(properties, own_id=found.id)
        found.properties.update(properties)
        found.updated_at = _now()
        return found

    # -- routing ---------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        try:
            self._authorize(request)
            with self._lock:
                return self._route(request)
        except HubSpotError as exc:
            return json_response(exc.status, error_body(exc.category, exc.message, **exc.extra))

    def _authorize(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HubSpotError(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication "
                "and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        if self.token is not None and token.strip() != self.token:
            raise HubSpotError(
                401,
                "INVALID_AUTHENTICATION",
                "The OAuth token used to make this call expired or is not valid.",
            )

    def _json(self, request: Request) -> Any:
        try:
            return request.json()
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise HubSpotError(400, "VALIDATION_ERROR", f"Invalid input JSON: {exc}") from exc

    def _route(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        method = request.method
        match = _OBJECT_ROUTE.match(path)
        if match:
            object_type = _TYPE_IDS.get(match["type"], match["type"])
            if object_type in OBJECT_TYPES:
                return self._route_object(request, object_type, match["rest"])
        if method == "POST" and path == "/contacts/v1/contact":
            return self._legacy_create_contact(request)
        legacy = re.match(r"^/contacts/v1/contact/createOrUpdate/email/(?P<email>[^/]+)$", path)
        if method == "POST" and legacy:
            return self._legacy_create_or_update(request, legacy["email"])
        legacy_profile = re.match(r"^/contacts/v1/contact/(?P<kind>vid|email)/(?P<key>[^/]+)/profile$", path)
        if method == "POST" and legacy_profile:
            return self._legacy_update_profile(request, legacy_profile["kind"], legacy_profile["key"])
        if method == "POST" and path == "/contacts/v1/contact/batch":
            return self._legacy_batch(request)
        if method == "POST" and path == "/engagements/v1/engagements":
            return self._legacy_engagement(request)
        legacy_deal = re.match(r"^/deals/v1/deal/(?P<id>[^/]+)$", path)
        if method == "PUT" and legacy_deal:
            return self._legacy_update_deal(request, legacy_deal["id"])
        raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Resource not found: {method} {path}")

    def _route_object(self, request: Request, object_type: str, rest: str) -> Response:
        method = request.method
        routes: dict[tuple[str, str], Callable[[], Response]] = {
            ("POST", ""): lambda: self._create_one(request, object_type),
            ("GET", ""): lambda: self._list(request, object_type),
            ("POST", "/search"): lambda: self._search(request, object_type),
        }
        for op in ("create", "update", "upsert", "read", "archive"):
            routes[("POST", f"/batch/{op}")] = self._batch_route(request, object_type, op)
        route = routes.get((method, rest))
        if route is not None:
            return route()
        one = re.match(r"^/(?P<id>[^/]+)$", rest)
        if one and rest not in ("/search", "/batch"):
            object_id = one["id"]
            id_property = request.query_one("idProperty")
            if method == "GET":
                return json_response(200, self._get(object_type, object_id, id_property).to_json())
            if method == "PATCH":
                body = self._json(request)
                found = self._get(object_type, object_id, id_property)
                props = _stringify(body.get("properties") if isinstance(body, dict) else None)
                return json_response(200, self._update(found, props).to_json())
            if method == "DELETE":
                self._get(object_type, object_id, id_property).archived = True
                return Response(204)
        raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Resource not found: {method} {request.path}")

    def _batch_route(self, request: Request, object_type: str, op: str) -> Callable[[], Response]:
        return lambda: self._batch(request, object_type, op)

    # -- CRM v3 ----------------------------------------------------------------------------------
    def _create_one(self, request: Request, object_type: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict):
            raise HubSpotError(400, "VALIDATION_ERROR", "Invalid input JSON: expected an object")
        created = self._create(
            object_type, _stringify(body.get("properties", {})), _parse_associations(body.get("associations"))
        )
        return json_response(201, created.to_json())

    def _list(self, request: Request, object_type: str) -> Response:
        limit = int(request.query_one("limit") or 10)
        after = int(request.query_one("after") or 0)
        live = [o for o in self._objects[object_type].values() if not o.archived]
        page = live[after : after + limit]
        payload: dict[str, Any] = {"results": [o.to_json() for o in page]}
        if after + limit < len(live):
            payload["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(200, payload)

    def _search(self, request: Request, object_type: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict):
            raise HubSpotError(400, "VALIDATION_ERROR", "Invalid input JSON: expected an object")
        groups = body.get("filterGroups") or []
        indexed_before = time.monotonic() - self.search_lag_seconds
        live = [o for o in self._objects[object_type].values()
                if not o.archived and o.created_monotonic <= indexed_before]
        hits = [o for o in live if not groups or any(_group_matches(o, g) for g in groups)]
        limit = int(body.get("limit") or 10)
        after = int(body.get("after") or 0)
        page = hits[after : after + limit]
        payload: dict[str, Any] = {"total": len(hits), "results": [o.to_json() for o in page]}
        if after + limit < len(hits):
            payload["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(200, payload)

    def _batch(self, request: Request, object_type: str, op: str) -> Response:
        body = self._json(request)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            raise HubSpotError(400, "VALIDATION_ERROR", "Invalid input JSON: inputs must be a list of objects")
        started = _now()
        if op == "create":
            results = self._batch_create(object_type, inputs)
            return json_response(201, _batch_body(started, [r.to_json() for r in results]))
        if op == "update":
            updated = self._batch_update(object_type, inputs)
            return json_response(200, _batch_body(started, [r.to_json() for r in updated]))
        if op == "upsert":
            return json_response(200, _batch_body(started, self._batch_upsert(object_type, inputs)))
        if op == "read":
            return self._batch_read(object_type, body, inputs, started)
        for item in inputs:
            self._get(object_type, str(item.get("id"))).archived = True
        return Response(204)

    def _batch_create(self, object_type: str, inputs: list[dict[str, Any]]) -> list[CrmObject]:
        prepared = [(_stringify(i.get("properties", {})), _parse_associations(i.get("associations"))) for i in inputs]
        # All-or-nothing, as HubSpot answers a duplicate in a batch create with one 409 for the batch.
        emails = [p.get("email", "").strip().lower() for p, _ in prepared if p.get("email")]
        if len(emails) != len(set(emails)):
            raise HubSpotError(400, "VALIDATION_ERROR", "Duplicate email in batch inputs")
        for props, _ in prepared:
            self._validate_new(object_type, props)
        return [self._create(object_type, props, links) for props, links in prepared]

    def _batch_update(self, object_type: str, inputs: list[dict[str, Any]]) -> list[CrmObject]:
        targets = []
        for item in inputs:
            found = self._get(object_type, str(item.get("id")), item.get("idProperty"))
            targets.append((found, _stringify(item.get("properties", {}))))
        return [self._update(found, props) for found, props in targets]

    def _batch_upsert(self, object_type: str, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = []
        for item in inputs:
            props = _stringify(item.get("properties", {}))
            key, id_property = str(item.get("id", "")), item.get("idProperty")
            try:
                found = self._get(object_type, key, id_property)
            except HubSpotError:
                # Not there: created, with the named unique property set to the id (hs_object_id is
                # HubSpot's own and read-only: the new object gets a fresh id).
                if id_property and id_property != "hs_object_id":
                    props.setdefault(id_property, key)
                results.append({**self._create(object_type, props, []).to_json(), "new": True})
            else:
                # There: updated in place, its email and every other property overwritten.
                results.append({**self._update(found, props).to_json(), "new": False})
        return results

    def _batch_read(
        self, object_type: str, body: dict[str, Any], inputs: list[dict[str, Any]], started: str
    ) -> Response:
        id_property = body.get("idProperty")
        found, missing = [], []
        for item in inputs:
            try:
                found.append(self._get(object_type, str(item.get("id")), id_property).to_json())
            except HubSpotError:
                missing.append(str(item.get("id")))
        payload = _batch_body(started, found)
        if not missing:
            return json_response(200, payload)
        payload["numErrors"] = 1
        payload["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some objects.",
                "context": {"ids": missing},
            }
        ]
        return json_response(207, payload)

    # -- legacy v1 -------------------------------------------------------------------------------
    def _legacy_properties(self, body: Any, name_key: str) -> dict[str, str]:
        try:
            return {str(p[name_key]): str(p["value"]) for p in body["properties"]}
        except (KeyError, TypeError) as exc:
            raise HubSpotError(400, "VALIDATION_ERROR", "Invalid input JSON: properties") from exc

    def _legacy_create_contact(self, request: Request) -> Response:
        props = self._legacy_properties(self._json(request), "property")
        email = props.get("email", "")
        existing = self._contact_by_email(email) if email else None
        if existing is not None:
            body = error_body(
                "CONFLICT", "Contact already exists", error="CONTACT_EXISTS", identityProfile={"vid": int(existing.id)}
            )
            return json_response(409, body)
        created = self._create("contacts", props, [])
        return json_response(200, _legacy_contact(created))

    def _legacy_create_or_update(self, request: Request, email: str) -> Response:
        props = self._legacy_properties(self._json(request), "property")
        existing = self._contact_by_email(email)
        if existing is not None:
            self._update(existing, props)
            return json_response(200, {"vid": int(existing.id), "isNew": False})
        created = self._create("contacts", {**props, "email": email}, [])
        return json_response(200, {"vid": int(created.id), "isNew": True})

    def _legacy_update_profile(self, request: Request, kind: str, key: str) -> Response:
        props = self._legacy_properties(self._json(request), "property")
        found = self._contact_by_email(key) if kind == "email" else self._objects["contacts"].get(key)
        if found is None or found.archived:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "contact does not exist")
        self._update(found, props)
        return Response(204)

    def _legacy_batch(self, request: Request) -> Response:
        """Create or update a group of contacts, each named by ``vid`` or ``email``."""
        items = self._json(request)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise HubSpotError(400, "VALIDATION_ERROR", "Invalid input JSON: expected a list of contacts")
        for item in items:
            props = self._legacy_properties(item, "property")
            found = None
            if item.get("vid") is not None:
                found = self._objects["contacts"].get(str(item["vid"]))
            elif item.get("email"):
                found = self._contact_by_email(str(item["email"]))
                props.setdefault("email", str(item["email"]))
            if found is not None and not found.archived:
                self._update(found, props)
            else:
                self._create("contacts", props, [])
        return Response(202)

    def _legacy_engagement(self, request: Request) -> Response:
        body = self._json(request)
        if not isinstance(body, dict) or not isinstance(body.get("engagement"), dict):
            raise HubSpotError(400, "VALIDATION_ERROR", "Invalid input JSON: engagement is required")
        engagement = body["engagement"]
        metadata = body.get("metadata") or {}
        associations = body.get("associations") or {}
        if str(engagement.get("type", "")).upper() != "TASK":
            raise HubSpotError(400, "VALIDATION_ERROR", "The sandbox only records TASK engagements")
        timestamp = engagement.get("timestamp") or int(datetime.now(UTC).timestamp() * 1000)
        props = _stringify(
            {
                "hs_timestamp": timestamp,
                "hs_task_subject": metadata.get("subject", ""),
                "hs_task_body": metadata.get("body", ""),
                "hs_task_status": metadata.get("status", "NOT_STARTED"),
            }
        )
        links = [(str(c), 204) for c in associations.get("contactIds", [])]
        links += [(str(d), 216) for d in associations.get("dealIds", [])]
        created = self._create("tasks", props, links)
        answer = {
            "engagement": {
                "id": int(created.id),
                "type": "TASK",
                "timestamp": timestamp,
                "createdAt": int(datetime.now(UTC).timestamp() * 1000),
            },
            "associations": {
                "contactIds": associations.get("contactIds", []),
                "dealIds": associations.get("dealIds", []),
            },
            "metadata": metadata,
        }
        return json_response(200, answer)

    def _legacy_update_deal(self, request: Request, deal_id: str) -> Response:
        props = self._legacy_properties(self._json(request), "name")
        found = self._update(self._get("deals", deal_id), props)
        return json_response(
            200,
            {
                "dealId": int(found.id),
                "properties": {k: {"value": v} for k, v in found.properties.items()},
            },
        )


def _legacy_contact(contact: CrmObject) -> dict[str, Any]:
    return {
        "vid": int(contact.id),
        "is-contact": True,
        "properties": {k: {"value": v} for k, v in contact.properties.items()},
    }


def _batch_body(started: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now()}


def _group_matches(obj: CrmObject, group: Any) -> bool:
    filters = group.get("filters", []) if isinstance(group, dict) else []
    return all(_filter_matches(obj, f) for f in filters)


def _filter_matches(obj: CrmObject, spec: Any) -> bool:
    if not isinstance(spec, dict):
        raise HubSpotError(400, "VALIDATION_ERROR", "Invalid filter")
    name = spec.get("propertyName")
    operator = spec.get("operator", "EQ")
    value = obj.to_json()["properties"].get(name)
    # HubSpot compares string properties case-insensitively.
    have = value.lower() if isinstance(value, str) else None
    want = str(spec.get("value", "")).lower()
    if operator == "EQ":
        return have == want
    if operator == "NEQ":
        return have != want
    if operator == "HAS_PROPERTY":
        return bool(value)
    if operator == "NOT_HAS_PROPERTY":
        return not value
    if operator == "IN":
        return have in [str(v).lower() for v in spec.get("values", [])]
    if operator == "CONTAINS_TOKEN":
        return have is not None and want.strip("*") in have
    raise HubSpotError(400, "VALIDATION_ERROR", f"Unsupported filter operator {operator}")
