"""The decision core in-process: judge + draft + sign, against Cedar and Rego evaluating one rule.

One Enact decision = ``Engine.judge`` (allowlist, every built-in policy) + ``Engine.draft`` (the
receipt body, redacted) + ``ReceiptKey.signed_with_bytes`` (HMAC-SHA256 over canonical JSON, as the
log writer signs a record), for
``hubspot.create_contact`` with a fake in-memory HubSpot so ``no_duplicate_contacts`` really runs
its lookup without a network. No fsync here: bench_receipts.py measures durability.

References (same machine, same run): the role rule of ``require_actor_role`` alone, evaluated by
Enact's policy runner, by ``cedarpy.is_authorized`` and by ``regopy`` (rego-cpp).

    python -m benchmarks.bench_decision [--rounds 5] [--iterations 5000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks._common import percentile, save, spread, version
from benchmarks._proxies import ALL_POLICIES
from enact_proxy.config import resolve_policy
from enact_proxy.engine import Engine
from enact_proxy.models import ActionRequest, Decision, RequestSummary, WorkflowContext
from enact_proxy.policy import evaluate
from enact_proxy.receipts import ReceiptKey, ReceiptStore
from enact_proxy.receipts.store import FREE_FORM
from enact_proxy.state import SqliteStateStore

ROLES = ["sales_agent", "engineer"]
CEDAR_POLICY = """permit(principal, action == Action::"hubspot.create_contact", resource)
when { principal.roles.containsAny(["sales_agent", "engineer"]) };"""
REGO_POLICY = """package enact
default allow := false
allow if {
    input.action == "hubspot.create_contact"
    some role in input.actor.roles
    role in {"sales_agent", "engineer"}
}"""


class FakeHubSpot:
    """What no_duplicate_contacts asks: no contact has this email."""

    def find_contact_by_email(self, email: str) -> dict[str, Any] | None:
        return None


def all_policies() -> list[Any]:
    made = []
    for entry in ALL_POLICIES:
        name, params = (entry, None) if isinstance(entry, str) else next(iter(entry.items()))
        made.append(resolve_policy(name, params))
    return made


def time_calls(fn: Callable[[], Any], iterations: int) -> list[float]:
    """Microseconds per call, one sample per call (perf_counter_ns)."""
    fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        start = clock()
        fn()
        samples.append((clock() - start) / 1000)
    samples.sort()
    return samples


def enact_decision(tmp: Path) -> Callable[[], Any]:
    key = ReceiptKey(b"0" * 64)
    engine = Engine(policies=all_policies(), workflows={"new_lead_workflow": ["hubspot.create_contact"]},
                    actor_email="agent@company.com", actor_roles=ROLES, receipts=ReceiptStore(tmp, key),
                    state=SqliteStateStore(":memory:"), config_sha256="0" * 64)
    action = ActionRequest(system="hubspot", action="create_contact",
                           payload={"email": "jane@acme.com", "properties": {"email": "jane@acme.com",
                                                                              "firstname": "Jane"}},
                           request=RequestSummary(method="POST", host="api.hubapi.com",
                                                  path="/crm/v3/objects/contacts"))
    systems = {"hubspot": FakeHubSpot()}
    prev = {"hash": "0" * 64}

    def decide() -> dict[str, Any]:
        verdict = engine.judge(action, systems)
        if verdict.decision is not Decision.PASS or len(verdict.policy_results) != len(ALL_POLICIES):
            raise RuntimeError(f"expected a PASS by every policy, got {verdict.decision}: {verdict.reason}")
        # Signed as the log writer signs: one serialisation, only the free-form members walked for types.
        return key.signed_with_bytes({**engine.draft(verdict).body(), "kind": "receipt", "seq": 1,
                                      "prev_hash": prev["hash"]}, FREE_FORM)

    return decide


def enact_one_rule() -> Callable[[], Any]:
    policy = resolve_policy("require_actor_role", {"roles": ROLES})
    ctx = WorkflowContext(workflow="new_lead_workflow", actor_email="agent@company.com", actor_roles=tuple(ROLES),
                          system="hubspot", action="create_contact", payload={"email": "jane@acme.com"},
                          now=datetime.now(UTC))

    def rule() -> Any:
        return evaluate([policy], ctx)

    return rule


def cedar_one_rule() -> Callable[[], Any] | str:
    try:
        import cedarpy
    except ImportError:
        return "cedarpy not installed (pip install cedarpy)"
    entities = [{"uid": {"__entity": {"type": "User", "id": "agent@company.com"}},
                 "attrs": {"roles": ROLES}, "parents": []}]
    request = {"principal": 'User::"agent@company.com"', "action": 'Action::"hubspot.create_contact"',
               "resource": 'Contact::"jane@acme.com"', "context": {}}
    policies: Any = CEDAR_POLICY
    if hasattr(cedarpy, "PolicySet"):
        try:
            policies = cedarpy.PolicySet(CEDAR_POLICY)  # type: ignore[call-arg]  # parsed once, as a server keeps it
        except Exception:  # noqa: BLE001 - older cedarpy: policy text each call
            policies = CEDAR_POLICY
    if cedarpy.is_authorized(request, policies, entities).decision != cedarpy.Decision.Allow:
        raise RuntimeError("cedar rule did not allow")

    def rule() -> Any:
        return cedarpy.is_authorized(request, policies, entities)

    return rule


def rego_one_rule() -> Callable[[], Any] | str:
    try:
        from regopy import Interpreter
    except ImportError:
        return "regopy not installed (pip install regopy)"
    rego = Interpreter()
    rego.add_module("enact", REGO_POLICY)
    payload = {"action": "hubspot.create_contact", "actor": {"email": "agent@company.com", "roles": ROLES}}
    rego.set_input(payload)
    if "true" not in str(rego.query("data.enact.allow")):
        raise RuntimeError(f"rego rule did not allow: {rego.query('data.enact.allow')}")

    def rule() -> Any:
        rego.set_input(payload)
        return rego.query("data.enact.allow")

    return rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()
    import tempfile

    candidates: dict[str, Callable[[], Any] | str] = {
        "enact decision (9 policies + draft + sign)": enact_decision(Path(tempfile.mkdtemp())),
        "enact one rule (require_actor_role)": enact_one_rule(),
        "cedarpy one rule": cedar_one_rule(),
        "regopy one rule": rego_one_rule(),
    }
    results: dict[str, Any] = {}
    for name, fn in candidates.items():
        if isinstance(fn, str):
            results[name] = {"unavailable": fn}
            continue
        p50s, p99s = [], []
        for _ in range(args.rounds):
            samples = time_calls(fn, args.iterations)
            p50s.append(percentile(samples, 50))
            p99s.append(percentile(samples, 99))
        results[name] = {"p50_us": spread(p50s), "p99_us": spread(p99s)}
    base = results["cedarpy one rule"].get("p50_us", {}).get("median")
    print("| what | p50 µs | p99 µs | p50 vs cedarpy one rule |\n|---|---|---|---|")
    for name, r in results.items():
        if "unavailable" in r:
            print(f"| {name} | – | – | {r['unavailable']} |")
            continue
        ratio = f"{r['p50_us']['median'] / base:.2f}×" if base else "–"
        print(f"| {name} | {r['p50_us']['median']:.1f} [{r['p50_us']['min']:.1f}–{r['p50_us']['max']:.1f}] | "
              f"{r['p99_us']['median']:.1f} [{r['p99_us']['min']:.1f}–{r['p99_us']['max']:.1f}] | {ratio} |")
    path = save("decision", {"args": vars(args), "results": results,
                             "versions": {"cedarpy": version("cedarpy"), "regopy": version("regopy"),
                                          "pydantic": version("pydantic")}})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
