"""Shared fixtures: a receipts directory, a receipt key, a clock tests move by hand, context builders."""

from __future__ import annotations

import base64
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
        "receipt_version": 2, "run_id": str(uuid.uuid4()),
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
               "request", "policy_results", "decision", "reason", "mode", "redacted", "config_sha256",
               "kind", "seq", "prev_hash", "signature"}


def spec_canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def spec_hash(record: Any) -> str:
    """SHA-256 hex of a record's canonical bytes (a dict, or a typed record from the store)."""
    if hasattr(record, "record_dict"):
        record = record.record_dict()
    return hashlib.sha256(spec_canonical(record)).hexdigest()


def spec_lines(directory: Path) -> list[bytes]:
    """Every complete line of the log: segments ordered by the first seq in their names."""
    segments = sorted(directory.glob("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]/*.jsonl"), key=lambda p: int(p.stem))
    lines: list[bytes] = []
    for path in segments:
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        lines += complete.split(b"\n")[:-1]
    return lines


def spec_records(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in spec_lines(directory)]


def spec_receipts(directory: Path) -> dict[str, dict[str, Any]]:
    return {r["run_id"]: r for r in spec_records(directory) if r["kind"] == "receipt"}


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


def _spec_mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _spec_mth(leaves[:k]) + _spec_mth(leaves[k:])).digest()


def spec_open_checkpoint(note: str, verifier_key: str) -> tuple[str, int, bytes]:
    """(origin, size, root) of a C2SP checkpoint, after checking its Ed25519 signed-note signature."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    name, key_hash, data = verifier_key.strip().split("+", 2)
    raw = base64.b64decode(data)
    assert raw[0] == 1 and len(raw) == 33, "not an Ed25519 verifier key"
    assert hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() == key_hash
    text, _, sigs = note.rpartition("\n\n")
    text += "\n"
    verified = False
    for line in sigs.splitlines():
        signer, blob = line.removeprefix("\u2014 ").split(" ")
        sig = base64.b64decode(blob)
        if signer == name and sig[:4].hex() == key_hash:
            Ed25519PublicKey.from_public_bytes(raw[1:]).verify(sig[4:], text.encode())  # raises if wrong
            verified = True
    assert verified, "no signature by the log's key"
    origin, size, root = text.split("\n")[:3]
    assert origin == name
    return origin, int(size), base64.b64decode(root)


def independent_verify(directory: Path, key: bytes, verifier_key: str | None = None) -> list[str]:
    """Every problem SPEC §6 lets a reader find in ``directory`` (a stopped log); empty when all holds."""
    problems: list[str] = []
    lines = spec_lines(directory)
    prev: str | None = None
    open_intents: set[str] = set()
    receipts: set[str] = set()
    for n, line in enumerate(lines):
        record = json.loads(line)
        if spec_canonical(record) != line:
            problems.append(f"line {n}: not canonical bytes")
        run_id = str(record.get("run_id", ""))
        if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", run_id):
            problems.append(f"line {n}: run_id is not a UUID")
        wanted = SPEC_FIELDS | ({"actions_taken"} if record.get("kind") == "receipt" else set())
        missing = wanted - set(record)
        if missing:
            problems.append(f"{run_id}: missing fields {sorted(missing)}")
        if record.get("kind") == "intent" and "actions_taken" in record:
            problems.append(f"{run_id}: an intent with actions_taken")
        if record.get("seq") != n:
            problems.append(f"line {n}: seq {record.get('seq')}")
        if record.get("prev_hash") != prev:
            problems.append(f"line {n}: prev_hash does not name the line before")
        prev = hashlib.sha256(line).hexdigest()
        if record.get("receipt_version") != 2:
            problems.append(f"{run_id}: receipt_version is not 2")
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
        if record.get("kind") == "intent":
            if run_id in open_intents or run_id in receipts:
                problems.append(f"{run_id}: a second intent")
            open_intents.add(run_id)
        elif record.get("kind") == "receipt":
            if run_id in receipts:
                problems.append(f"{run_id}: a second receipt")
            receipts.add(run_id)
            open_intents.discard(run_id)
        else:
            problems.append(f"line {n}: kind {record.get('kind')!r}")
    if open_intents:
        problems.append(f"intents without a receipt on a stopped log: {sorted(open_intents)}")
    head_path = directory / "HEAD"
    if not head_path.exists():
        if lines:
            problems.append("HEAD is missing")
        return problems
    note = head_path.read_text()
    size = int(note.split("\n")[1])
    if (directory / "checkpoints" / str(size)).read_text() != note:
        problems.append("HEAD is not a copy of checkpoints/<size>")
    if size != len(lines):
        problems.append(f"HEAD covers {size} records, the stopped log holds {len(lines)}")
    root = base64.b64decode(note.split("\n")[2])
    if verifier_key is not None:
        _, size, root = spec_open_checkpoint(note, verifier_key)
    if _spec_mth(lines[:size]) != root:
        problems.append("HEAD's root is not the root of the records")
    return problems
