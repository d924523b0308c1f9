"""HubSpot: the library-mode connector (over ``requests``) and the wire recogniser for the sidecar.

Recognised routes (after :mod:`enact_proxy.httpcall` normalisation), object type written as
``contacts``/``contact``/``0-1``, ``deals``/``deal``/``0-3``, ``tasks``/``task``/``0-27`` under
``/crm/v3/objects/`` or a date-versioned ``/crm/objects/YYYY-MM/``:

- contacts: ``POST`` base and ``batch/create`` -> ``create_contact`` per input; ``PATCH {id}`` and
  ``batch/update`` -> ``update_contact``; ``GET`` base / ``{id}`` (``idProperty=email``) / ``{id}/...``,
  ``POST search`` and ``batch/read`` -> ``get_contact``; legacy ``POST /contacts/v1/contact`` ->
  ``create_contact``, legacy ``POST .../vid/{vid}/profile`` and ``.../email/{email}/profile`` ->
  ``update_contact``; legacy ``GET .../vid/{vid}/profile`` and ``.../email/{email}/profile`` ->
  ``get_contact``.
- upserts, classified by what they target: each input of ``batch/upsert`` (``id`` with an optional
  ``idProperty``: none or ``hs_object_id`` names the object id, ``email`` or another unique property
  names it by value), legacy ``.../createOrUpdate/email/{email}`` and each item of legacy
  ``.../contact/batch`` (by ``vid`` or ``email``) is looked up in HubSpot before it is judged (one
  ``batch/read`` per object type and ``idProperty``, with the credential the forward carries): an
  input naming an existing contact is ``update_contact`` of it, any other ``create_contact``. When
  the lookup cannot be done (HubSpot down, an error answer, an ambiguous ``idProperty``) the request
  is refused with the reason (fail closed): judging it as a create would skip the policies on
  updates, judging it as an update would skip ``no_duplicate_contacts``.
- deals: ``POST`` base and ``batch/create`` -> ``create_deal``; ``PATCH {id}`` and ``batch/update`` ->
  ``update_deal``; ``batch/upsert`` inputs are looked up like contacts (``update_deal`` of an existing
  deal, else ``create_deal``); legacy ``POST /deals/v1/deal`` and ``PUT /deals/v1/deal/{id}``.
- tasks: ``POST`` base and ``batch/create`` -> ``create_task``; legacy ``POST /engagements/v1/engagements``
  of type ``TASK``.

``update_contact`` payload: ``contact_id`` (the object id when the request or the lookup gives it),
``email`` (the contact's email as the request names it, or as HubSpot has it; the email a request
writes is ``properties.email``) and ``properties``; ``id_property`` only when a contact is named by a
unique property other than ``email`` / ``hs_object_id``.

- also ``/crm/objects/v3/`` and beta-dated ``/crm/objects/2026-09-beta/``; tasks ``batch/upsert`` ->
  ``create_task``; legacy ``POST /deals/v1/batch-async/update`` -> ``update_deal`` per item.

Every other operation documented in HubSpot's spec collection (or a legacy route listed in
``scripts/gen_routes.py``) is a named action, reads included: ``hubspot.<method>-<versionless path>``
(``hubspot.post-/crm/objects/notes``, see :mod:`connectors._routes`). A semantic route (contact or deal
create/update, task create) this recogniser cannot read, and anything undocumented, is ``unknown``
(refused unless a workflow names ``hubspot.unknown``).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests
from pydantic import BaseModel, ConfigDict

from connectors import _routes
from connectors.base import (
    HttpAnswer,
    HttpCall,
    Refusal,
    Upstream,
    direct_session,
    error_message,
    json_object,
    json_value,
    parse_upstream,
)
from enact_proxy.models import ActionRequest, RequestSummary

SYSTEM = "hubspot"
SEMANTIC_ACTIONS = frozenset(
    {"create_contact", "get_contact", "update_contact", "create_deal", "update_deal", "create_task"}
)
# Every other documented operation, reads included, is a named action (connectors/_routes.py):
# ``post-/crm/objects/notes`` for POST /crm/v3/objects/notes, /crm/objects/2026-03/notes ...
ACTIONS = SEMANTIC_ACTIONS | _routes.table(SYSTEM).names

DEFAULT_BASE_URL = "https://api.hubapi.com"
TASK_TO_CONTACT = 204
DEAL_TO_CONTACT = 3
# Association type ids from a task to something that is not a contact; any other id may be a
# custom contact label, so its target is counted as a contact (over-counting fails safe).
_TASK_TO_NON_CONTACT = frozenset({192, 216, 220, 230})

_OBJECT_TYPES = {
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "deals": "deals",
    "deal": "deals",
    "0-3": "deals",
    "tasks": "tasks",
    "task": "tasks",
    "0-27": "tasks",
}
_V3_PREFIX = re.compile(r"^/crm/(?:v3/objects|objects/(?:v3|\d{4}-\d{2}(?:-beta)?))/(?P<rest>.+)$")
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# HubSpot's error categories for the statuses Enact answers with itself.
_CATEGORIES = {400: "VALIDATION_ERROR", 413: "PAYLOAD_TOO_LARGE"}


class Config(BaseModel):
    """``systems.hubspot`` in ``enact.yaml``."""

    model_config = ConfigDict(extra="forbid")

    upstream: str = DEFAULT_BASE_URL
    token_env: str | None = None
    hosts: list[str] = ["api.hubapi.com"]
    timeout_seconds: float = 5


class HubSpotError(RuntimeError):
    """A HubSpot call failed (HTTP error, timeout, unreadable answer). Never carries the token."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class HubSpotConnector:
    """Performs HubSpot actions and answers the lookups policies need."""

    system = SYSTEM

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 5,
        session: requests.Session | None = None,
    ):
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = session or requests.Session()

    def __repr__(self) -> str:  # keeps the key out of logs and tracebacks
        return f"HubSpotConnector(base_url={self.base_url!r})"

    def create_contact(self, email: str, properties: Mapping[str, Any] | None = None) -> dict[str, Any]:
        props = {**(properties or {}), "email": email}
        return self._call("POST", "/crm/v3/objects/contacts", json_body={"properties": props})

    def get_contact(self, contact_id: str | None = None, email: str | None = None) -> dict[str, Any] | None:
        """The contact, or None when HubSpot has no such contact."""
        if (contact_id is None) == (email is None):
            raise ValueError("give exactly one of contact_id or email")
        params = {"idProperty": "email"} if email is not None else None
        key = email if email is not None else str(contact_id)
        try:
            return self._call("GET", f"/crm/v3/objects/contacts/{_quote(key)}", params=params)
        except HubSpotError as exc:
            if exc.status == 404:
                return None
            raise

    def update_contact(self, contact_id: str | None = None, email: str | None = None,
                       properties: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """PATCH the contact named by id, or by email (``idProperty=email``)."""
        if (contact_id is None) == (email is None):
            raise ValueError("give exactly one of contact_id or email")
        params = {"idProperty": "email"} if email is not None else None
        key = email if email is not None else str(contact_id)
        return self._call("PATCH", f"/crm/v3/objects/contacts/{_quote(key)}",
                          json_body={"properties": dict(properties or {})}, params=params)

    def get_object(self, object_type: str, key: str, id_property: str | None = None) -> dict[str, Any] | None:
        """The CRM object named by ``key`` (its id, or the value of the unique ``id_property``);
        None when HubSpot answers 404. Any other failure raises :class:`HubSpotError`."""
        params = {"properties": "email"} if object_type == "contacts" else {}
        if id_property:
            params["idProperty"] = id_property
        try:
            return self._call("GET", f"/crm/v3/objects/{object_type}/{_quote(key)}", params=params)
        except HubSpotError as exc:
            if exc.status == 404:
                return None
            raise

    def find_objects(self, object_type: str, keys: list[str], id_property: str | None = None) -> dict[str, Any]:
        """Which of ``keys`` name an existing object (by id, or by the unique ``id_property``): ``{key:
        object}`` for those HubSpot has, in one ``batch/read`` per 100 keys (an upsert of 100 inputs
        costs one call, not 100 of the account's rate limit). Raises :class:`HubSpotError` on any
        failure, and when HubSpot answers with an object no key names (we could not tell which it is)."""
        by_value = bool(id_property) and id_property != "hs_object_id"
        asked = ["email", *([id_property] if by_value and id_property != "email" else [])]
        wanted = {(k.casefold() if by_value else k): k for k in keys}
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 100):
            body: dict[str, Any] = {"inputs": [{"id": k} for k in keys[start:start + 100]],
                                    "properties": asked}
            if id_property:
                body["idProperty"] = id_property
            answer = self._call("POST", f"/crm/v3/objects/{object_type}/batch/read", json_body=body)
            results = answer.get("results")
            if not isinstance(results, list):
                raise HubSpotError("batch read answered without a results list")
            for result in results:
                properties = result.get("properties") if isinstance(result, dict) else None
                if not isinstance(properties, dict):
                    raise HubSpotError("batch read answered an object without properties")
                value = properties.get(id_property) if by_value else result.get("id")
                key = wanted.get(str(value).casefold() if by_value else str(value))
                if value is None or key is None:
                    raise HubSpotError(f"batch read answered {object_type} {result.get('id')!r}, which no input names")
                found[key] = result
        return found

    def find_contact_by_email(self, email: str) -> dict[str, Any] | None:
        """Search by email. Raises :class:`HubSpotError` on any failure so policies fail closed."""
        body = {
            "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
            "properties": ["email"],
            "limit": 1,
        }
        found = self._call("POST", "/crm/v3/objects/contacts/search", json_body=body)
        results = found.get("results")
        if not isinstance(results, list):
            raise HubSpotError("contact search answered without a results list")
        return results[0] if results else None

    def create_deal(self, properties: Mapping[str, Any], contact_ids: Iterable[str] = ()) -> dict[str, Any]:
        body: dict[str, Any] = {"properties": dict(properties)}
        associations = _associations(contact_ids, DEAL_TO_CONTACT)
        if associations:
            body["associations"] = associations
        return self._call("POST", "/crm/v3/objects/deals", json_body=body)

    def update_deal(self, deal_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
        return self._call(
            "PATCH", f"/crm/v3/objects/deals/{_quote(str(deal_id))}", json_body={"properties": dict(properties)}
        )

    def create_task(self, properties: Mapping[str, Any], contact_ids: Iterable[str] = ()) -> dict[str, Any]:
        props = dict(properties)
        # HubSpot rejects a task without hs_timestamp; "now" is what its UI uses too.
        props.setdefault("hs_timestamp", datetime.now(UTC).isoformat(timespec="milliseconds"))
        body: dict[str, Any] = {"properties": props}
        associations = _associations(contact_ids, TASK_TO_CONTACT)
        if associations:
            body["associations"] = associations
        return self._call("POST", "/crm/v3/objects/tasks", json_body=body)

    def _call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                json=json_body,
                params=params,
                headers={"authorization": f"Bearer {self._api_key}", "accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            raise HubSpotError(f"HubSpot {method} {path} timed out after {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise HubSpotError(f"HubSpot {method} {path} failed: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise HubSpotError(
                f"HubSpot {method} {path} answered {response.status_code}: {error_message(response)}",
                status=response.status_code,
            )
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError as exc:
            raise HubSpotError(f"HubSpot {method} {path} answered with a body that is not JSON") from exc
        if not isinstance(data, dict):
            raise HubSpotError(f"HubSpot {method} {path} answered with JSON that is not an object")
        return data


class Wire:
    """Recognises HubSpot HTTP calls for the sidecar."""

    system: ClassVar[str] = SYSTEM

    def __init__(self, config: Config, environ: Mapping[str, str] = os.environ):
        self.config = config
        self._hosts = frozenset(h.lower() for h in config.hosts)
        self._token: str | None = None
        if config.token_env:
            token = environ.get(config.token_env)
            if not token:
                raise ValueError(
                    f"systems.hubspot.token_env names {config.token_env}, but that variable is not set"
                )
            self._token = token
        self._upstream = parse_upstream(config.upstream)
        self._lookup_session = direct_session(environ)

    def __repr__(self) -> str:
        return f"hubspot.Wire(upstream={self.config.upstream!r})"

    @property
    def hosts(self) -> frozenset[str]:
        return self._hosts

    def recognise(self, call: HttpCall) -> list[ActionRequest]:
        summary = RequestSummary(method=call.method, host=call.host, path=call.path)
        found = _recognise(call)
        if any(action == _UPSERT for action, _ in found):
            found = resolve_upserts(found, self._lookup(call))
        if not found:  # a documented operation by name (never a semantic route), else unknown
            found = _routes.fallback(SYSTEM, call, [_routes.hubspot_object_path(call.path)])
        if not found:
            found = [("unknown", {"method": call.method, "path": call.path})]
        return [ActionRequest(system=SYSTEM, action=a, payload=p, request=summary) for a, p in found]

    def refuse(self, call: HttpCall, message: str, status: int) -> HttpAnswer:
        body = {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": _CATEGORIES.get(status, "FORBIDDEN"),
        }
        return HttpAnswer(
            status=status,
            headers={"content-type": "application/json;charset=utf-8"},
            body=json.dumps(body).encode("utf-8"),
        )

    def recognition_may_block(self, call: HttpCall) -> bool:
        """Only upserts are looked up (is the target an existing object?); the rest reads the request alone."""
        return call.method == "POST" and (
            call.path.endswith("/batch/upsert") or "/createOrUpdate/" in call.path or call.path.endswith("/batch")
        )

    def upstream(self, call: HttpCall) -> Upstream:
        return self._upstream

    def credential_headers(self, call: HttpCall) -> dict[str, str]:
        if self._token is None:
            return {}
        return {"authorization": f"Bearer {self._token}"}

    def _lookup(self, call: HttpCall) -> Lookup:
        connector: HubSpotConnector = self.lookup_systems(call)[SYSTEM]
        return connector.find_objects

    def lookup_systems(self, call: HttpCall) -> dict[str, Any]:
        token = self._token if self._token is not None else _bearer(call.headers) or ""
        connector = HubSpotConnector(
            api_key=token,
            base_url=self.config.upstream,
            timeout=self.config.timeout_seconds,
            session=self._lookup_session,
        )
        return {SYSTEM: connector}


# --- recognition (pure) ------------------------------------------------------------------------

Found = list[tuple[str, dict[str, Any]]]
#: ``(object_type, keys, id_property) -> {key: object}`` for the keys naming an existing object.
Lookup = Callable[[str, list[str], str | None], dict[str, Any]]

# A placeholder action for an upsert input until :func:`resolve_upserts` has looked its target up.
_UPSERT = "upsert"
_OBJECT_ID_PROPERTIES = frozenset({"", "hs_object_id"})


def _recognise(call: HttpCall) -> Found:
    method, path = call.method, call.path
    match = _V3_PREFIX.match(path)
    if match:
        segments = match.group("rest").split("/")
        object_type = _OBJECT_TYPES.get(segments[0].lower())
        if object_type is None:
            return []
        return _recognise_v3(call, object_type, segments[1:])
    segments = path.strip("/").split("/")
    if segments[:3] == ["contacts", "v1", "contact"]:
        return _recognise_legacy_contact(call, segments[3:])
    if segments[:3] == ["deals", "v1", "deal"]:
        return _recognise_legacy_deal(call, segments[3:])
    if segments == ["deals", "v1", "batch-async", "update"] and method == "POST":
        return _recognise_legacy_deal_batch(call)
    if segments == ["engagements", "v1", "engagements"] and method == "POST":
        return _recognise_legacy_engagement(call)
    return []


def _recognise_v3(call: HttpCall, object_type: str, rest: list[str]) -> Found:
    method = call.method
    reading = method in ("GET", "HEAD")
    if object_type == "contacts":
        if reading:
            if not rest:
                return [("get_contact", {"contact_id": None, "email": None})]
            if call.query_one("idProperty") == "email":
                return [("get_contact", {"contact_id": None, "email": rest[0]})]
            return [("get_contact", {"contact_id": rest[0], "email": None})]
        if method == "PATCH" and len(rest) == 1:
            body = json_object(call)
            return [_update_contact(rest[0], _id_property(call, body, {}), _properties(body.get("properties")))]
        if method != "POST":
            return []
        if not rest:
            return [_create_contact(_properties(json_object(call).get("properties")))]
        if rest == ["search"]:
            return [("get_contact", {"contact_id": None, "email": _search_email(json_object(call))})]
        if rest == ["batch", "read"]:
            body = json_object(call)
            by_email = body.get("idProperty") == "email"
            return [
                ("get_contact", {"contact_id": None, "email": i} if by_email else {"contact_id": i, "email": None})
                for i in (_text(item.get("id")) for item in _inputs(body))
            ]
        if rest == ["batch", "create"]:
            return [_create_contact(_properties(item.get("properties"))) for item in _inputs(json_object(call))]
        if rest == ["batch", "upsert"]:
            return _upserts(call, "contacts")
        if rest == ["batch", "update"]:
            body = json_object(call)
            return [_update_contact(_text(item.get("id")), _id_property(call, body, item),
                                    _properties(item.get("properties")))
                    for item in _inputs(body)]
        return []
    if object_type == "deals":
        if method == "POST" and not rest:
            return [_create_deal(json_object(call))]
        if method == "PATCH" and len(rest) == 1:
            body = json_object(call)
            return [("update_deal", {"deal_id": rest[0], "properties": _properties(body.get("properties"))})]
        if method == "POST" and rest == ["batch", "create"]:
            return [_create_deal(item) for item in _inputs(json_object(call))]
        if method == "POST" and rest == ["batch", "upsert"]:
            return _upserts(call, "deals")
        if method == "POST" and rest == ["batch", "update"]:
            return [
                (
                    "update_deal",
                    {"deal_id": _text(item.get("id")), "properties": _properties(item.get("properties"))},
                )
                for item in _inputs(json_object(call))
            ]
        return []
    if method == "POST" and (not rest or rest in (["batch", "create"], ["batch", "upsert"])):
        items = [json_object(call)] if not rest else _inputs(json_object(call))
        return [
            (
                "create_task",
                {"properties": _properties(item.get("properties")), "contact_ids": _task_contacts(item)},
            )
            for item in items
        ]
    return []


def _recognise_legacy_contact(call: HttpCall, rest: list[str]) -> Found:
    method = call.method
    if method in ("GET", "HEAD"):
        if len(rest) == 3 and rest[0] == "vid" and rest[2] == "profile":
            return [("get_contact", {"contact_id": rest[1], "email": None})]
        if len(rest) == 3 and rest[0] == "email" and rest[2] == "profile":
            return [("get_contact", {"contact_id": None, "email": rest[1]})]
        return []
    if method != "POST":
        return []
    if not rest:
        return [_create_contact(_properties(json_object(call).get("properties")))]
    if len(rest) == 3 and rest[:2] == ["createOrUpdate", "email"]:
        return [_upsert("contacts", rest[2], "email", _properties(json_object(call).get("properties")))]
    if len(rest) == 3 and rest[0] in ("vid", "email") and rest[2] == "profile":
        id_property = "email" if rest[0] == "email" else None
        return [_update_contact(rest[1], id_property, _properties(json_object(call).get("properties")))]
    if rest == ["batch"]:
        # "Create or update a group of contacts": each item names its contact by vid or email.
        items = json_value(call)
        if not isinstance(items, list):
            raise Refusal("body is not a JSON list of contacts")
        found = []
        for item in items:
            if not isinstance(item, dict):
                raise Refusal("body is not a JSON list of contacts")
            properties = _properties(item.get("properties"))
            vid, email = _text(item.get("vid")), _text(item.get("email")) or _email_of(properties)
            if vid is not None:
                found.append(_upsert("contacts", vid, None, properties))
            elif email is not None:
                found.append(_upsert("contacts", email, "email", properties))
            else:
                found.append(_create_contact(properties))
        return found
    return []


def _recognise_legacy_deal(call: HttpCall, rest: list[str]) -> Found:
    if call.method == "POST" and not rest:
        body = json_object(call)
        contact_ids = _id_list((body.get("associations") or {}).get("associatedVids"))
        return [("create_deal", {"deal_id": None, "properties": _properties(body.get("properties")),
                                 "contact_ids": contact_ids})]
    if call.method == "PUT" and len(rest) == 1:
        body = json_object(call)
        return [("update_deal", {"deal_id": rest[0], "properties": _properties(body.get("properties"))})]
    return []


def _recognise_legacy_deal_batch(call: HttpCall) -> Found:
    """``POST /deals/v1/batch-async/update``: ``[{"objectId": id, "properties": [{name, value}]}]``."""
    items = json_value(call)
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise Refusal("body is not a JSON list of deals")
    return [("update_deal", {"deal_id": _text(item.get("objectId")), "properties": _properties(item.get("properties"))})
            for item in items]


def _recognise_legacy_engagement(call: HttpCall) -> Found:
    body = json_object(call)
    engagement = body.get("engagement")
    if not isinstance(engagement, dict) or str(engagement.get("type", "")).upper() != "TASK":
        return []
    metadata = body.get("metadata")
    properties = dict(metadata) if isinstance(metadata, dict) else {}
    if "timestamp" in engagement:
        properties.setdefault("hs_timestamp", engagement["timestamp"])
    associations = body.get("associations")
    contact_ids = _id_list(associations.get("contactIds")) if isinstance(associations, dict) else []
    return [("create_task", {"properties": properties, "contact_ids": contact_ids})]


def _upserts(call: HttpCall, object_type: str) -> Found:
    body = json_object(call)
    found = []
    for item in _inputs(body):
        kept = item if object_type == "deals" else _properties(item.get("properties"))
        found.append(_upsert(object_type, _text(item.get("id")), _id_property(call, body, item), kept))
    return found


def _upsert(object_type: str, key: str | None, id_property: str | None,
            item: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """An upsert input, to be resolved into a create or an update by :func:`resolve_upserts`.

    ``item`` is the contact's properties, or a deal's whole input (its associations are kept)."""
    return (_UPSERT, {"object_type": object_type, "key": key, "id_property": id_property, "item": dict(item)})


def _id_property(call: HttpCall, body: Mapping[str, Any], item: Mapping[str, Any]) -> str | None:
    """The unique property an input names its object by: the input's own ``idProperty``, the body's, or
    the query's. Several different ones are refused: which one HubSpot honours is not documented."""
    named = {v for v in (item.get("idProperty"), body.get("idProperty"), call.query_one("idProperty")) if v}
    if len(named) > 1:
        raise Refusal(f"ambiguous idProperty: {sorted(str(v) for v in named)}")
    if not named:
        return None
    value = named.pop()
    if not isinstance(value, str):
        raise Refusal("idProperty is not a string")
    return value


def resolve_upserts(found: Found, lookup: Lookup) -> Found:
    """Each upsert input becomes an update of the object it names when HubSpot has it, else a create.

    One lookup per object type and ``idProperty``. A failed lookup refuses the request
    (:class:`Refusal`): whether it overwrites a contact or creates one, it cannot be judged without
    knowing which."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for action, payload in found:
        if action == _UPSERT and payload["key"] is not None:
            keys = groups.setdefault((payload["object_type"], payload["id_property"]), [])
            if payload["key"] not in keys:
                keys.append(payload["key"])
    existing: dict[tuple[str, str | None], dict[str, Any]] = {}
    for (object_type, id_property), keys in groups.items():
        try:
            existing[(object_type, id_property)] = lookup(object_type, keys, id_property)
        except Exception as exc:  # noqa: BLE001 - every failure means the same: we cannot tell
            name = object_type[:-1]
            shown = ", ".join(repr(k) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
            raise Refusal(f"cannot tell whether the upsert of {name} {shown} updates an existing {name}: "
                          f"HubSpot lookup failed ({exc})") from exc
    resolved: Found = []
    for action, payload in found:
        if action != _UPSERT:
            resolved.append((action, payload))
            continue
        object_type, key, id_property, item = (payload["object_type"], payload["key"], payload["id_property"],
                                               payload["item"])
        target = existing.get((object_type, id_property), {}).get(key) if key is not None else None
        if object_type == "deals":
            if target is None:
                resolved.append(_create_deal(item))
            else:
                resolved.append(("update_deal", {"deal_id": _text(target.get("id")),
                                                 "properties": _properties(item.get("properties"))}))
            continue
        by_email = (id_property or "").lower() == "email"
        if target is None:
            resolved.append(_create_contact(item, _email_of(item) or (key if by_email else None)))
            continue
        current = target.get("properties")
        email = key if by_email else _text(current.get("email")) if isinstance(current, dict) else None
        resolved.append(("update_contact", {"contact_id": _text(target.get("id")), "email": email,
                                            "properties": item}))
    return resolved


def _update_contact(key: str | None, id_property: str | None,
                    properties: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """An update naming its contact by id (no ``idProperty`` or ``hs_object_id``), email, or another property."""
    chosen = (id_property or "").lower()
    payload: dict[str, Any] = {"contact_id": None, "email": None, "properties": properties}
    if chosen in _OBJECT_ID_PROPERTIES:
        payload["contact_id"] = key
    elif chosen == "email":
        payload["email"] = key
    else:
        payload["id_property"] = id_property
        payload["id"] = key
    return ("update_contact", payload)


def _create_contact(properties: dict[str, Any], email: str | None = None) -> tuple[str, dict[str, Any]]:
    return ("create_contact", {"email": email if email is not None else _email_of(properties),
                               "properties": properties})


def _create_deal(item: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    contact_ids = [
        target for target, _types in _association_targets(item.get("associations"))
    ]
    return ("create_deal", {"deal_id": _text(item.get("id")), "properties": _properties(item.get("properties")),
                            "contact_ids": contact_ids})


def _task_contacts(item: Mapping[str, Any]) -> list[str]:
    contacts = []
    for target, types in _association_targets(item.get("associations")):
        if not types or any(t == TASK_TO_CONTACT or t not in _TASK_TO_NON_CONTACT for t in types):
            contacts.append(target)
    return contacts


def _association_targets(value: Any) -> list[tuple[str, list[int | None]]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Refusal("associations is not a JSON list")
    targets = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("to"), dict):
            raise Refusal("an association has no 'to' object")
        target = _text(entry["to"].get("id"))
        if target is None:
            raise Refusal("an association has no target id")
        types = entry.get("types") or []
        if not isinstance(types, list):
            raise Refusal("association types is not a JSON list")
        type_ids: list[int | None] = []
        for t in types:
            raw = t.get("associationTypeId") if isinstance(t, dict) else None
            type_ids.append(int(raw) if isinstance(raw, int | str) and str(raw).isdigit() else None)
        targets.append((target, type_ids))
    return targets


def _search_email(body: Mapping[str, Any]) -> str | None:
    groups = body.get("filterGroups")
    if not isinstance(groups, list):
        return None
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        for f in filters if isinstance(filters, list) else []:
            if (
                isinstance(f, dict)
                and str(f.get("propertyName", "")).lower() == "email"
                and f.get("operator") == "EQ"
            ):
                return _text(f.get("value"))
    return None


def _properties(value: Any) -> dict[str, Any]:
    """v3 ``{name: value}``; legacy ``[{"property"|"name": n, "value": v}]``."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        properties: dict[str, Any] = {}
        for entry in value:
            name = entry.get("property", entry.get("name")) if isinstance(entry, dict) else None
            if not isinstance(name, str):
                raise Refusal("a legacy property has no name")
            properties[name] = entry.get("value")
        return properties
    raise Refusal("properties is neither a JSON object nor a list")


def _email_of(properties: Mapping[str, Any]) -> str | None:
    if "email" in properties:
        return _text(properties["email"])
    for name, value in properties.items():
        if name.lower() == "email":
            return _text(value)
    return None


def _inputs(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise Refusal("batch body has no 'inputs' list of objects")
    return inputs


def _id_list(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Refusal("an id list is not a JSON list")
    return [str(v) for v in value]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)






def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None




def _associations(contact_ids: Iterable[str], type_id: int) -> list[dict[str, Any]]:
    return [
        {"to": {"id": str(cid)}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}
        for cid in contact_ids
    ]


def _quote(segment: str) -> str:
    from urllib.parse import quote

    return quote(segment, safe="")
