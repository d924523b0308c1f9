"""``enact-proxy replay --config NEW [--dir D] [--since 24h]`` (SPEC §9).

Every recorded receipt's action (system, action, payload, actor) is judged again under NEW by the
real engine, offline and read-only: nothing is sent, no receipt is written, and the stateful policies
count in a fresh in-memory store (so limits and duplicates see the replayed actions that NEW passes,
in log order, and nothing from before the first replayed record). Each action is judged at its
recorded time, so time windows and sliding limits behave as they did.

Choices where the contract is silent:

- **Lookups** (``no_duplicate_contacts`` asking HubSpot) cannot be answered offline and are never
  guessed: such an action is *unanswerable*, unless NEW refuses it for another reason anyway (then
  the new decision, BLOCK, does not depend on the answer).
- **Actor**: the recorded ``actor_email`` with NEW's ``actor.roles`` (receipts do not record roles).
- **What is compared** is each action's own decision: an action that was refused only because another
  action of its request was refused ("refused with the rest of this request") counts as its own
  policies' decision, since the request's other actions are replayed (and reported) one by one.
- **Approvals**: an action that ran with a person's approval keeps it: if NEW only holds it for
  approval (``require_approval`` pending), that is not a change.
- **Redacted payloads**: a receipt's payload has credentials masked (``"[REDACTED]"``); it is judged as
  recorded, and a changed line says which payload paths were masked.
- **Skipped**: records of system ``enact`` (approve/deny), egress refusals (``egress.*``, no action),
  and refusals made on the wire before any policy ran (unparseable body, body too large, a Host not
  matching the server name ...): they do not depend on workflows or policies.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from enact_proxy.config import ConfigError, EnactConfig, load_config
from enact_proxy.engine import COLLATERAL_PREFIX, Engine
from enact_proxy.models import ActionRequest, Decision, Receipt
from enact_proxy.offline import (
    APPROVAL_POLICY,
    memory_state,
    offline_engine,
    offline_policies,
    offline_systems,
    unanswered,
)
from enact_proxy.receipts.verify import read_records
from enact_proxy.terminal import printable

EXIT_SAME, EXIT_CHANGED, EXIT_ERROR = 0, 1, 2
SKIPPED_SYSTEMS = frozenset({"enact", "egress"})
NO_WORKFLOW = "no registered workflow allows"
# Payload fields that say which object an action is about, most telling first.
IDENTIFYING = ("branch", "email", "table", "tag", "contact_id", "deal_id", "number", "name", "path", "contact_ids",
               "owner")


@dataclass
class Replayed:
    receipt: Receipt
    old: Decision
    new: Decision | None  # None: unanswerable
    reasons: str = ""
    unanswered: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.new is not None and self.new is not self.old

    def line(self) -> str:
        """One line; everything the agent wrote (payload values, names in reasons) shown escaped."""
        r = self.receipt
        ident = identify(r.payload)
        head = f"{printable(r.run_id)}  {printable(r.action)}" + (f"  {ident}" if ident else "")
        if self.new is None:
            return f"{head}  {self.old.value} → ?  unanswerable offline: {printable(', '.join(self.unanswered))}"
        masked = [p for p in r.redacted if p.startswith("payload")]
        note = f"  (judged with {printable(', '.join(masked))} redacted)" if masked else ""
        return f"{head}  {self.old.value} → {self.new.value}  {printable(self.reasons)}{note}"


@dataclass
class Report:
    replayed: list[Replayed] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> list[Replayed]:
        return [r for r in self.replayed if r.changed]

    @property
    def unanswerable(self) -> list[Replayed]:
        return [r for r in self.replayed if r.new is None]

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        return (f"{len(self.replayed)} action(s) replayed: {len(self.changed)} would change, "
                f"{len(self.unanswerable)} unanswerable offline"
                + (f"; skipped {skipped}" if skipped else ""))


def identify(payload: dict[str, Any]) -> str:
    """``branch=agent/x``, ``email=jane@acme.com``, ``table=customers``, else a number or name."""
    for key in IDENTIFYING:
        value = payload.get(key)
        if value not in (None, "", []):
            shown = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            return f"{key}={printable(shown, 80)}"
    return ""


def skip_reason(receipt: Receipt) -> str | None:
    """Why a record is not replayed, or None."""
    if receipt.system is None or receipt.action is None:
        return "without an action"
    if receipt.system in SKIPPED_SYSTEMS:
        return f"{receipt.system} record(s)"
    if (receipt.decision is Decision.BLOCK and not receipt.policy_results
            and not receipt.reason.startswith(NO_WORKFLOW)):
        return "refused on the wire before judging"
    return None


def own_decision(receipt: Receipt) -> Decision:
    """The recorded decision of the action itself (a collateral refusal counts as what its policies said)."""
    if receipt.decision is Decision.BLOCK and receipt.reason.startswith(COLLATERAL_PREFIX):
        return Decision.PASS if all(p.passed for p in receipt.policy_results) else Decision.BLOCK
    return receipt.decision


def replay(config: EnactConfig, receipts: Iterable[Receipt], since: datetime | None = None) -> Report:
    report = Report()
    state = memory_state()
    policies = offline_policies(config)
    try:
        for receipt in receipts:
            why = skip_reason(receipt)
            when = _when(receipt.timestamp)
            if why is None and when is None:
                why = "without a readable timestamp"
            elif why is None and since is not None and when is not None and when < since:
                why = "older than --since"
            if why is not None or when is None:
                report.skipped[why or "without a readable timestamp"] += 1
                continue
            engine = offline_engine(config, state, _fixed(when), actor_email=receipt.actor_email,
                                    policies=policies)
            report.replayed.append(_judge(engine, config, receipt))
    finally:
        state.close()
    return report


def _judge(engine: Engine, config: EnactConfig, receipt: Receipt) -> Replayed:
    system, _, action = (receipt.action or "").partition(".")
    request = ActionRequest(system=system, action=action, payload=receipt.payload, request=receipt.request)
    systems = offline_systems(config.systems)
    (verdict,) = engine.judge_request([request], systems).verdicts
    failing = [r for r in verdict.policy_results if not r.passed]
    old = own_decision(receipt)
    missing = list(dict.fromkeys(unanswered(systems)))
    if missing:
        # The policies that asked failed for want of an answer; any other failure refuses it anyway.
        asked = {r.policy for r in failing if "no offline answer" in r.reason}
        others = [r for r in failing if r.policy not in asked]
        if not others:
            return Replayed(receipt, old, None, unanswered=missing)
        failing = others
    if receipt.approval is not None and failing and all(_held(r.policy, r.reason) for r in failing):
        return Replayed(receipt, old, Decision.PASS, f"approved by {receipt.approval.approved_by} (kept)")
    if failing:
        return Replayed(receipt, old, Decision.BLOCK, "; ".join(f"{r.policy}: {r.reason}" for r in failing))
    return Replayed(receipt, old, verdict.decision, verdict.reason)  # a PASS, or no workflow allows it


def _fixed(when: datetime) -> Callable[[], datetime]:
    return lambda: when


def _held(policy: str, reason: str) -> bool:
    return policy == APPROVAL_POLICY and " is pending for " in reason


def _when(timestamp: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def run_replay(config_path: str | Path, *, directory: str | Path | None = None, since: str | None = None,
               out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``enact-proxy replay``: one line per action whose decision would change, then a count."""
    out, err = out or sys.stdout, err or sys.stderr
    from enact_proxy.cli import parse_since

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for error in exc.errors:
            print(f"{exc.path}: {error}", file=err)
        return EXIT_ERROR
    try:
        cutoff = parse_since(since)
    except ValueError as exc:
        print(exc, file=err)
        return EXIT_ERROR
    folder = Path(directory) if directory else config.receipts_dir
    if not folder.is_dir():
        print(f"no receipts directory {folder}", file=err)
        return EXIT_ERROR
    receipts = (r for r in read_records(folder) if isinstance(r, Receipt))  # streamed: logs can be large
    try:
        report = replay(config, receipts, cutoff)
    except OSError as exc:
        print(f"cannot read the receipts in {folder}: {exc}", file=err)
        return EXIT_ERROR
    for item in report.replayed:
        if item.changed or item.new is None:
            print(item.line(), file=out)
    print(report.summary() + f" (receipts in {folder}, config {config.path})", file=out)
    return EXIT_CHANGED if report.changed else EXIT_SAME
