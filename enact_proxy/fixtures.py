"""``enact-proxy test FILE...``: policy fixtures, judged offline by the real engine (SPEC §9).

A fixture file::

    config: ../enact.yaml            # relative to this file, or an inline mapping checked like enact.yaml
    now: "2024-01-15T10:00:00Z"      # optional: the time every case is judged at (else the wall clock)
    cases:
      - name: a new contact passes
        action: hubspot.create_contact
        payload: {email: jane@acme.com, properties: {email: jane@acme.com}}
        lookups: {"hubspot.find_contact_by_email": null}     # what the policy's lookup answers
        expect: PASS
      - name: pushing to main is refused
        action: github.push_commit
        payload: {owner: acme, repo: app, branch: main, files: [a.py]}
        expect: BLOCK
        policy: no_push_to_main      # (or a list) each must be among the failing policies

Cases run in order against one fresh in-memory state store per file, so stateful policies count the
file's earlier passing cases ("the fourth task for one contact is refused"). Nothing is sent anywhere
and nothing is recorded. A lookup a case gives no answer for makes that case an error.

Exit codes: 0 every case matched; 1 a case did not match or could not be judged; 2 a file could not be
read, is not a valid fixture file, or its config is invalid.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import connectors
from enact_proxy.config import ConfigError, EnactConfig, load_config
from enact_proxy.models import ActionRequest, Decision
from enact_proxy.offline import memory_state, offline_engine, offline_systems, policy_names, unanswered

EXIT_OK, EXIT_MISMATCH, EXIT_UNREADABLE = 0, 1, 2
_LINE = re.compile(r"^line \d+: ")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseActor(_Strict):
    email: str | None = None
    roles: list[str] | None = None


class Case(_Strict):
    name: str = Field(min_length=1)
    actor: CaseActor | None = None
    action: str
    payload: dict[str, Any] = Field(default_factory=dict)
    lookups: dict[str, Any] = Field(default_factory=dict)
    expect: Literal["PASS", "BLOCK"]
    policy: str | list[str] | None = None
    now: datetime | None = None

    @property
    def policies(self) -> list[str]:
        if self.policy is None:
            return []
        return [self.policy] if isinstance(self.policy, str) else list(self.policy)


class FixtureFile(_Strict):
    config: str | dict[str, Any]
    now: datetime | None = None
    cases: list[Case] = Field(min_length=1)


class FixtureError(ConfigError):
    """The file cannot be used at all (exit 2): unreadable, malformed, or its config is invalid."""


@dataclass
class Outcome:
    case: Case
    got: Decision | None = None
    failing: list[tuple[str, str]] = field(default_factory=list)  # (policy, reason) of every failure
    reason: str = ""
    error: str | None = None  # the case could not be judged (an unanswered lookup)

    @property
    def matched(self) -> bool:
        if self.error is not None or self.got is None:
            return False
        if self.got.value != self.case.expect:
            return False
        failed = {policy for policy, _ in self.failing}
        return all(p in failed for p in self.case.policies)

    def line(self, path: str) -> str:
        where = f"{path}: {self.case.name}"
        if self.error is not None:
            return f"ERROR {where}: {self.error}"
        wanted = self.case.expect + (f" ({', '.join(self.case.policies)})" if self.case.policies else "")
        got = self.got.value if self.got else "?"
        detail = "; ".join(f"{policy}: {reason}" for policy, reason in self.failing) or self.reason
        return f"FAIL {where}: expected {wanted}, got {got}" + (f" — {detail}" if detail else "")


def load_fixture(path: Path) -> tuple[FixtureFile, EnactConfig]:
    """The fixture file and its config, both validated; :class:`FixtureError` names every problem."""
    try:
        data = yaml.safe_load(path.read_bytes())
    except OSError as exc:
        raise FixtureError(path, [f"cannot read: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise FixtureError(path, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(data, dict):
        raise FixtureError(path, ["the top level must be a mapping with config: and cases:"])
    try:
        fixture = FixtureFile.model_validate(data)
    except ValidationError as exc:
        raise FixtureError(path, [_where(e["loc"], data) + (
            "unknown key" if e["type"] == "extra_forbidden" else
            "required key is missing" if e["type"] == "missing" else e["msg"]) for e in exc.errors()]) from exc
    config = _config(path, fixture.config)
    errors = _check_cases(fixture, config)
    if errors:
        raise FixtureError(path, errors)
    return fixture, config


def _where(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p in ("str", "list[str]", "dict[str,any]"))]
    # name the case rather than only its index
    if len(loc) > 1 and loc[0] == "cases" and isinstance(loc[1], int):
        cases = data.get("cases")
        if isinstance(cases, list) and loc[1] < len(cases) and isinstance(cases[loc[1]], dict):
            name = cases[loc[1]].get("name")
            if name:
                parts[1] = f"{loc[1]} ({name})"
    return ".".join(parts) + ": "


def _config(path: Path, config: str | dict[str, Any]) -> EnactConfig:
    if isinstance(config, str):
        target = Path(config).expanduser()
        target = target if target.is_absolute() else path.parent / target
        try:
            return load_config(target)
        except ConfigError as exc:
            raise FixtureError(path, [f"config {exc.path}: {e}" for e in exc.errors]) from exc
    # An inline config is validated by the same loader, as if it were a file next to the fixture:
    # relative paths in it and `module:function` policies resolve against the fixture's folder.
    try:
        return load_config(path, text=yaml.safe_dump(config, sort_keys=False).encode("utf-8"))
    except ConfigError as exc:
        # line numbers would point into the dumped copy: name the key under config: instead
        raise FixtureError(path, [f"config.{_LINE.sub('', e)}" for e in exc.errors]) from exc


def _check_cases(fixture: FixtureFile, config: EnactConfig) -> list[str]:
    known_policies = set(policy_names(config))
    errors = []
    for i, case in enumerate(fixture.cases):
        where = f"cases.{i} ({case.name})"
        system, _, action = case.action.partition(".")
        if system not in connectors.available():
            errors.append(f"{where}.action: unknown system {system!r} in {case.action!r}")
        elif not action or action not in connectors.actions(system):
            errors.append(f"{where}.action: unknown action {case.action!r}; {connectors.suggest(system, action)}")
        for name in case.policies:
            if name not in known_policies:
                errors.append(f"{where}.policy: {name!r} is not a policy of this config "
                              f"({', '.join(sorted(known_policies)) or 'none'})")
        if case.policies and case.expect == "PASS":
            errors.append(f"{where}.policy: names failing policies, so expect must be BLOCK")
        for key in case.lookups:
            lookup_system, dot, call = key.partition(".")
            if not dot or not call:
                errors.append(f"{where}.lookups: {key!r}: expected \"<system>.<call>\"")
            elif lookup_system not in config.systems:
                errors.append(f"{where}.lookups: {key!r}: system {lookup_system!r} is not configured")
    return errors


def run_fixture(fixture: FixtureFile, config: EnactConfig) -> list[Outcome]:
    """Every case, in order, against one fresh in-memory state store."""
    state = memory_state()
    try:
        return [_judge(case, fixture, config, state) for case in fixture.cases]
    finally:
        state.close()


def _judge(case: Case, fixture: FixtureFile, config: EnactConfig, state: Any) -> Outcome:
    when = _utc(case.now or fixture.now or datetime.now(UTC))
    actor = case.actor or CaseActor()
    engine = offline_engine(config, state, lambda: when, actor_email=actor.email, actor_roles=actor.roles)
    system, _, action = case.action.partition(".")
    systems = offline_systems(config.systems, case.lookups)
    judgement = engine.judge_request([ActionRequest(system=system, action=action, payload=case.payload)], systems)
    (verdict,) = judgement.verdicts
    missing = unanswered(systems)
    if missing:
        return Outcome(case, error="unanswered lookup " + ", ".join(dict.fromkeys(missing))
                       + "; give its answer under lookups: (null for 'nothing found')")
    return Outcome(case, got=verdict.decision, reason=verdict.reason,
                   failing=[(r.policy, r.reason) for r in verdict.policy_results if not r.passed])


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def run_files(paths: Iterable[Path | str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``enact-proxy test``: one line per mismatch or error, then a summary; the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    unreadable = mismatched = errors = total = 0
    for raw in paths:
        path = Path(raw)
        try:
            fixture, config = load_fixture(path)
        except FixtureError as exc:
            unreadable += 1
            for error in exc.errors:
                print(f"{exc.path}: {error}", file=err)
            continue
        for outcome in run_fixture(fixture, config):
            total += 1
            if not outcome.matched:
                mismatched += outcome.error is None
                errors += outcome.error is not None
                print(outcome.line(str(path)), file=out)
    summary = f"{total} case(s): {total - mismatched - errors} matched, {mismatched} mismatched, {errors} error(s)"
    if unreadable:
        summary += f"; {unreadable} file(s) could not be used"
    print(summary, file=out)
    if unreadable:
        return EXIT_UNREADABLE
    return EXIT_MISMATCH if mismatched or errors else EXIT_OK
