"""The plug-in seam: what a connector module provides so the engine never names a vendor.

A connector module in this package (``connectors/<system>.py``) defines:

- ``SYSTEM``: its name in ``enact.yaml`` (``hubspot``).
- ``ACTIONS``: the action names a workflow may list for it (``create_contact``, ...). ``unknown`` is
  always allowed too: it names a request to the system that matched no action.
- ``Config``: a pydantic model (``extra="forbid"``) for ``systems.<name>`` in ``enact.yaml``.
- A library-mode connector class that performs actions (``HubSpotConnector``) and answers lookups
  policies need (``find_contact_by_email``).
- For HTTP systems, ``Wire``: built once from the validated ``Config``; it recognises an
  :class:`HttpCall` as actions and knows the system's hosts, upstream, credential and error shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import urlsplit

import requests

from enact_proxy.models import ActionRequest


class Refusal(Exception):
    """Recognition found a reason to refuse before any policy runs (unparseable body, ...).

    ``status`` is the HTTP status to answer with (403 unless a better one applies, like 413).
    """

    def __init__(self, reason: str, status: int = 403, action: ActionRequest | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.action = action


@dataclass(frozen=True)
class HttpCall:
    """One intercepted HTTP request, already normalised for matching.

    ``path`` is percent-decoded, dot segments and duplicate slashes removed, no trailing slash
    (``/`` stays ``/``). ``raw_path`` is the request target as sent, without query. ``headers`` has
    lower-case names. ``body`` has Content-Encoding undone.
    """

    method: str
    host: str
    path: str
    raw_path: str = ""
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def query_one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class HttpAnswer:
    """A response the sidecar produces itself (a refusal)."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Upstream:
    """Where a passed request really goes."""

    scheme: str
    host: str
    port: int
    path_prefix: str = ""


@runtime_checkable
class Wire(Protocol):
    """What the HTTP sidecar needs from an HTTP connector."""

    system: ClassVar[str]

    @property
    def hosts(self) -> frozenset[str]:
        """Lower-case host names this system guards (``api.hubapi.com``)."""
        ...

    def recognise(self, call: HttpCall) -> list[ActionRequest]:
        """Every action the call performs (at least one; ``unknown`` when none matches).

        Raises :class:`Refusal` when the call must be refused before policies run.
        """
        ...

    def refuse(self, call: HttpCall, message: str, status: int) -> HttpAnswer:
        """The refusal in the vendor's own error shape; ``message`` starts ``Blocked by Enact:``."""
        ...

    def upstream(self, call: HttpCall) -> Upstream:
        """Where to forward ``call`` when it passes."""
        ...

    def credential_headers(self, call: HttpCall) -> dict[str, str]:
        """Headers to set on the forwarded request (credential isolation); empty when none."""
        ...

    def lookup_systems(self, call: HttpCall) -> dict[str, Any]:
        """Connectors policies may query for this call (same credential as the forward)."""
        ...

    # Optional: ``recognition_may_block(call) -> bool``, False when recognising ``call`` needs no
    # I/O (no lookup): the sidecar then recognises it on the event loop. Absent means it may block.


# --- helpers every HTTP connector shares -----------------------------------------------------


def json_value(call: HttpCall) -> Any:
    """The body as strict JSON (an empty body is ``{}``); anything else refuses the call.

    Duplicate keys and NaN/Infinity are refused: parsers disagree on which duplicate wins, and
    judging one value while the vendor uses another is a bypass.
    """
    if not call.body.strip():
        return {}
    try:
        text = call.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(f"body is not valid JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except ValueError as exc:
        raise Refusal(f"body is not valid JSON: {exc}") from exc


def json_object(call: HttpCall) -> dict[str, Any]:
    value = json_value(call)
    if not isinstance(value, dict):
        raise Refusal("body is not valid JSON: expected a JSON object")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_upstream(url: str) -> Upstream:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"upstream {url!r} is not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Upstream(scheme=parts.scheme, host=parts.hostname, port=port, path_prefix=parts.path.rstrip("/"))


def direct_session(environ: Mapping[str, str]) -> requests.Session:
    """Lookups dial the upstream directly, as forwards do: never through a proxy from the environment
    (which may be this sidecar). A CA bundle named in the environment is still honoured."""
    session = requests.Session()
    session.trust_env = False
    session.verify = environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE") or True
    return session


def error_message(response: requests.Response) -> str:
    """The vendor's own error message (both vendors put it in ``message``), else the reason phrase."""
    try:
        data = response.json()
    except ValueError:
        return response.reason or "error"
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"][:300]
    return response.reason or "error"
