"""Shared fixtures: a receipts directory, a receipt key, a clock tests move by hand, context builders."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from enact_proxy.models import WorkflowContext
from enact_proxy.receipts.signing import KEY_ENV, ReceiptKey
from enact_proxy.receipts.store import ReceiptStore

# Monday 2024-01-15 10:00 UTC (11:00 in Berlin).
FIXED_NOW = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)


class FixedClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime = FIXED_NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


# What a developer's shell may hold that would change what the tests see. Cleared for the whole session
# at start-up, before any fixture (module-scoped sidecars included) starts a process that inherits it.
AMBIENT = ("ENACT_RECEIPT_KEY", "ENACT_LOG_KEY", "ENACT_ADMIN_TOKEN", "ENACT_STATE_PASSWORD",
           "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "all_proxy",
           "no_proxy", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO")


def pytest_configure(config: pytest.Config) -> None:
    for name in AMBIENT:
        os.environ.pop(name, None)


@pytest.fixture(autouse=True)
def _no_ambient_receipt_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own ENACT_RECEIPT_KEY must not change what the tests see."""
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
def receipt_dir(tmp_path: Path) -> Path:
    return tmp_path / "receipts"


@pytest.fixture
def receipt_key() -> ReceiptKey:
    return ReceiptKey(b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def store(receipt_dir: Path, receipt_key: ReceiptKey) -> Iterator[ReceiptStore]:
    started = ReceiptStore(receipt_dir, receipt_key).start()
    yield started
    started.close()


def make_context(action: str | None = None, payload: dict[str, Any] | None = None, *,
                 roles: tuple[str, ...] = (), now: datetime = FIXED_NOW, systems: dict[str, Any] | None = None,
                 state: Any = None, workflow: str | None = "wf", actor_email: str = "agent@company.com",
                 ) -> WorkflowContext:
    """A context for ``system.action`` (None: a library-mode workflow run)."""
    system, _, name = action.partition(".") if action else (None, "", None)
    return WorkflowContext(workflow=workflow, actor_email=actor_email, actor_roles=roles, system=system,
                           action=name or None, payload=payload or {}, systems=systems or {}, now=now, state=state)


@pytest.fixture
def ctx() -> Callable[..., WorkflowContext]:
    return make_context


def draft(n: int = 0, **fields: Any) -> dict[str, Any]:
    """An unsigned receipt body, as the engine hands it to the store."""
    body: dict[str, Any] = {
        "receipt_version": 1, "run_id": str(uuid.uuid4()),
        "timestamp": (FIXED_NOW + timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
        "actor_email": "agent@company.com", "workflow": "new_lead_workflow", "system": "hubspot",
        "action": "hubspot.create_contact", "payload": {"email": f"lead{n}@acme.com"}, "request": None,
        "policy_results": [{"policy": "no_duplicate_contacts", "passed": True, "reason": "new"}],
        "decision": "PASS", "reason": "allowed", "mode": "enforce", "actions_taken": [], "redacted": [],
        "config_sha256": None,
    }
    body.update(fields)
    return body


# -- an independent verifier, written from SPEC §6 alone (imports nothing from enact_proxy) --------

SPEC_FIELDS = {"receipt_version", "run_id", "timestamp", "actor_email", "workflow", "system", "action", "payload",
               "request", "policy_results", "decision", "mode", "actions_taken", "redacted", "config_sha256",
               "prev_hash", "signature"}


def spec_canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def spec_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(spec_canonical(record)).hexdigest()


def _spec_signature_problem(record: dict[str, Any], key: bytes) -> str | None:
    signature = record.get("signature")
    if not isinstance(signature, dict) or signature.get("alg") != "HMAC-SHA256":
        return "no HMAC-SHA256 signature"
    if signature.get("key_id") != hashlib.sha256(key).hexdigest()[:16]:
        return "key_id is not the first 16 hex of SHA-256 of the key"
    unsigned = {k: v for k, v in record.items() if k != "signature"}
    expected = hmac.new(key, spec_canonical(unsigned), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature.get("value"))):
        return "signature does not verify"
    return None


def independent_verify(directory: Path, key: bytes) -> list[str]:
    """Every problem SPEC §6 lets a reader find in ``directory``; empty when all holds."""
    problems: list[str] = []
    by_hash: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.rglob("*.json")):
        record = json.loads(path.read_bytes())
        run_id = record.get("run_id", "")
        if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", str(run_id)):
            problems.append(f"{path}: run_id is not a UUID")
        if str(run_id) not in path.name:
            problems.append(f"{path}: file name does not carry run_id {run_id}")
        missing = SPEC_FIELDS - set(record)
        if missing:
            problems.append(f"{run_id}: missing fields {sorted(missing)}")
        if record.get("decision") not in ("PASS", "BLOCK") or record.get("mode") not in ("enforce", "shadow"):
            problems.append(f"{run_id}: bad decision or mode")
        if not str(record.get("timestamp", "")).endswith(("Z", "+00:00")):
            problems.append(f"{run_id}: timestamp is not UTC")
        for result in record.get("policy_results") or []:
            if set(result) < {"policy", "passed", "reason"}:
                problems.append(f"{run_id}: policy result lacks policy/passed/reason")
        for taken in record.get("actions_taken") or []:
            if not {"action", "system", "success"} <= set(taken):
                problems.append(f"{run_id}: action taken lacks action/system/success")
        problem = _spec_signature_problem(record, key)
        if problem:
            problems.append(f"{run_id}: {problem}")
        by_hash[spec_hash(record)] = record
    # The chain: one first receipt (prev_hash null), each other one follows exactly one, no forks.
    followers: dict[Any, list[str]] = {}
    for record in by_hash.values():
        followers.setdefault(record.get("prev_hash"), []).append(record["run_id"])
        if record.get("prev_hash") is not None and record["prev_hash"] not in by_hash:
            problems.append(f"{record['run_id']}: prev_hash names no receipt")
    for prev, run_ids in followers.items():
        if len(run_ids) > 1:
            problems.append(f"{sorted(run_ids)}: several receipts follow {prev}")
    if by_hash and len(followers.get(None, [])) != 1:
        problems.append("the chain does not have exactly one first receipt")
    tips = [h for h in by_hash if h not in followers]
    walked, cursor = 0, None
    while cursor in followers and walked <= len(by_hash):
        cursor = spec_hash(next(r for r in by_hash.values() if r["run_id"] == followers[cursor][0]))
        walked += 1
    if walked != len(by_hash):
        problems.append(f"walking the chain reaches {walked} of {len(by_hash)} receipts")
    # HEAD: the newest run_id, its hash, the count, signed like a receipt.
    head_path = directory / "HEAD"
    if not head_path.exists():
        if by_hash:
            problems.append("HEAD is missing")
        return problems
    head = json.loads(head_path.read_bytes())
    problem = _spec_signature_problem(head, key)
    if problem:
        problems.append(f"HEAD: {problem}")
    if len(tips) != 1 or head.get("hash") != tips[0] or by_hash[tips[0]]["run_id"] != head.get("run_id"):
        problems.append(f"HEAD: names {head.get('run_id')}, which is not the newest receipt")
    if head.get("count") != len(by_hash):
        problems.append(f"HEAD: count {head.get('count')} but {len(by_hash)} receipts")
    return problems
