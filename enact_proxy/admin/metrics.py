"""Prometheus metrics of one sidecar (SPEC §8), in a registry of their own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds from a request's arrival at the engine to its decision: lookups and claims included.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter("enact_decisions_total", "Decisions, by system, action, decision and mode.",
                                 ["system", "action", "decision", "mode"], registry=self.registry)
        self.policy_failures = Counter("enact_policy_failures_total", "Policy failures, by policy.", ["policy"],
                                       registry=self.registry)
        self.decision_seconds = Histogram("enact_decision_seconds", "Time from request to decision.",
                                          buckets=BUCKETS, registry=self.registry)
        self.unwritable = Gauge("enact_receipts_unwritable", "1 while records cannot be written.",
                                registry=self.registry)

    def watch_unwritable(self, probe: Callable[[], bool]) -> None:
        self.unwritable.set_function(lambda: 1.0 if probe() else 0.0)

    def judged(self, seconds: float) -> None:
        self.decision_seconds.observe(seconds)

    def recorded(self, verdict: Any) -> None:
        """One decision on its way to the log (an intent opened, or a receipt of one that ran nothing)."""
        action = verdict.action
        self.decisions.labels(action.system if action else "", action.full_name if action else "",
                              verdict.decision.value, verdict.mode).inc()
        for result in verdict.policy_results:
            if not result.passed:
                self.policy_failures.labels(result.policy).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
