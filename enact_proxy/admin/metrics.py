"""Prometheus metrics of one sidecar (SPEC §8), in a registry of their own.

With ``listen.workers`` > 1 each HTTP front process counts its own decisions; the fronts send their
counter and histogram values to the main process (:meth:`Metrics.samples`, about once a second), and
its ``/metrics`` adds them in (``others``), so the figures cover every front."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

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
        # The other HTTP fronts' values (``listen.workers`` > 1), summed; added in by ``render``.
        self.others: Callable[[], dict[SampleKey, float]] | None = None

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

    def samples(self) -> dict[SampleKey, float]:
        """This process's counter and histogram values (what a front sends to the main process)."""
        found: dict[SampleKey, float] = {}
        for metric in self.registry.collect():
            if metric.type in SUMMED:
                for sample in metric.samples:
                    if not sample.name.endswith("_created"):
                        found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return found

    def render(self) -> bytes:
        if self.others is None:
            return generate_latest(self.registry)
        return generate_latest(_Summed(self.registry, self.others()))  # type: ignore[arg-type]


SampleKey = tuple[str, tuple[tuple[str, str], ...]]  # (sample name, sorted labels)
SUMMED = ("counter", "histogram")  # the gauge (unwritable) is the same in every front: the main one's stands


def add_samples(total: dict[SampleKey, float], more: dict[SampleKey, float]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0.0) + value


class _Summed:
    """A registry view: this process's metrics plus the other fronts' values."""

    def __init__(self, registry: CollectorRegistry, others: dict[SampleKey, float]):
        self.registry = registry
        self.others = dict(others)

    def collect(self) -> Iterator[Metric]:
        for metric in self.registry.collect():
            if metric.type not in SUMMED:
                yield metric
                continue
            merged = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            for sample in metric.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                merged.samples.append(sample._replace(value=sample.value + self.others.pop(key, 0.0)))
            # Label sets only other fronts have seen (an action this process never decided).
            for key in [k for k in self.others if k[0] in (metric.name, f"{metric.name}_total")]:
                merged.samples.append(Sample(key[0], dict(key[1]), self.others.pop(key)))
            yield merged
