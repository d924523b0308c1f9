"""Classification by exact statement text, remembered: an application sends the same texts again and again.

:func:`~enact_proxy.pgwire.classify.classify_statements` already caches its parse by text and by
template, but it first runs PostgreSQL's lexer over the text to find its template (a few µs per
statement) and builds fresh request objects. In front of it, this module keeps a bounded LRU of the
result for the exact text (``BEGIN``, ``SELECT ... WHERE id = $1``, ``END``), from its second sighting on,
so a repeated text costs a dict lookup and a copy of its payload.

What is kept is immutable: per action its name and a read-only view of its payload, and the cursor
operations (frozen). Every use gets fresh :class:`ActionRequest` objects carrying the session's
``request`` summary (a hit builds them from the kept entry, a miss hands out the classifier's own fresh
ones), so nothing a caller, the engine or a policy does to a request or its payload can reach the cache
or another session. Classification depends on the text alone, never on the configuration, so a reload
leaves the cache valid. A text that does not parse is never cached (it is
refused each time, by the same parser). Texts longer than :data:`MAX_CACHED_TEXT` are not kept, so the
cache's memory stays bounded whatever an agent sends.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

from enact_proxy.models import ActionRequest, RequestSummary
from enact_proxy.pgwire.classify import SYSTEM, CursorOp, classify_statements

CACHE_SIZE = 4096  # texts
MAX_CACHED_TEXT = 8192  # characters; longer texts are classified every time

Entry = tuple[tuple[tuple[str, MappingProxyType[str, Any]], ...], tuple[CursorOp, ...]]


class ClassifyCache:
    """A bounded LRU of exact text -> (actions, cursor operations); one per sidecar process."""

    def __init__(self, size: int = CACHE_SIZE, max_text: int = MAX_CACHED_TEXT):
        self.size = size
        self.max_text = max_text
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._seen: set[int] = set()
        self.hits = 0
        self.misses = 0

    def _seen_before(self, sql: str) -> bool:
        """Whether ``sql`` was (probably) classified before: a text is kept from its second sighting, so
        a stream of one-off texts (inlined literals, which the classifier's template cache serves) costs
        no copies and evicts nothing. Only hashes are remembered (bounded); a collision merely admits a
        text early."""
        key = hash(sql)
        if key in self._seen:
            return True
        if len(self._seen) >= 4 * self.size:
            self._seen.clear()
        self._seen.add(key)
        return False

    def __len__(self) -> int:
        return len(self._entries)

    def classify(self, sql: str, request: RequestSummary | None
                 ) -> tuple[list[ActionRequest], tuple[CursorOp, ...]]:
        """Fresh requests (``request`` set) and the cursor operations of ``sql``; raises
        :class:`~enact_proxy.pgwire.classify.SqlParseError` as the classifier does."""
        entry = self._entries.get(sql)
        if entry is None:
            self.misses += 1
            actions, ops = classify_statements(sql)  # raises on a parse error: nothing is kept
            if len(sql) <= self.max_text and self._seen_before(sql):
                self._entries[sql] = (tuple((a.action, MappingProxyType(_copied(a.payload))) for a in actions), ops)
                if len(self._entries) > self.size:
                    with contextlib.suppress(KeyError):  # (sessions share it on one loop; never fail on it)
                        self._entries.popitem(last=False)
            for action in actions:  # the classifier's own fresh objects, handed out once
                action.request = request
            return actions, ops
        self.hits += 1
        with contextlib.suppress(KeyError):
            self._entries.move_to_end(sql)
        found, ops = entry
        return [_request(action, _copied(payload), request) for action, payload in found], ops


def fresh(actions: list[ActionRequest]) -> list[ActionRequest]:
    """Copies of ``actions`` (payloads copied all the way down, same request summary): what a prepared
    statement keeps is judged afresh at each Execute, and no judging may change what it keeps."""
    return [_request(a.action, _copied(a.payload), a.request, a.system) for a in actions]


def _request(action: str, payload: dict[str, Any], request: RequestSummary | None,
             system: str = SYSTEM) -> ActionRequest:
    # The validating constructor (pydantic-core) is about twice as fast as model_construct (pure Python).
    return ActionRequest(system=system, action=action, payload=payload, request=request)


def _copied(payload: Any) -> dict[str, Any]:
    """A payload copy no later change can share state with (lists and dicts copied, all the way down)."""
    copy = dict(payload)
    for key, value in copy.items():
        if isinstance(value, list | tuple | dict):
            copy[key] = _value(value)
    return copy


def _value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [v if isinstance(v, str | int | float | bool | None) else _value(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


# One per process: every session of the sidecar shares it (all on one event loop).
shared = ClassifyCache()
