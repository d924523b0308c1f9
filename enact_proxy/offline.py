"""Judging actions offline, for ``enact-proxy test`` and ``enact-proxy replay`` (SPEC §9).

The real :class:`~enact_proxy.engine.Engine` decides, with three things swapped for offline stand-ins:

- the receipts front refuses every write (nothing offline is ever recorded);
- each configured system is an :class:`OfflineSystem` that answers a policy's lookup
  (``systems["hubspot"].find_contact_by_email(...)``) only from answers it was given, and raises
  :class:`UnansweredLookup` for anything else (it never guesses and never dials out);
- the state store is a fresh in-memory SQLite store, so stateful policies (limits, duplicates) count
  the actions judged in this run and nothing else.

``require_approval`` is built with ``hold_seconds: 0``: offline nobody can approve, so waiting for a
person would only slow the run down; the decision (held for approval) is the same.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from enact_proxy.config import EnactConfig, resolve_policy
from enact_proxy.engine import Engine
from enact_proxy.policy import Policy
from enact_proxy.receipts.store import Answer, StoreFront
from enact_proxy.state import SqliteStateStore

APPROVAL_POLICY = "require_approval"


class UnansweredLookup(LookupError):
    """A policy asked a system something no offline answer covers."""


class NoReceipts(StoreFront):
    """A receipts front that refuses every write: an offline judgement is never recorded."""

    def _submit(self, kind: str, body: dict[str, Any]) -> Future[Answer]:
        raise RuntimeError(f"offline judging writes no {kind}")

    def start(self) -> NoReceipts:
        return self


class OfflineSystem:
    """Stands in for a connector: every method call is a lookup answered from ``answers``.

    ``answers`` maps ``"<system>.<call>"`` to the value the call returns (``None`` included: "no such
    contact"). A call without an answer is noted in ``unanswered`` and raises :class:`UnansweredLookup`,
    which the calling policy turns into a failure; the caller decides what an unanswered lookup means.
    """

    def __init__(self, name: str, answers: Mapping[str, Any] | None = None):
        self._name = name
        self._answers = dict(answers or {})
        self.asked: list[str] = []
        self.unanswered: list[str] = []

    def __getattr__(self, call: str) -> Callable[..., Any]:
        if call.startswith("_"):
            raise AttributeError(call)
        key = f"{self._name}.{call}"

        def lookup(*args: Any, **kwargs: Any) -> Any:
            shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
            self.asked.append(f"{key}({shown})")
            if key not in self._answers:
                self.unanswered.append(f"{key}({shown})")
                raise UnansweredLookup(f"{key}({shown}) has no offline answer")
            return copy.deepcopy(self._answers[key])  # a policy that edits its answer edits a copy

        return lookup

    def __repr__(self) -> str:
        return f"OfflineSystem({self._name!r})"


def offline_systems(names: Collection[str], answers: Mapping[str, Any] | None = None) -> dict[str, OfflineSystem]:
    """One stand-in per configured system, each answering the ``<its name>.*`` entries of ``answers``."""
    answers = answers or {}
    return {name: OfflineSystem(name, {k: v for k, v in answers.items() if k.split(".", 1)[0] == name})
            for name in names}


def unanswered(systems: Mapping[str, OfflineSystem]) -> list[str]:
    return [call for system in systems.values() for call in system.unanswered]


def offline_policies(config: EnactConfig) -> list[Policy]:
    """The config's policies, in order, with ``require_approval`` never waiting for a person."""
    if not any(_entry_name(entry) == APPROVAL_POLICY for entry in config.raw.policies):
        return list(config.policies)
    out: list[Policy] = []
    for entry, resolved in zip(config.raw.policies, config.policies, strict=True):
        name = _entry_name(entry)
        if name == APPROVAL_POLICY and isinstance(entry, dict):
            params = dict(entry[name] or {})
            params["hold_seconds"] = 0
            out.append(resolve_policy(name, params))
        else:
            out.append(resolved)
    return out


def policy_names(config: EnactConfig) -> list[str]:
    from enact_proxy.policy import policy_name

    return [policy_name(p) for p in config.policies]


def offline_engine(config: EnactConfig, state: SqliteStateStore, clock: Callable[[], datetime], *,
                   actor_email: str | None = None, actor_roles: Collection[str] | None = None,
                   policies: list[Policy] | None = None) -> Engine:
    """The real engine on ``config``'s workflows and policies, recording nothing."""
    actor = config.raw.actor
    return Engine(policies=policies if policies is not None else offline_policies(config),
                  workflows=config.workflows,
                  actor_email=actor_email if actor_email is not None else actor.email,
                  actor_roles=actor_roles if actor_roles is not None else actor.roles,
                  receipts=NoReceipts(), mode=config.raw.mode, state=state, config_sha256=config.sha256,
                  clock=clock)


def memory_state() -> SqliteStateStore:
    return SqliteStateStore(":memory:", url="sqlite:///:memory: (offline)")


def _entry_name(entry: str | dict[str, Any]) -> str:
    if isinstance(entry, dict):
        return next(iter(entry), "")
    return entry
